-- migrate:up
/*
 * Why: subscription_tier was a label that changed nothing, and of the
 * Fintech Template's settings only api_key_max_lifetime_days was checked:
 * a tenant could store "audit_retention_days": "forever", which the audit
 * maintenance then reads as "keep for ever" without anyone having said so.
 *
 * Plans: core.plans holds one plan per tier with its limits (documents,
 * users, API keys that are not revoked, bytes of metadata per document,
 * requests per minute, which nothing enforces yet); operators read and
 * change them through the platform routes (platform.update_plan, audited
 * in the Platform's chain). A tenant's limits are its tier's plan at the
 * moment of the write: a tier change applies to the next request.
 *
 * Quotas: core.tenant_usage keeps each tenant's counts, moved in the same
 * transaction by the trigger core.meter_usage (AFTER each row written, so
 * that a row row-level security refuses or ON CONFLICT skips never counts;
 * on documents, users and keys): an insert adds one and is refused when
 * that passes the limit (PTQ09, its detail naming the quota, the limit and
 * the usage); a delete, or a key's revocation, frees one. The row of the tenant's counts is
 * locked by its writers until they commit, so writers of one tenant take
 * turns and a limit holds exactly; tenants never wait for each other.
 * Nothing counts rows. A document's metadata larger than the plan allows
 * is refused too (PTQ13). The trigger runs as tenancy_meter, which cannot
 * log in and may read the plans and the tiers and write the counts, and
 * nothing else.
 *
 * The count row is one more thing a session can hold locked: a key's
 * revocation ends whoever holds it (core.seize_usage_row, as
 * core.seize_chain_head does for the chain head), taking it before the
 * chain head as every writer does, so no session keeps a key from being
 * revoked, even one that took it inside a savepoint (for a
 * subtransaction's id pgrowlocks names no session; core.end_usage_holders
 * then ends every session of the service's roles that could hold it).
 *
 * Settings: the settings the database acts on have types and bounds,
 * checked by api.update_tenant_config (PT422 naming the key; the HTTP
 * layer says the same as a 400 first): audit_retention_days is a whole
 * number of days from 365 to 36,500 (a key that may change the settings
 * cannot have less than a year of its tenant's trail dropped),
 * api_key_max_lifetime_days one from 1 to 36,500,
 * require_two_person_approval is true or false, currency is three capital
 * letters, data_residency a short lower-case code. Other keys are kept as
 * they are. tenant_configs gets a CHECK of the same rules, so that no
 * writer (an operator, a template, a superuser) stores what the audit
 * maintenance would misread.
 */
set local lock_timeout = '5s';
set local statement_timeout = '120s';

do $$
begin
  if not exists (select from pg_roles where rolname = 'tenancy_meter') then
    create role tenancy_meter;
  end if;
end
$$;
alter role tenancy_meter nologin nosuperuser nocreatedb nocreaterole noinherit noreplication bypassrls;
grant usage on schema core to tenancy_meter;
comment on role tenancy_meter is
  'Owns the trigger that keeps each tenant''s usage counts and enforces its plan''s limits (BYPASSRLS, the counts only); cannot log in';

set local role tenancy_owner;

