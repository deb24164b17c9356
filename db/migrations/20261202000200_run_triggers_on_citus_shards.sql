-- migrate:up
/*
 * Why: on Citus a trigger fires on a shard, where tg_table_name is the
 * shard's name (documents_102012), not the table's, and an INSERT may hold
 * no subquery in its VALUES (issue 14). Two trigger
 * functions branched on it: core.record_audit wrote it into the trail as
 * the resource type (and core.audit_logs refuses any type but the tables'
 * names), and core.hold_for_approval chose the change to hold by it. Each
 * trigger now names its table in its arguments, which are the same on
 * every shard: record_audit(<primary-key column>, <table>) and
 * hold_for_approval(<table>). pgtap/30_audit.sql and
 * pgtap/10_rls_invariants.sql check from the catalog that every such
 * trigger names its own table, and that no trigger function of the project
 * reads tg_table_name.
 *
 * Three more things a trigger meets on a shard: core.record_audit computes
 * an entry's details before it inserts the entry (Citus takes no subquery
 * in an INSERT's VALUES); core.chain_audit_row hashes the row as a
 * core.audit_logs (on a shard it is of the shard's type, which
 * core.audit_record does not take); and core.meter_usage returns its count
 * with a searched CASE (Citus sends a simple CASE over a parameter to the
 * shard as a comparison of text with boolean).
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
  v_details jsonb;
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

  -- Computed before the INSERT: Citus takes no subquery in an INSERT's VALUES.
  v_details := jsonb_build_object('changed', to_jsonb(v_changed), 'db_role', session_user)
    || case when v_old is null then '{}' else jsonb_build_object('old', (
         select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_old) where key = any (v_changed))) end
    || case when v_new is null then '{}' else jsonb_build_object('new', (
         select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_new) where key = any (v_changed))) end;

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
    v_details,
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

create or replace function core.chain_audit_row()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
declare
  v_head record;
  v_last record;
  -- The row as core.audit_logs: on a Citus shard it is of the shard's type.
  v_entry core.audit_logs;
begin
  -- The partition key: every row of a transaction lies in now()'s partition.
  if new."timestamp" is distinct from now() then
    raise exception 'an audit row''s timestamp is the start of its transaction'
      using errcode = 'check_violation';
  end if;
  -- Whatever the writer supplied, the chain decides these.
  new.details_salt := extensions.gen_random_bytes(16);
  new.details_sha256 := sha256(new.details_salt || convert_to(new.details::text, 'UTF8'));
  -- The head's row lock orders the tenant's writers: a second one waits
  -- here until the first commits, then reads what it wrote.
  select h.seq, h.hash into v_head from core.audit_chain_heads h where h.tenant_id = new.tenant_id
    for update skip locked;
  if not found then
    if exists (select from core.audit_chain_heads h where h.tenant_id = new.tenant_id) then
      -- Another writer holds the head: wait for it, unless its transaction
      -- has outlived any request, when it is ended first.
      perform core.end_stale_transactions();
    else
      insert into core.audit_chain_heads (tenant_id, seq, hash)
        values (new.tenant_id, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
        on conflict (tenant_id) do nothing;
    end if;
    select h.seq, h.hash into v_head from core.audit_chain_heads h where h.tenant_id = new.tenant_id for update;
  end if;
  -- A lock taken inside a savepoint is held under the subtransaction's id,
  -- which nothing outside the session can trace back to it, so a revocation
  -- could not end its holder: the service's roles chain no row that way.
  if session_user in ('app_user', 'uber_admin') and not exists (
       select from core.audit_chain_heads h
       where h.tenant_id = new.tenant_id and h.xmax::text = (pg_current_xact_id()::text::bigint % 4294967296)::text) then
    raise exception 'the service''s roles make no audited change inside a savepoint'
      using errcode = 'invalid_transaction_state';
  end if;
  -- Rows this transaction chained already lie past the head, which moves
  -- once, at commit (core.advance_chain_head): updating it for every row
  -- would make a transaction's n rows cost n^2.
  select a.seq, a.chain_hash as hash into v_last
    from core.audit_logs a where a.tenant_id = new.tenant_id and a.seq > v_head.seq and a."timestamp" = now()
    order by a.seq desc limit 1;
  if found then
    new.seq := v_last.seq + 1;
    new.prev_hash := v_last.hash;
  else
    new.seq := v_head.seq + 1;
    new.prev_hash := v_head.hash;
  end if;
  -- The clock once the head is ours: recorded_at then rises with seq.
  new.recorded_at := clock_timestamp();
  v_entry := new;
  new.chain_hash := sha256(new.prev_hash || core.audit_record(v_entry));
  return new;
end
$function$;

create or replace function core.meter_usage()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
  -- (A searched CASE: Citus sends a simple one to the shard mangled.)
  returning case when v_kind = 'documents' then u.documents when v_kind = 'users' then u.users else u.api_keys end
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
$function$;

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

create or replace function core.chain_audit_row()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
declare
  v_head record;
  v_last record;
begin
  -- The partition key: every row of a transaction lies in now()'s partition.
  if new."timestamp" is distinct from now() then
    raise exception 'an audit row''s timestamp is the start of its transaction'
      using errcode = 'check_violation';
  end if;
  -- Whatever the writer supplied, the chain decides these.
  new.details_salt := extensions.gen_random_bytes(16);
  new.details_sha256 := sha256(new.details_salt || convert_to(new.details::text, 'UTF8'));
  -- The head's row lock orders the tenant's writers: a second one waits
  -- here until the first commits, then reads what it wrote.
  select h.seq, h.hash into v_head from core.audit_chain_heads h where h.tenant_id = new.tenant_id
    for update skip locked;
  if not found then
    if exists (select from core.audit_chain_heads h where h.tenant_id = new.tenant_id) then
      -- Another writer holds the head: wait for it, unless its transaction
      -- has outlived any request, when it is ended first.
      perform core.end_stale_transactions();
    else
      insert into core.audit_chain_heads (tenant_id, seq, hash)
        values (new.tenant_id, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
        on conflict (tenant_id) do nothing;
    end if;
    select h.seq, h.hash into v_head from core.audit_chain_heads h where h.tenant_id = new.tenant_id for update;
  end if;
  -- A lock taken inside a savepoint is held under the subtransaction's id,
  -- which nothing outside the session can trace back to it, so a revocation
  -- could not end its holder: the service's roles chain no row that way.
  if session_user in ('app_user', 'uber_admin') and not exists (
       select from core.audit_chain_heads h
       where h.tenant_id = new.tenant_id and h.xmax::text = (pg_current_xact_id()::text::bigint % 4294967296)::text) then
    raise exception 'the service''s roles make no audited change inside a savepoint'
      using errcode = 'invalid_transaction_state';
  end if;
  -- Rows this transaction chained already lie past the head, which moves
  -- once, at commit (core.advance_chain_head): updating it for every row
  -- would make a transaction's n rows cost n^2.
  select a.seq, a.chain_hash as hash into v_last
    from core.audit_logs a where a.tenant_id = new.tenant_id and a.seq > v_head.seq and a."timestamp" = now()
    order by a.seq desc limit 1;
  if found then
    new.seq := v_last.seq + 1;
    new.prev_hash := v_last.hash;
  else
    new.seq := v_head.seq + 1;
    new.prev_hash := v_head.hash;
  end if;
  -- The clock once the head is ours: recorded_at then rises with seq.
  new.recorded_at := clock_timestamp();
  new.chain_hash := sha256(new.prev_hash || core.audit_record(new));
  return new;
end
$function$;

create or replace function core.meter_usage()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;
