-- migrate:up
/*
 * Why: a fintech customer must be able to show who changed what, when and
 * through which request. Every insert, update and delete on a tenant-scoped
 * table writes exactly one audit row in the same transaction, from a trigger,
 * so no code path can forget it. The trail is append-only for every role,
 * the owner included: UPDATE, DELETE and TRUNCATE raise.
 *
 * app_user has no INSERT privilege here: only the SECURITY DEFINER trigger
 * writes, so a client cannot forge entries. There are deliberately no foreign
 * keys to users or API keys: the trail must outlive what it mentions.
 */
-- Fail fast instead of queueing behind long transactions on a live server.
set local lock_timeout = '5s';
set local statement_timeout = '60s';
create table core.audit_logs (
  log_id uuid not null default gen_random_uuid(),
  tenant_id uuid not null references core.tenants (tenant_id),
  user_id uuid,
  api_key_id uuid,
  action text not null check (action ~ '^[a-z][a-z_.]{0,99}$'),
  resource_type text not null check (resource_type ~ '^[a-z][a-z_]{0,99}$'),
  resource_id uuid not null,
  details jsonb not null default '{}' check (jsonb_typeof(details) = 'object'),
  request_id text check (char_length(request_id) <= 200),
  "timestamp" timestamptz not null default now(),
  primary key (tenant_id, log_id)
);
comment on table core.audit_logs is 'Append-only trail of every change to tenant-scoped rows, written by trigger';
comment on column core.audit_logs.log_id is 'Identity of the entry';
comment on column core.audit_logs.tenant_id is 'Tenant whose row changed';
comment on column core.audit_logs.user_id is 'Acting user (app.user_id), when the request was bound to one';
comment on column core.audit_logs.api_key_id is 'API key that made the request (app.api_key_id); NULL for platform operations';
comment on column core.audit_logs.action is 'What happened: insert, update or delete';
comment on column core.audit_logs.resource_type is 'Table the changed row belongs to, e.g. documents';
comment on column core.audit_logs.resource_id is 'Primary id of the changed row within its tenant';
comment on column core.audit_logs.details is 'Changed columns with old and new values (never key_hash) and the database role';
comment on column core.audit_logs.request_id is 'x-request-id of the HTTP request (app.request_id)';
comment on column core.audit_logs."timestamp" is 'Start of the transaction that made the change';

create index audit_logs_tenant_timestamp_idx on core.audit_logs (tenant_id, "timestamp" desc, log_id desc);
create index audit_logs_tenant_user_timestamp_idx on core.audit_logs (tenant_id, user_id, "timestamp" desc, log_id desc);
create index audit_logs_timestamp_idx on core.audit_logs ("timestamp" desc, log_id desc);

create function core.reject_audit_change() returns trigger
language plpgsql volatile
as $$
begin
  raise exception 'audit_logs is append-only: % is not allowed', tg_op
    using errcode = 'insufficient_privilege';
end
$$;
comment on function core.reject_audit_change() is 'Trigger: refuses UPDATE, DELETE and TRUNCATE on the audit trail';

create trigger reject_update_delete before update or delete on core.audit_logs
  for each row execute function core.reject_audit_change();
create trigger reject_truncate before truncate on core.audit_logs
  for each statement execute function core.reject_audit_change();
-- ALWAYS: they fire even with session_replication_role = replica, which a
-- superuser could otherwise set to slip past them.
alter table core.audit_logs enable always trigger reject_update_delete;
alter table core.audit_logs enable always trigger reject_truncate;

alter table core.audit_logs enable row level security;
alter table core.audit_logs force row level security;

-- No update or delete policies: the triggers above refuse both for everyone.
create policy select_own_tenant on core.audit_logs for select
  using (tenant_id = (select core.current_tenant_id()));
create policy insert_own_tenant on core.audit_logs for insert
  with check (tenant_id = (select core.current_tenant_id()));

grant select on core.audit_logs to app_user, uber_admin;

-- TG_ARGV[0] names the column holding the row's id within its tenant.
create function core.record_audit() returns trigger
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_old jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  v_new jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  v_row jsonb := coalesce(v_new, v_old);
  v_not_audited constant text[] := array['key_hash', 'created_at', 'updated_at', 'last_used_at'];
  v_changed text[];
