-- migrate:up
/*
 * Why: on Citus a trigger fires on a shard, where tg_table_name is the
 * shard's name (documents_102012), not the table's (issue 14). Two trigger
 * functions branched on it: core.record_audit wrote it into the trail as
 * the resource type (and core.audit_logs refuses any type but the tables'
 * names), and core.hold_for_approval chose the change to hold by it. Each
 * trigger now names its table in its arguments, which are the same on
 * every shard: record_audit(<primary-key column>, <table>) and
 * hold_for_approval(<table>). pgtap/30_audit.sql and
 * pgtap/10_rls_invariants.sql check from the catalog that every such
 * trigger names its own table, and that no trigger function of the project
 * reads tg_table_name.
 */
set local lock_timeout = '5s';
set local statement_timeout = '120s';

create or replace function core.record_audit()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_old jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  v_new jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  v_row jsonb := coalesce(v_new, v_old);
  v_not_audited constant text[] := array['key_hash', 'token_hash', 'created_at', 'updated_at', 'last_used_at'];
  v_changed text[];
  v_context record;
  v_operator_id uuid;
begin
  select coalesce(array_agg(column_name order by column_name), '{}')
  into v_changed
  from jsonb_object_keys(v_row) as column_name
  where column_name <> all (v_not_audited)
    and (tg_op <> 'UPDATE' or v_old -> column_name is distinct from v_new -> column_name);

  -- No verified context (a migration, a DBA): the actor columns stay NULL.
  select c.tenant_id, c.user_id, c.api_key_id, c.request_id, c.client_request_id, c.operator_id
  into v_context
  from core.request_context c;

  -- The service's role changes a tenant's rows only under that tenant's
  -- context, so every change it makes has an actor.
  if session_user = 'app_user' and v_context.tenant_id is distinct from (v_row ->> 'tenant_id')::uuid then
    raise exception 'a change through app_user needs the verified request context of the row''s tenant'
      using errcode = 'insufficient_privilege';
  end if;

  -- The bootstrap operator, the one that created itself, is its own actor.
  v_operator_id := coalesce(v_context.operator_id,
    case when tg_argv[1] = 'platform_operators' and tg_op = 'INSERT'
              and v_new ->> 'created_by' = v_new ->> 'operator_id'
         then (v_new ->> 'operator_id')::uuid end);
  -- The platform role changes nothing, not even nothing, without a named
  -- operator who is still active now (an operator revoking itself is
  -- active until that change).
  if session_user = 'uber_admin' and not exists (
       select from core.platform_operators o
       where o.operator_id = v_operator_id
         and (o.revoked_at is null
              or (tg_argv[1] = 'platform_operators' and tg_op = 'UPDATE'
                  and (v_new ->> 'operator_id')::uuid = v_operator_id and v_old ->> 'revoked_at' is null))) then
    raise exception 'a platform change needs a named, active operator (platform.begin_request)'
      using errcode = 'PT401';
  end if;

  -- An update that changed nothing an auditor cares about leaves no entry.
  if tg_op = 'UPDATE' and cardinality(v_changed) = 0 then
    return null;
  end if;

  insert into core.audit_logs
    (tenant_id, user_id, api_key_id, operator_id, action, resource_type, resource_id, details, request_id,
     client_request_id)
  values (
    coalesce((v_row ->> 'tenant_id')::uuid, '00000000-0000-0000-0000-000000000000'),
    v_context.user_id,
    v_context.api_key_id,
    v_operator_id,
    lower(tg_op),
    tg_argv[1],
    (v_row ->> tg_argv[0])::uuid,
    jsonb_build_object('changed', to_jsonb(v_changed), 'db_role', session_user)
      || case when v_old is null then '{}' else jsonb_build_object('old', (
           select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_old) where key = any (v_changed))) end
      || case when v_new is null then '{}' else jsonb_build_object('new', (
           select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_new) where key = any (v_changed))) end,
    v_context.request_id::text,
    v_context.client_request_id
  );
  return null;
end
$function$;

create or replace function core.hold_for_approval()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_operation text;
  v_tenant_id uuid := case when tg_op = 'DELETE' then old.tenant_id else new.tenant_id end;
