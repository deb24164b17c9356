-- migrate:up
/*
 * Why: the tenant is the unit of isolation. Its row is visible to app_user
 * only under its own context; only platform operators (uber_admin, which
 * bypasses RLS) create, change or deactivate tenants. Tenants are never hard
 * deleted: their data and audit trail are retained, and deactivation stops
 * their API keys at once (see api.authenticate).
 */
-- Fail fast instead of queueing behind long transactions on a live server.
set local lock_timeout = '5s';
set local statement_timeout = '60s';
create table core.tenants (
  tenant_id uuid primary key default gen_random_uuid(),
  name text not null check (char_length(name) between 1 and 200),
  domain text unique check (
    char_length(domain) <= 253
    and domain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$'
  ),
  subscription_tier text not null default 'free'
    check (subscription_tier in ('free', 'pro', 'enterprise')),
  deactivated_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table core.tenants is 'Customers of the platform; the root every tenant-scoped row belongs to';
comment on column core.tenants.tenant_id is 'Identity of the tenant and the key every tenant-scoped table is partitioned by';
comment on column core.tenants.name is 'Display name, 1-200 characters';
comment on column core.tenants.domain is 'Optional lower-case hostname, unique across tenants';
comment on column core.tenants.subscription_tier is 'Plan: free, pro or enterprise';
comment on column core.tenants.deactivated_at is 'When a platform operator deactivated the tenant; its keys stop working, its data is kept';
comment on column core.tenants.created_at is 'When the tenant was provisioned';
comment on column core.tenants.updated_at is 'When the row last changed (maintained by trigger)';

create index tenants_created_at_idx on core.tenants (created_at desc, tenant_id desc);

create trigger set_updated_at before update on core.tenants
  for each row execute function core.set_updated_at();

alter table core.tenants enable row level security;
alter table core.tenants force row level security;

create policy select_own_tenant on core.tenants for select
  using (tenant_id = (select core.current_tenant_id()));
create policy insert_own_tenant on core.tenants for insert
  with check (tenant_id = (select core.current_tenant_id()));
create policy update_own_tenant on core.tenants for update
  using (tenant_id = (select core.current_tenant_id()))
  with check (tenant_id = (select core.current_tenant_id()));
create policy delete_own_tenant on core.tenants for delete
  using (tenant_id = (select core.current_tenant_id()));

grant select on core.tenants to app_user;
grant select, insert (name, domain, subscription_tier),
  update (name, domain, subscription_tier, deactivated_at) on core.tenants to uber_admin;

create view api.tenant with (security_invoker = true) as
  select tenant_id, name, domain, subscription_tier, created_at, updated_at
  from core.tenants;
comment on view api.tenant is 'The tenant of the current context: one row, or none without context';
grant select on api.tenant to app_user;

create view platform.tenants with (security_invoker = true) as
  select tenant_id, name, domain, subscription_tier, deactivated_at, created_at, updated_at
  from core.tenants;
comment on view platform.tenants is 'Every tenant, for platform operators';
grant select on platform.tenants to uber_admin;

create function platform.list_tenants(
  p_limit integer default 20,
  p_after_created_at timestamptz default null,
  p_after_tenant_id uuid default null
) returns setof platform.tenants
language sql stable
as $$
  select *
  from platform.tenants t
  where p_after_created_at is null
     or (t.created_at, t.tenant_id) < (p_after_created_at, p_after_tenant_id)
  order by t.created_at desc, t.tenant_id desc
  limit least(greatest(coalesce(p_limit, 20), 1), 100)
$$;
comment on function platform.list_tenants(integer, timestamptz, uuid) is
  'Tenants newest first, keyset-paginated after (created_at, tenant_id)';

create function platform.update_tenant(
  p_tenant_id uuid,
  p_name text default null,
  p_domain text default null,
  p_clear_domain boolean default false,
  p_subscription_tier text default null
) returns setof platform.tenants
language sql volatile
as $$
  update core.tenants
  set name = coalesce(p_name, name),
      domain = case when p_clear_domain then null else coalesce(p_domain, domain) end,
      subscription_tier = coalesce(p_subscription_tier, subscription_tier)
  where tenant_id = p_tenant_id
  returning tenant_id, name, domain, subscription_tier, deactivated_at, created_at, updated_at
$$;
comment on function platform.update_tenant(uuid, text, text, boolean, text) is
  'Changes the given fields of a tenant (NULL keeps a field); p_clear_domain removes the domain';

create function platform.deactivate_tenant(p_tenant_id uuid) returns setof platform.tenants
language sql volatile
as $$
  update core.tenants
  set deactivated_at = coalesce(deactivated_at, now())
  where tenant_id = p_tenant_id
  returning tenant_id, name, domain, subscription_tier, deactivated_at, created_at, updated_at
$$;
comment on function platform.deactivate_tenant(uuid) is
  'Deactivates a tenant: its API keys stop working at once; its data and audit trail are kept';

grant execute on function platform.list_tenants(integer, timestamptz, uuid),
  platform.update_tenant(uuid, text, text, boolean, text),
  platform.deactivate_tenant(uuid) to uber_admin;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
drop function platform.deactivate_tenant(uuid);
drop function platform.update_tenant(uuid, text, text, boolean, text);
drop function platform.list_tenants(integer, timestamptz, uuid);
drop view platform.tenants;
drop view api.tenant;
drop table core.tenants;