create table core.plans (
  plan_id uuid primary key default gen_random_uuid(),
  tier text not null unique check (tier in ('free', 'pro', 'enterprise')),
  -- Limits are integers (up to two billion) so the API shows them as JSON
  -- numbers; the counts they bound are bigint.
  -- squawk-ignore prefer-bigint-over-int
  max_documents integer not null check (max_documents >= 0),
  -- squawk-ignore prefer-bigint-over-int
  max_users integer not null check (max_users >= 0),
  -- squawk-ignore prefer-bigint-over-int
  max_api_keys integer not null check (max_api_keys >= 0),
  -- squawk-ignore prefer-bigint-over-int
  max_metadata_bytes integer not null check (max_metadata_bytes between 2 and 1048576),
  -- squawk-ignore prefer-bigint-over-int
  requests_per_minute integer not null check (requests_per_minute between 1 and 10000000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table core.plans is 'One plan per subscription tier: the limits of every tenant on that tier';
comment on column core.plans.plan_id is 'Identity of the plan';
comment on column core.plans.tier is 'The subscription_tier this plan applies to';
comment on column core.plans.max_documents is 'Documents a tenant may hold';
comment on column core.plans.max_users is 'Users a tenant may have';
comment on column core.plans.max_api_keys is 'API keys a tenant may hold that are not revoked (expired ones count until revoked)';
comment on column core.plans.max_metadata_bytes is 'Largest metadata of one document, in bytes of its JSON text';
comment on column core.plans.requests_per_minute is 'Requests per minute a tenant may make';
comment on column core.plans.created_at is 'When the plan was created';
comment on column core.plans.updated_at is 'When the plan last changed';
create trigger set_updated_at before update on core.plans
  for each row execute function core.set_updated_at();
insert into core.plans (tier, max_documents, max_users, max_api_keys, max_metadata_bytes, requests_per_minute) values
  ('free', 100000, 10000, 1000, 65536, 6000),
  ('pro', 10000000, 100000, 10000, 262144, 60000),
  ('enterprise', 1000000000, 1000000, 100000, 1048576, 600000);

create table core.tenant_usage (
  tenant_id uuid primary key references core.tenants (tenant_id),
  documents bigint not null default 0 check (documents >= 0),
  users bigint not null default 0 check (users >= 0),
  api_keys bigint not null default 0 check (api_keys >= 0)
);
comment on table core.tenant_usage is
  'What each tenant holds of what its plan limits, kept by core.meter_usage in the writing transaction';
comment on column core.tenant_usage.tenant_id is 'The tenant';
comment on column core.tenant_usage.documents is 'Its documents';
comment on column core.tenant_usage.users is 'Its users';
comment on column core.tenant_usage.api_keys is 'Its API keys that are not revoked';
alter table core.tenant_usage enable row level security;
alter table core.tenant_usage force row level security;
alter table core.tenant_usage alter column tenant_id set statistics 0;
alter table core.tenant_usage alter column documents set statistics 0;
alter table core.tenant_usage alter column users set statistics 0;
alter table core.tenant_usage alter column api_keys set statistics 0;
-- Read by the tenant's own requests (through api.current_plan); written
-- only by tenancy_meter, which bypasses row-level security, so no key
-- writes it through these.
create policy select_own_tenant on core.tenant_usage for select
  using (tenant_id = (select c.tenant_id from core.request_context c));
create policy insert_own_tenant on core.tenant_usage for insert
  with check (tenant_id = (select c.tenant_id from core.request_context c));
create policy update_own_tenant on core.tenant_usage for update
  using (tenant_id = (select c.tenant_id from core.request_context c))
  with check (tenant_id = (select c.tenant_id from core.request_context c));
create policy delete_own_tenant on core.tenant_usage for delete
  using (tenant_id = (select c.tenant_id from core.request_context c));
reset role;

-- Today's counts, as the superuser (forced row-level security would show
-- tenancy_owner none of the rows).
insert into core.tenant_usage (tenant_id, documents, users, api_keys)
select t.tenant_id,
  (select count(*) from core.documents d where d.tenant_id = t.tenant_id),
  (select count(*) from core.users u where u.tenant_id = t.tenant_id),
  (select count(*) from core.tenant_api_keys k where k.tenant_id = t.tenant_id and k.revoked_at is null)
from core.tenants t;

set local role tenancy_owner;

-- Every new tenant starts with counts of zero.
create function core.create_tenant_usage() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  insert into core.tenant_usage (tenant_id) values (new.tenant_id) on conflict (tenant_id) do nothing;
  return null;
end
$$;
comment on function core.create_tenant_usage() is 'Trigger: gives a new tenant its usage counts, all zero';

-- The limit a write would pass, raised with what the HTTP layer shows.
-- AFTER the row is written: a row row-level security refuses, or one an
-- INSERT ... ON CONFLICT skips, never counts.
create function core.meter_usage() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_kind text := tg_argv[0];
  v_tenant_id uuid := case when tg_op = 'DELETE' then old.tenant_id else new.tenant_id end;
  v_delta integer := 0;
  v_used bigint;
  v_plan core.plans;
  v_bytes integer;
begin
  if tg_op = 'INSERT' then
    v_delta := 1;
  elsif tg_op = 'DELETE' then
    v_delta := -1;
  end if;
  if v_kind = 'api_keys' then
    -- A key counts while it is not revoked.
    v_delta := case
      when tg_op = 'INSERT' and new.revoked_at is not null then 0
      when tg_op = 'DELETE' and old.revoked_at is not null then 0
      when tg_op = 'UPDATE' and old.revoked_at is null and new.revoked_at is not null then -1
      else v_delta end;
  end if;
  if v_delta > 0 or (v_kind = 'documents' and tg_op <> 'DELETE') then
    select p.* into v_plan from core.tenants t join core.plans p on p.tier = t.subscription_tier
    where t.tenant_id = v_tenant_id;
  end if;
  -- (Nested: PL/pgSQL would look for a metadata field on every table's row.)
  if v_kind = 'documents' and tg_op <> 'DELETE' then
    if tg_op = 'INSERT' or new.metadata is distinct from old.metadata then
      v_bytes := octet_length(new.metadata::text);
      if v_bytes > v_plan.max_metadata_bytes then
        raise exception 'the plan''s limit of metadata bytes per document is reached'
          using errcode = 'PTQ13',
                detail = json_build_object('quota', 'metadata_bytes', 'limit', v_plan.max_metadata_bytes,
                                           'usage', v_bytes)::text;
      end if;
    end if;
  end if;
  if v_delta = 0 then
    return null;
  end if;
  -- Writers of the tenant take turns on its counts, as on its chain head:
  -- one holding them past any request's lifetime is ended first.
  perform from core.tenant_usage u where u.tenant_id = v_tenant_id for update skip locked;
  if not found then
    perform core.end_stale_transactions();
    perform from core.tenant_usage u where u.tenant_id = v_tenant_id for update;
  end if;
  update core.tenant_usage u
  set documents = u.documents + case when v_kind = 'documents' then v_delta else 0 end,
      users = u.users + case when v_kind = 'users' then v_delta else 0 end,
      api_keys = u.api_keys + case when v_kind = 'api_keys' then v_delta else 0 end
  where u.tenant_id = v_tenant_id
  returning case v_kind when 'documents' then u.documents when 'users' then u.users else u.api_keys end
  into v_used;
  if not found then
    raise exception 'tenant % has no usage counts', v_tenant_id using errcode = 'P0002';
  end if;
  if v_delta > 0 and v_used > (case v_kind when 'documents' then v_plan.max_documents
                                            when 'users' then v_plan.max_users
                                            else v_plan.max_api_keys end) then
    raise exception 'the plan''s limit of % is reached', v_kind
      using errcode = 'PTQ09',
            detail = json_build_object('quota', v_kind,
                                       'limit', case v_kind when 'documents' then v_plan.max_documents
                                                             when 'users' then v_plan.max_users
                                                             else v_plan.max_api_keys end,
                                       'usage', v_used - 1)::text;
  end if;
  return null;
end
$$;
comment on function core.meter_usage() is
  'Trigger: moves the tenant''s usage count of documents, users or unrevoked keys, and refuses a write past its plan''s limit (PTQ09) or metadata larger than it allows (PTQ13)';

-- A revocation takes the count row before the chain head, as every
-- metered writer does, ending whoever holds it.
create function core.end_usage_holders(p_tenant_id uuid) returns integer
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ended integer;
begin
  perform pg_stat_clear_snapshot();
  -- pgrowlocks names the sessions holding the row's lock, except one taken
  -- inside a savepoint (released or not): its subtransaction's id maps to
  -- no session SQL can see (pid 0). Then every session that could hold it
  -- is ended: those of the service's roles that hold core.tenant_usage
  -- itself and began their transaction before that id. The service never
  -- uses savepoints, so this happens only when someone does, and a request
  -- caught with it is retried.
  select count(*) filter (where pg_terminate_backend(a.pid)) into v_ended
  from (
    select r.pids[i] as pid
    from core.tenant_usage u
    join extensions.pgrowlocks('core.tenant_usage') r on r.locked_row = u.ctid
    cross join lateral generate_subscripts(r.xids, 1) as i
    where u.tenant_id = p_tenant_id and r.pids[i] <> 0
    union
    select l.pid
    from core.tenant_usage u
    join extensions.pgrowlocks('core.tenant_usage') r on r.locked_row = u.ctid
    cross join lateral generate_subscripts(r.xids, 1) as i
    join pg_locks l on l.locktype = 'relation' and l.relation = 'core.tenant_usage'::regclass
      and l.database = (select d.oid from pg_database d where d.datname = current_database())
    join pg_stat_activity s on s.pid = l.pid
    where u.tenant_id = p_tenant_id and r.pids[i] = 0
      and s.backend_xid::text::bigint <= r.xids[i]::text::bigint
  ) holder
  join pg_stat_activity a on a.pid = holder.pid
  where a.usename in ('app_user', 'uber_admin') and a.pid <> pg_backend_pid() and a.datname = current_database();
  return v_ended;
end
$$;
comment on function core.end_usage_holders(uuid) is
  'Ends the app_user or uber_admin sessions that hold this tenant''s usage counts locked; returns how many';

create function core.seize_usage_row(p_tenant_id uuid) returns void
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  for attempt in 1..100 loop
    perform from core.tenant_usage u where u.tenant_id = p_tenant_id for update skip locked;
    if found or not exists (select from core.tenant_usage u where u.tenant_id = p_tenant_id) then
      return;
    end if;
    perform core.end_usage_holders(p_tenant_id);
  end loop;
  perform from core.tenant_usage u where u.tenant_id = p_tenant_id for update;
end
$$;
comment on function core.seize_usage_row(uuid) is
  'Locks the tenant''s usage counts for this transaction, ending the app_user and uber_admin sessions that hold them';
reset role;

alter function core.create_tenant_usage() owner to tenancy_meter;
alter function core.meter_usage() owner to tenancy_meter;
alter function core.seize_usage_row(uuid) owner to tenancy_meter;
alter function core.end_usage_holders(uuid) owner to tenancy_reaper;
grant select (tenant_id, subscription_tier) on core.tenants to tenancy_meter;
grant execute on function core.end_stale_transactions() to tenancy_meter;
grant select on core.plans to tenancy_meter;
grant select, insert (tenant_id), update (documents, users, api_keys) on core.tenant_usage to tenancy_meter;
-- pgrowlocks wants SELECT on the whole table (core.end_usage_holders).
grant select on core.tenant_usage to tenancy_reaper;
set local role tenancy_reaper;
revoke execute on function core.end_usage_holders(uuid) from public;
grant execute on function core.end_usage_holders(uuid) to tenancy_meter;
reset role;
set local role tenancy_meter;
revoke execute on function core.create_tenant_usage(), core.meter_usage(), core.seize_usage_row(uuid) from public;
-- Whoever revokes keys (core.revoke_keys runs as its caller's definer).
grant execute on function core.seize_usage_row(uuid) to tenancy_auth, uber_admin;
reset role;

create trigger create_usage after insert on core.tenants
  for each row execute function core.create_tenant_usage();
create trigger count_usage after insert or delete or update of metadata on core.documents
  for each row execute function core.meter_usage('documents');
create trigger count_usage after insert or delete on core.users
  for each row execute function core.meter_usage('users');
create trigger count_usage after insert or delete or update of revoked_at on core.tenant_api_keys
  for each row execute function core.meter_usage('api_keys');
alter table core.tenants enable always trigger create_usage;
alter table core.documents enable always trigger count_usage;
alter table core.users enable always trigger count_usage;
alter table core.tenant_api_keys enable always trigger count_usage;
alter table core.plans enable always trigger set_updated_at;

create or replace function core.revoke_keys(p_tenant_id uuid, p_key_ids uuid[])
returns table (key_id uuid)
language plpgsql
as $$
#variable_conflict use_column
begin
  -- A session holding these rows, the tenant's counts or its chain head
  -- locked would otherwise keep the keys from being revoked. The counts
  -- first, then the head: the order every metered writer takes them in.
  perform core.end_stale_transactions();
  perform core.seize_usage_row(p_tenant_id);
  perform core.seize_chain_head(p_tenant_id);
  return query
    with recursive doomed (key_id) as (
      select k.key_id from core.tenant_api_keys k where k.tenant_id = p_tenant_id and k.key_id = any (p_key_ids)
      union
      select k.key_id from core.tenant_api_keys k join doomed d on k.issued_by_key_id = d.key_id
      where k.tenant_id = p_tenant_id
    )
    update core.tenant_api_keys k
    set revoked_at = now()
    where k.tenant_id = p_tenant_id and k.key_id in (select d.key_id from doomed d) and k.revoked_at is null
    returning k.key_id;
end
$$;

-- Plans for operators and tenants ------------------------------------------------------

set local role tenancy_owner;
create view platform.plans with (security_invoker = true) as
  select plan_id, tier, max_documents, max_users, max_api_keys, max_metadata_bytes, requests_per_minute,
    created_at, updated_at
  from core.plans;
comment on view platform.plans is 'The plans, one per tier, for platform operators';

create function platform.update_plan(p_plan_id uuid, p_max_documents integer default null, p_max_users integer default null,
  p_max_api_keys integer default null, p_max_metadata_bytes integer default null,
  p_requests_per_minute integer default null)
returns setof platform.plans
language sql
as $$
  update core.plans p
  set max_documents = coalesce(p_max_documents, p.max_documents),
      max_users = coalesce(p_max_users, p.max_users),
      max_api_keys = coalesce(p_max_api_keys, p.max_api_keys),
      max_metadata_bytes = coalesce(p_max_metadata_bytes, p.max_metadata_bytes),
      requests_per_minute = coalesce(p_requests_per_minute, p.requests_per_minute)
  where p.plan_id = p_plan_id
  returning p.plan_id, p.tier, p.max_documents, p.max_users, p.max_api_keys, p.max_metadata_bytes,
    p.requests_per_minute, p.created_at, p.updated_at
$$;
comment on function platform.update_plan(uuid, integer, integer, integer, integer, integer) is
  'Changes the limits of a plan (NULL keeps a limit); every tenant on its tier has them from its next request';

-- The caller's plan, its limits and what the tenant uses of them.
create function api.current_plan() returns jsonb
language sql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  select jsonb_build_object(
    'tier', p.tier,
    'limits', jsonb_build_object('documents', p.max_documents, 'users', p.max_users, 'api_keys', p.max_api_keys,
                                 'metadata_bytes', p.max_metadata_bytes, 'requests_per_minute', p.requests_per_minute),
    'usage', jsonb_build_object('documents', u.documents, 'users', u.users, 'api_keys', u.api_keys))
  from core.tenant_usage u
  join core.tenants t on t.tenant_id = u.tenant_id
  join core.plans p on p.tier = t.subscription_tier
  where u.tenant_id = (select c.tenant_id from core.request_context c)
$$;
comment on function api.current_plan() is
  'The current tenant''s plan: its tier, its limits and the tenant''s usage of them';
reset role;
alter function api.current_plan() owner to tenancy_writer;
grant select on core.plans to tenancy_writer, app_user;
grant select on core.tenant_usage to tenancy_writer;
grant select on core.plans, platform.plans to uber_admin;
grant update (max_documents, max_users, max_api_keys, max_metadata_bytes, requests_per_minute) on core.plans
  to uber_admin;
grant execute on function platform.update_plan(uuid, integer, integer, integer, integer, integer) to uber_admin;
set local role tenancy_writer;
revoke execute on function api.current_plan() from public;
grant execute on function api.current_plan() to app_user;
reset role;
-- A change of a plan is the Platform's: audited in its chain, naming the
-- operator (core.record_audit refuses uber_admin without one).
create trigger record_audit after insert or update or delete on core.plans
  for each row execute function core.record_audit('plan_id');
alter table core.plans enable always trigger record_audit;

-- Settings ------------------------------------------------------------------------------

set local role tenancy_owner;
create function core.settings_error(p_settings jsonb) returns text
language sql immutable
as $$
  select case
    when jsonb_typeof(p_settings -> 'audit_retention_days') not in ('null') and
         (jsonb_typeof(p_settings -> 'audit_retention_days') <> 'number'
          or (p_settings ->> 'audit_retention_days') !~ '^[1-9][0-9]{2,4}$'
          or (p_settings ->> 'audit_retention_days')::int not between 365 and 36500)
      then 'audit_retention_days is a whole number of days from 365 to 36,500'
    when jsonb_typeof(p_settings -> 'api_key_max_lifetime_days') not in ('null') and
         (jsonb_typeof(p_settings -> 'api_key_max_lifetime_days') <> 'number'
          or (p_settings ->> 'api_key_max_lifetime_days') !~ '^[1-9][0-9]{0,4}$'
          or (p_settings ->> 'api_key_max_lifetime_days')::int > 36500)
      then 'api_key_max_lifetime_days is a whole number of days from 1 to 36,500'
    when jsonb_typeof(p_settings -> 'require_two_person_approval') not in ('null', 'boolean')
      then 'require_two_person_approval is true or false'
    when jsonb_typeof(p_settings -> 'currency') not in ('null') and
         (jsonb_typeof(p_settings -> 'currency') <> 'string' or (p_settings ->> 'currency') !~ '^[A-Z]{3}$')
      then 'currency is three capital letters (ISO 4217)'
    when jsonb_typeof(p_settings -> 'data_residency') not in ('null') and
         (jsonb_typeof(p_settings -> 'data_residency') <> 'string'
          or (p_settings ->> 'data_residency') !~ '^[a-z]{2}(-[a-z0-9]{1,8})?$')
      then 'data_residency is a lower-case region code such as eu or us-east'
  end
$$;
comment on function core.settings_error(jsonb) is
  'What is wrong with the settings the database acts on in a settings object (NULL: nothing); other keys are free';
reset role;
-- Every role that writes tenant_configs evaluates its CHECK (below).
grant execute on function core.settings_error(jsonb) to tenancy_writer, tenancy_auth, app_user, uber_admin;

create or replace function api.update_tenant_config(p_settings_patch jsonb)
returns setof api.tenant_config
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_error text := core.settings_error(p_settings_patch);
begin
  if v_error is not null then
    raise exception '%', v_error using errcode = 'PT422';
  end if;
  -- A JSON merge patch of the top level: keys set to null are removed;
  -- nulls nested inside a value are kept as sent.
  return query
    update core.tenant_configs c
    set settings = (c.settings || p_settings_patch)
      - array(select e.key from jsonb_each(p_settings_patch) as e where e.value = 'null'::jsonb)
    where c.tenant_id = (select core.current_tenant_id())
    returning c.tenant_id, c.template_id, c.settings, c.created_at, c.updated_at;
end
$$;

-- Whoever writes the settings: the same rules.
alter table core.tenant_configs add constraint tenant_configs_known_settings_check
  check (core.settings_error(settings) is null) not valid;
-- One row per tenant: validating in this transaction holds the table a moment.
-- squawk-ignore constraint-missing-not-valid
alter table core.tenant_configs validate constraint tenant_configs_known_settings_check;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '120s';

create or replace function api.update_tenant_config(p_settings_patch jsonb)
returns setof api.tenant_config
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_days jsonb := p_settings_patch -> 'api_key_max_lifetime_days';
begin
  if v_days is not null and v_days <> 'null'::jsonb
     and (jsonb_typeof(v_days) <> 'number' or v_days::text !~ '^[1-9][0-9]{0,4}$' or v_days::text::int > 36500) then
    raise exception 'api_key_max_lifetime_days is a whole number of days from 1 to 36,500' using errcode = 'PT422';
  end if;
  -- A JSON merge patch of the top level: keys set to null are removed;
  -- nulls nested inside a value are kept as sent.
  return query
    update core.tenant_configs c
    set settings = (c.settings || p_settings_patch)
      - array(select e.key from jsonb_each(p_settings_patch) as e where e.value = 'null'::jsonb)
    where c.tenant_id = (select core.current_tenant_id())
    returning c.tenant_id, c.template_id, c.settings, c.created_at, c.updated_at;
end
$$;
alter table core.tenant_configs drop constraint tenant_configs_known_settings_check;
drop function core.settings_error(jsonb);

create or replace function core.revoke_keys(p_tenant_id uuid, p_key_ids uuid[])
returns table (key_id uuid)
language plpgsql
as $$
#variable_conflict use_column
begin
  -- A session holding these rows or the tenant's chain head locked would
  -- otherwise keep the keys from being revoked.
  perform core.end_stale_transactions();
  perform core.seize_chain_head(p_tenant_id);
  return query
    with recursive doomed (key_id) as (
      select k.key_id from core.tenant_api_keys k where k.tenant_id = p_tenant_id and k.key_id = any (p_key_ids)
      union
      select k.key_id from core.tenant_api_keys k join doomed d on k.issued_by_key_id = d.key_id
      where k.tenant_id = p_tenant_id
    )
    update core.tenant_api_keys k
    set revoked_at = now()
    where k.tenant_id = p_tenant_id and k.key_id in (select d.key_id from doomed d) and k.revoked_at is null
    returning k.key_id;
end
$$;

drop trigger count_usage on core.tenant_api_keys;
drop trigger count_usage on core.users;
drop trigger count_usage on core.documents;
drop trigger create_usage on core.tenants;
drop function api.current_plan();
drop function platform.update_plan(uuid, integer, integer, integer, integer, integer);
drop view platform.plans;
drop function core.seize_usage_row(uuid);
drop function core.end_usage_holders(uuid);
drop function core.meter_usage();
drop function core.create_tenant_usage();
revoke select (tenant_id, subscription_tier) on core.tenants from tenancy_meter;
revoke execute on function core.end_stale_transactions() from tenancy_meter;
drop table core.tenant_usage;
drop table core.plans;
revoke usage on schema core from tenancy_meter;
-- Roles are shared by every database of the cluster; drop it only when
-- nothing else still refers to it.
do $$
begin
  drop role if exists tenancy_meter;
exception when dependent_objects_still_exist then
  raise notice 'role tenancy_meter is kept: another database of this cluster still uses it';
end
$$;