begin
  -- A tenant's request (a key's context) is held to the tenant's rule; an
  -- operator's, or a DBA's without a context, is not. app_user without a
  -- verified context (one that lapsed mid-statement, say) is held too.
  if not exists (select from core.request_context c where c.api_key_id is not null)
     and session_user <> 'app_user' then
    return case when tg_op = 'DELETE' then old else new end;
  end if;
  -- (Nested: PL/pgSQL would look for each field on every table's row.)
  if tg_argv[0] = 'tenant_api_keys' then
    if 'keys:write' = any (core.effective_permissions(new.permissions, null)) then
      v_operation := 'create_api_key';
    end if;
  elsif tg_argv[0] = 'tenant_configs' then
    v_operation := 'update_tenant_config';
  elsif tg_op = 'DELETE' then
    v_operation := 'delete_user';
  elsif new.role is distinct from old.role then
    v_operation := 'update_user_role';
  end if;
  if v_operation is not null and core.two_people_required(v_tenant_id)
     and not core.approved_now(v_tenant_id, v_operation) then
    raise exception 'this change needs a second person''s approval (require_two_person_approval)'
      using errcode = 'PT428';
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end
$function$;

drop trigger record_audit on core.approval_requests;
create trigger record_audit after insert or update or delete on core.approval_requests
  for each row execute function core.record_audit('approval_id', 'approval_requests');
alter table core.approval_requests enable always trigger record_audit;
drop trigger record_audit on core.documents;
create trigger record_audit after insert or update or delete on core.documents
  for each row execute function core.record_audit('document_id', 'documents');
alter table core.documents enable always trigger record_audit;
drop trigger record_audit on core.plans;
create trigger record_audit after insert or update or delete on core.plans
  for each row execute function core.record_audit('plan_id', 'plans');
alter table core.plans enable always trigger record_audit;
drop trigger record_audit on core.platform_operators;
create trigger record_audit after insert or update or delete on core.platform_operators
  for each row execute function core.record_audit('operator_id', 'platform_operators');
alter table core.platform_operators enable always trigger record_audit;
drop trigger record_audit on core.tenant_api_keys;
create trigger record_audit after insert or update or delete on core.tenant_api_keys
  for each row execute function core.record_audit('key_id', 'tenant_api_keys');
alter table core.tenant_api_keys enable always trigger record_audit;
drop trigger record_audit on core.tenant_configs;
create trigger record_audit after insert or update or delete on core.tenant_configs
  for each row execute function core.record_audit('tenant_id', 'tenant_configs');
alter table core.tenant_configs enable always trigger record_audit;
drop trigger record_audit on core.tenants;
create trigger record_audit after insert or update or delete on core.tenants
  for each row execute function core.record_audit('tenant_id', 'tenants');
alter table core.tenants enable always trigger record_audit;
drop trigger record_audit on core.users;
create trigger record_audit after insert or update or delete on core.users
  for each row execute function core.record_audit('user_id', 'users');
alter table core.users enable always trigger record_audit;
drop trigger hold_for_approval on core.tenant_api_keys;
create trigger hold_for_approval before insert on core.tenant_api_keys
  for each row execute function core.hold_for_approval('tenant_api_keys');
alter table core.tenant_api_keys enable always trigger hold_for_approval;
drop trigger hold_for_approval on core.tenant_configs;
create trigger hold_for_approval before update on core.tenant_configs
  for each row execute function core.hold_for_approval('tenant_configs');
alter table core.tenant_configs enable always trigger hold_for_approval;
drop trigger hold_for_approval on core.users;
create trigger hold_for_approval before delete or update of role on core.users
  for each row execute function core.hold_for_approval('users');
alter table core.users enable always trigger hold_for_approval;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '120s';

drop trigger record_audit on core.approval_requests;
create trigger record_audit after insert or update or delete on core.approval_requests
  for each row execute function core.record_audit('approval_id');
alter table core.approval_requests enable always trigger record_audit;
drop trigger record_audit on core.documents;
create trigger record_audit after insert or update or delete on core.documents
  for each row execute function core.record_audit('document_id');
alter table core.documents enable always trigger record_audit;
drop trigger record_audit on core.plans;
create trigger record_audit after insert or update or delete on core.plans
  for each row execute function core.record_audit('plan_id');
alter table core.plans enable always trigger record_audit;
drop trigger record_audit on core.platform_operators;
create trigger record_audit after insert or update or delete on core.platform_operators
  for each row execute function core.record_audit('operator_id');
alter table core.platform_operators enable always trigger record_audit;
drop trigger record_audit on core.tenant_api_keys;
create trigger record_audit after insert or update or delete on core.tenant_api_keys
  for each row execute function core.record_audit('key_id');
alter table core.tenant_api_keys enable always trigger record_audit;
drop trigger record_audit on core.tenant_configs;
create trigger record_audit after insert or update or delete on core.tenant_configs
  for each row execute function core.record_audit('tenant_id');
alter table core.tenant_configs enable always trigger record_audit;
drop trigger record_audit on core.tenants;
create trigger record_audit after insert or update or delete on core.tenants
  for each row execute function core.record_audit('tenant_id');
alter table core.tenants enable always trigger record_audit;
drop trigger record_audit on core.users;
create trigger record_audit after insert or update or delete on core.users
  for each row execute function core.record_audit('user_id');
alter table core.users enable always trigger record_audit;
drop trigger hold_for_approval on core.tenant_api_keys;
create trigger hold_for_approval before insert on core.tenant_api_keys
  for each row execute function core.hold_for_approval();
alter table core.tenant_api_keys enable always trigger hold_for_approval;
drop trigger hold_for_approval on core.tenant_configs;
create trigger hold_for_approval before update on core.tenant_configs
  for each row execute function core.hold_for_approval();
alter table core.tenant_configs enable always trigger hold_for_approval;
drop trigger hold_for_approval on core.users;
create trigger hold_for_approval before delete or update of role on core.users
  for each row execute function core.hold_for_approval();
alter table core.users enable always trigger hold_for_approval;

create or replace function core.record_audit()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_old jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  v_new jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  v_row jsonb := coalesce(v_new, v_old);
  v_not_audited constant text[] := array['key_hash', 'token_hash', 'created_at', 'updated_at', 'last_used_at'];
  v_changed text[];
  v_context record;
  v_operator_id uuid;
begin
  select coalesce(array_agg(column_name order by column_name), '{}')
  into v_changed
  from jsonb_object_keys(v_row) as column_name
  where column_name <> all (v_not_audited)
    and (tg_op <> 'UPDATE' or v_old -> column_name is distinct from v_new -> column_name);

  -- No verified context (a migration, a DBA): the actor columns stay NULL.
  select c.tenant_id, c.user_id, c.api_key_id, c.request_id, c.client_request_id, c.operator_id
  into v_context
  from core.request_context c;

  -- The service's role changes a tenant's rows only under that tenant's
  -- context, so every change it makes has an actor.
  if session_user = 'app_user' and v_context.tenant_id is distinct from (v_row ->> 'tenant_id')::uuid then
    raise exception 'a change through app_user needs the verified request context of the row''s tenant'
      using errcode = 'insufficient_privilege';
  end if;

  -- The bootstrap operator, the one that created itself, is its own actor.
  v_operator_id := coalesce(v_context.operator_id,
    case when tg_table_name = 'platform_operators' and tg_op = 'INSERT'
              and v_new ->> 'created_by' = v_new ->> 'operator_id'
         then (v_new ->> 'operator_id')::uuid end);
  -- The platform role changes nothing, not even nothing, without a named
  -- operator who is still active now (an operator revoking itself is
  -- active until that change).
  if session_user = 'uber_admin' and not exists (
       select from core.platform_operators o
       where o.operator_id = v_operator_id
         and (o.revoked_at is null
              or (tg_table_name = 'platform_operators' and tg_op = 'UPDATE'
                  and (v_new ->> 'operator_id')::uuid = v_operator_id and v_old ->> 'revoked_at' is null))) then
    raise exception 'a platform change needs a named, active operator (platform.begin_request)'
      using errcode = 'PT401';
  end if;

  -- An update that changed nothing an auditor cares about leaves no entry.
  if tg_op = 'UPDATE' and cardinality(v_changed) = 0 then
    return null;
  end if;

  insert into core.audit_logs
    (tenant_id, user_id, api_key_id, operator_id, action, resource_type, resource_id, details, request_id,
     client_request_id)
  values (
    coalesce((v_row ->> 'tenant_id')::uuid, '00000000-0000-0000-0000-000000000000'),
    v_context.user_id,
    v_context.api_key_id,
    v_operator_id,
    lower(tg_op),
    tg_table_name,
    (v_row ->> tg_argv[0])::uuid,
    jsonb_build_object('changed', to_jsonb(v_changed), 'db_role', session_user)
      || case when v_old is null then '{}' else jsonb_build_object('old', (
           select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_old) where key = any (v_changed))) end
      || case when v_new is null then '{}' else jsonb_build_object('new', (
           select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_new) where key = any (v_changed))) end,
    v_context.request_id::text,
    v_context.client_request_id
  );
  return null;
