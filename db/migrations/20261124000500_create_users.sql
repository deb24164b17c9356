-- migrate:up
/*
 * Why: people of a tenant. An email is unique within its tenant regardless of
 * case, and the same email may exist in two tenants. The composite key
 * (tenant_id, user_id) is what other tables reference, so a row can never
 * point at another tenant's user.
 */
-- Fail fast instead of queueing behind long transactions on a live server.
set local lock_timeout = '5s';
set local statement_timeout = '60s';
create table core.users (
  tenant_id uuid not null default core.current_tenant_id() references core.tenants (tenant_id),
  user_id uuid not null default gen_random_uuid(),
  email text not null check (char_length(email) between 3 and 320 and email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
  role text not null default 'member' check (role in ('tenant_admin', 'member', 'viewer')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (tenant_id, user_id)
);
comment on table core.users is 'People of a tenant';
comment on column core.users.tenant_id is 'Tenant the user belongs to; set from app.tenant_id';
comment on column core.users.user_id is 'Identity of the user within the tenant';
comment on column core.users.email is 'Email address, unique per tenant regardless of case';
comment on column core.users.role is 'Role within the tenant: tenant_admin, member or viewer';
comment on column core.users.created_at is 'When the user was created';
comment on column core.users.updated_at is 'When the row last changed (maintained by trigger)';

create unique index users_tenant_email_key on core.users (tenant_id, lower(email));
create index users_tenant_created_at_idx on core.users (tenant_id, created_at desc, user_id desc);

create trigger set_updated_at before update on core.users
  for each row execute function core.set_updated_at();
create trigger record_audit after insert or update or delete on core.users
  for each row execute function core.record_audit('user_id');

alter table core.users enable row level security;
alter table core.users force row level security;

create policy select_own_tenant on core.users for select
  using (tenant_id = (select core.current_tenant_id()));
create policy insert_own_tenant on core.users for insert
  with check (tenant_id = (select core.current_tenant_id()));
create policy update_own_tenant on core.users for update
  using (tenant_id = (select core.current_tenant_id()))
  with check (tenant_id = (select core.current_tenant_id()));
create policy delete_own_tenant on core.users for delete
  using (tenant_id = (select core.current_tenant_id()));

grant select, insert (email, role), update (email, role), delete on core.users to app_user;
grant select on core.users to uber_admin;

create view api.users with (security_invoker = true) as
  select user_id, tenant_id, email, role, created_at, updated_at
  from core.users;
comment on view api.users is 'Users of the current tenant';
grant select on api.users to app_user;

create function api.list_users(
  p_limit integer default 20,
  p_after_created_at timestamptz default null,
  p_after_user_id uuid default null
) returns setof api.users
language sql stable
as $$
  select *
  from api.users u
  where p_after_created_at is null
     or (u.created_at, u.user_id) < (p_after_created_at, p_after_user_id)
  order by u.created_at desc, u.user_id desc
  limit least(greatest(coalesce(p_limit, 20), 1), 100)
$$;
comment on function api.list_users(integer, timestamptz, uuid) is
  'Users of the current tenant, newest first, keyset-paginated after (created_at, user_id)';

create function api.create_user(p_email text, p_role text default 'member') returns setof api.users
language sql volatile
as $$
  insert into core.users (email, role)
  values (p_email, coalesce(p_role, 'member'))
  returning user_id, tenant_id, email, role, created_at, updated_at
$$;
comment on function api.create_user(text, text) is 'Adds a user to the current tenant';

create function api.update_user(p_user_id uuid, p_email text default null, p_role text default null)
returns setof api.users
language sql volatile
as $$
  update core.users
  set email = coalesce(p_email, email),
      role = coalesce(p_role, role)
  where user_id = p_user_id
  returning user_id, tenant_id, email, role, created_at, updated_at
$$;
comment on function api.update_user(uuid, text, text) is
  'Changes the given fields of a user of the current tenant (NULL keeps a field); no row when unknown';

create function api.delete_user(p_user_id uuid) returns setof api.users
language sql volatile
as $$
  delete from core.users
  where user_id = p_user_id
  returning user_id, tenant_id, email, role, created_at, updated_at
$$;
comment on function api.delete_user(uuid) is
  'Removes a user of the current tenant and the API keys bound to them; no row when unknown; fails (23503) while the user authors documents';

grant execute on function api.list_users(integer, timestamptz, uuid), api.create_user(text, text),
  api.update_user(uuid, text, text), api.delete_user(uuid) to app_user;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
drop function api.delete_user(uuid);
drop function api.update_user(uuid, text, text);
drop function api.create_user(text, text);
drop function api.list_users(integer, timestamptz, uuid);
drop view api.users;
drop table core.users;