begin
  select coalesce(array_agg(column_name order by column_name), '{}')
  into v_changed
  from jsonb_object_keys(v_row) as column_name
  where column_name <> all (v_not_audited)
    and (tg_op <> 'UPDATE' or v_old -> column_name is distinct from v_new -> column_name);

  -- An update that changed nothing an auditor cares about (say, only
  -- last_used_at) leaves no entry.
  if tg_op = 'UPDATE' and cardinality(v_changed) = 0 then
    return null;
  end if;

  insert into core.audit_logs
    (tenant_id, user_id, api_key_id, action, resource_type, resource_id, details, request_id)
  values (
    (v_row ->> 'tenant_id')::uuid,
    core.current_user_id(),
    core.current_api_key_id(),
    lower(tg_op),
    tg_table_name,
    (v_row ->> tg_argv[0])::uuid,
    jsonb_build_object('changed', to_jsonb(v_changed), 'db_role', session_user)
      || case when v_old is null then '{}' else jsonb_build_object('old', (
           select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_old) where key = any (v_changed))) end
      || case when v_new is null then '{}' else jsonb_build_object('new', (
           select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_new) where key = any (v_changed))) end,
    core.current_request_id()
  );
  return null;
end
$$;
comment on function core.record_audit() is
  'Trigger: writes one audit_logs row per changed row, actor and request taken from the session settings';

create trigger record_audit after insert or update or delete on core.tenants
  for each row execute function core.record_audit('tenant_id');

create view api.audit_logs with (security_invoker = true) as
  select log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id,
         details, request_id, "timestamp"
  from core.audit_logs;
comment on view api.audit_logs is 'Audit trail of the current tenant';
grant select on api.audit_logs to app_user;

create function api.list_audit_logs(
  p_limit integer default 50,
  p_after_timestamp timestamptz default null,
  p_after_log_id uuid default null,
  p_user_id uuid default null,
  p_action text default null,
  p_resource_type text default null,
  p_since timestamptz default null,
  p_until timestamptz default null
) returns setof api.audit_logs
language sql stable
as $$
  select *
  from api.audit_logs a
  where (p_after_timestamp is null or (a."timestamp", a.log_id) < (p_after_timestamp, p_after_log_id))
    and (p_user_id is null or a.user_id = p_user_id)
    and (p_action is null or a.action = p_action)
    and (p_resource_type is null or a.resource_type = p_resource_type)
    and (p_since is null or a."timestamp" >= p_since)
    and (p_until is null or a."timestamp" < p_until)
  order by a."timestamp" desc, a.log_id desc
  limit least(greatest(coalesce(p_limit, 50), 1), 100)
$$;
comment on function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz) is
  'Audit entries of the current tenant, newest first, keyset-paginated after ("timestamp", log_id); since inclusive, until exclusive';
grant execute on function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz)
  to app_user;

create view platform.audit_logs with (security_invoker = true) as
  select log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id,
         details, request_id, "timestamp"
  from core.audit_logs;
comment on view platform.audit_logs is 'Audit trail of every tenant, for platform operators';
grant select on platform.audit_logs to uber_admin;

create function platform.list_audit_logs(
  p_limit integer default 50,
  p_after_timestamp timestamptz default null,
  p_after_log_id uuid default null,
  p_tenant_id uuid default null
) returns setof platform.audit_logs
language sql stable
as $$
  select *
  from platform.audit_logs a
  where (p_after_timestamp is null or (a."timestamp", a.log_id) < (p_after_timestamp, p_after_log_id))
    and (p_tenant_id is null or a.tenant_id = p_tenant_id)
  order by a."timestamp" desc, a.log_id desc
  limit least(greatest(coalesce(p_limit, 50), 1), 100)
$$;
comment on function platform.list_audit_logs(integer, timestamptz, uuid, uuid) is
  'Audit entries across tenants (optionally one), newest first, keyset-paginated';
grant execute on function platform.list_audit_logs(integer, timestamptz, uuid, uuid) to uber_admin;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
drop function platform.list_audit_logs(integer, timestamptz, uuid, uuid);
drop view platform.audit_logs;
drop function api.list_audit_logs(integer, timestamptz, uuid, uuid, text, text, timestamptz, timestamptz);
drop view api.audit_logs;
drop trigger record_audit on core.tenants;
drop function core.record_audit();
drop table core.audit_logs;
drop function core.reject_audit_change();