end
$function$;

create or replace function core.hold_for_approval()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_operation text;
  v_tenant_id uuid := case when tg_op = 'DELETE' then old.tenant_id else new.tenant_id end;
begin
  -- A tenant's request (a key's context) is held to the tenant's rule; an
  -- operator's, or a DBA's without a context, is not. app_user without a
  -- verified context (one that lapsed mid-statement, say) is held too.
  if not exists (select from core.request_context c where c.api_key_id is not null)
     and session_user <> 'app_user' then
    return case when tg_op = 'DELETE' then old else new end;
  end if;
  -- (Nested: PL/pgSQL would look for each field on every table's row.)
  if tg_table_name = 'tenant_api_keys' then
    if 'keys:write' = any (core.effective_permissions(new.permissions, null)) then
      v_operation := 'create_api_key';
    end if;
  elsif tg_table_name = 'tenant_configs' then
    v_operation := 'update_tenant_config';
  elsif tg_op = 'DELETE' then
    v_operation := 'delete_user';
  elsif new.role is distinct from old.role then
    v_operation := 'update_user_role';
  end if;
  if v_operation is not null and core.two_people_required(v_tenant_id)
     and not core.approved_now(v_tenant_id, v_operation) then
    raise exception 'this change needs a second person''s approval (require_two_person_approval)'
      using errcode = 'PT428';
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end
$function$;
