-- migrate:up
/*
 * Why: the schema is to run distributed on Citus too, every tenant table
 * distributed by tenant_id and co-located (issue 14). This migration makes
 * the request context work on the workers, where the policies are
 * evaluated, and adds core.distribute_on_citus(), which distributes the
 * tables when the citus extension is there and does nothing otherwise. The
 * migration calls it: on a single server it only says so.
 *
 * The context on the workers. A context was bound to the backend that
 * signed it and the start of its transaction, and to the number that
 * session signed last; no worker knows any of them. On Citus it is bound
 * instead to the distributed transaction (core.distributed_transaction):
 * the coordinator's node, its number for the transaction and the time it
 * began, which Citus hands to every node the transaction reaches and which
 * no runtime role can set (Citus's functions are not theirs to run). A
 * context replayed into another transaction, on the coordinator or on a
 * worker, fails verification as before; within one transaction the
 * contexts it signed are interchangeable (the "last number" binding does
 * not carry over), which gives a session nothing its own keys did not. The
 * signing key is copied to a table of each worker's own: a policy
 * evaluated on a shard may read no Citus table. api.begin_request passes
 * the context on with SET LOCAL (set_config is not passed on) once the
 * transaction has reached a worker; before, on Citus, the context is bound
 * to the backend as on one server, so the workers refuse it.
 *
 * What distributing changes (core.distribute_on_citus, run as a superuser
 * on the coordinator once the workers have joined):
 * - core.tenants is distributed by tenant_id, every table with a tenant_id
 *   co-located with it; the templates, plans, platform operators, their
 *   idempotency keys and the two registries are reference tables, whole on
 *   every node. A table of neither kind stops it: a new table must say
 *   which it is.
 * - Citus takes no sublink in a policy of a distributed table: each
 *   policy's (select ... from core.request_context c ...) becomes a call of
 *   core.current_tenant_id(), core.context_tenant_id(permission),
 *   core.current_api_key_id() or core.context_user_id(role), the same
 *   reads.
 * - Foreign keys and triggers are taken off while the rows are copied into
 *   the shards, and put back; a trigger of a reference table that writes
 *   elsewhere fires on the coordinator's copy alone (core.on_coordinator).
 *   A key bound to a deleted user now loses its user in
 *   core.revoke_keys_of_deleted_user, here as on one server: Citus takes no
 *   ON DELETE SET NULL on a key that holds the distribution column.
 * - The objects the shards need (the functions of core, the views,
 *   pgcrypto, the signing key) are made on every worker with the
 *   coordinator's owners and grants; the definers' owners may log in, on
 *   every node (Citus keeps roles alike), and use their schemas, as Citus
 *   connects as them (they have no password, and the workers take only the
 *   nodes' certificate); a role that may insert some columns of a table may
 *   insert all of them, since Citus fills in the defaults (issue 14 keeps
 *   the runtime roles' inserts open: they are to go through definers).
 * - Citus's own functions are revoked from the runtime roles on every node
 *   but get_current_transaction_id, and on the workers the six Citus calls
 *   over its own connections.
 */
set local lock_timeout = '5s';
set local statement_timeout = '300s';

-- The context, bound to the distributed transaction on Citus ------------------------

-- Whether the citus extension is installed here: its own
-- get_current_transaction_id, which no one else's function of that name
-- stands in for.
create function core.on_citus() returns boolean
language sql stable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select exists (
    select from pg_catalog.pg_depend d join pg_catalog.pg_extension e on e.oid = d.refobjid
    where d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
      and d.objid = pg_catalog.to_regprocedure('pg_catalog.get_current_transaction_id()')
      and d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass and d.deptype = 'e' and e.extname = 'citus')
$$;
alter function core.on_citus() owner to tenancy_owner;
comment on function core.on_citus() is
  'Whether the citus extension is installed in this database (its get_current_transaction_id, not another of that name)';
grant execute on function core.on_citus() to app_user, uber_admin, tenancy_auth, tenancy_auditor, tenancy_writer,
  tenancy_meter, tenancy_reaper;

create function core.distributed_transaction() returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v record;
begin
  -- Only Citus's own: a function of that name anyone else made (a
  -- superuser could) would let contexts be replayed.
  if not core.on_citus() then
    return null;
  end if;
  select t.initiator_node_identifier, t.transaction_number, t.transaction_stamp
  into v from pg_catalog.get_current_transaction_id() t;
  if coalesce(v.transaction_number, 0) = 0 then
    return null;
  end if;
  return format('citus:%s:%s:%s', v.initiator_node_identifier, v.transaction_number,
    (extract(epoch from v.transaction_stamp) * 1000000)::bigint);
end
$$;
alter function core.distributed_transaction() owner to tenancy_owner;
-- Run by whoever runs core.context_mac; on Citus only tenancy_auth may read
-- the distributed transaction (core.distribute_on_citus grants it).
grant execute on function core.distributed_transaction()
  to app_user, uber_admin, tenancy_auth, tenancy_auditor, tenancy_writer;
comment on function core.distributed_transaction() is
  'On Citus, the distributed transaction every node taking part in it reads alike; NULL on a single server or before the transaction reaches another node';

create or replace function core.context_mac(p_payload text, p_secret bytea) returns bytea
language sql stable parallel restricted
as $$
  select extensions.hmac(
    pg_catalog.convert_to(p_payload, 'UTF8')
      operator(pg_catalog.||) coalesce(pg_catalog.convert_to(core.distributed_transaction(), 'UTF8'),
        pg_catalog.int4send(pg_catalog.pg_backend_pid())
          operator(pg_catalog.||) pg_catalog.timestamptz_send(pg_catalog.transaction_timestamp())),
    p_secret, 'sha256')
$$;

create or replace function core.context_verifies(p_signed text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_nonce bigint;
begin
  -- On Citus the context is bound to the distributed transaction alone: a
  -- worker cannot know which number the coordinator's session signed last.
  if core.distributed_transaction() is not null then
    v_nonce := 0;
  else
    begin
      v_nonce := currval('core.context_nonce');
    exception
      -- This session never signed: nothing it holds can verify.
      when object_not_in_prerequisite_state then
        return false;
    end;
  end if;
  return encode(core.context_mac(left(p_signed, -65) || '|' || v_nonce,
                                 (select k.secret from core.context_signing_key k)), 'hex') = right(p_signed, 64);
end
$function$;

create or replace function core.sign_context(p_tenant_id uuid, p_api_key_id uuid, p_user_id uuid, p_user_role text, p_permissions text[], p_request_id uuid, p_client_request_id text, p_operator_id uuid DEFAULT NULL::uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
declare
  v_payload text;
  v_context text;
  v_distributed boolean;
begin
  if p_request_id is null then
    raise exception 'a request id is required' using errcode = 'null_value_not_allowed';
  end if;
  -- The separator can appear in no field: ids are uuids, roles and
  -- permissions come from checked columns, and a client's id is checked here.
  if p_client_request_id !~ '^[A-Za-z0-9._:-]{1,128}$' then
    raise exception 'a client request id is 1-128 characters from A-Z a-z 0-9 . _ : -'
      using errcode = 'invalid_parameter_value';
  end if;
  -- Under REPEATABLE READ or SERIALIZABLE the whole transaction reads one
  -- snapshot, possibly an old exported one: a revoked key would still pass.
  if current_setting('transaction_isolation') <> 'read committed' then
    raise exception 'a request context is signed only in a READ COMMITTED transaction'
      using errcode = 'invalid_transaction_state';
  end if;
  v_payload := concat_ws('|', 'v4', coalesce(p_tenant_id::text, ''), coalesce(p_api_key_id::text, ''),
    coalesce(p_user_id::text, ''), coalesce(p_user_role, ''), array_to_string(p_permissions, ','), p_request_id,
    coalesce(p_client_request_id, ''), (extract(epoch from clock_timestamp()) * 1000000)::bigint,
    coalesce(p_operator_id::text, ''));
  -- The number is signed, not shown: the MAC covers payload and number.
  v_distributed := core.distributed_transaction() is not null;
  -- On Citus a transaction gets its distributed identity when it first
  -- reaches a worker: the tenant's row (or the platform's) is read there
  -- first, so that the context is bound to it.
  -- (Nested: on a single server there is no pg_dist_partition to plan a
  -- query on.)
  if not v_distributed and to_regclass('pg_catalog.pg_dist_partition') is not null then
    if exists (select from pg_catalog.pg_dist_partition d where d.logicalrelid = 'core.tenants'::regclass) then
      perform from core.tenants t where t.tenant_id = coalesce(p_tenant_id, '00000000-0000-0000-0000-000000000000');
      v_distributed := core.distributed_transaction() is not null;
    end if;
  end if;
  v_context := v_payload || '|' || encode(core.context_mac(
    v_payload || '|' || case when v_distributed then 0 else nextval('core.context_nonce') end,
    (select k.secret from core.context_signing_key k)), 'hex');
  perform set_config('app.context', v_context, true);
  -- On Citus the workers evaluate the policies: SET LOCAL, unlike
  -- set_config, is passed on to every node the transaction reaches.
  if v_distributed then
    perform set_config('citus.propagate_set_commands', 'local', true);
    execute format('set local app.context = %L', v_context);
  end if;
end
$function$;

-- The audit trail's time, alike on every node ---------------------------------------
--
-- An audit row's timestamp is its transaction's time, and the chain checks
-- that it is: on Citus now() is each node's own transaction's start, and a
-- row the coordinator writes is chained on a worker. There the time is the
-- distributed transaction's (the coordinator's, when it first reached
-- another node); on a single server it is now().

set local role tenancy_owner;
create function core.transaction_time() returns timestamptz
language plpgsql stable parallel restricted
set search_path = pg_catalog, pg_temp
as $$
declare
  v_stamp timestamptz;
begin
  if not core.on_citus() then
    return now();
  end if;
  select t.transaction_stamp into v_stamp from pg_catalog.get_current_transaction_id() t
  where t.transaction_number <> 0;
  return coalesce(v_stamp, now());
end
$$;
comment on function core.transaction_time() is
  'The transaction''s time: now() on a single server, the distributed transaction''s on Citus, alike on every node';
grant execute on function core.transaction_time() to app_user, uber_admin, tenancy_auth, tenancy_auditor, tenancy_writer,
  tenancy_meter, tenancy_reaper;
reset role;
alter table core.audit_logs alter column "timestamp" set default core.transaction_time();

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
  -- The partition key: every row of a transaction lies in the partition of
  -- its transaction's time (core.transaction_time).
  if new."timestamp" is distinct from core.transaction_time() then
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
    from core.audit_logs a where a.tenant_id = new.tenant_id and a.seq > v_head.seq and a."timestamp" = core.transaction_time()
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

create or replace function core.advance_chain_head()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  -- Fired at commit for each row; only a tenant's last row moves the head.
  if not exists (select from core.audit_logs a
                 where a.tenant_id = new.tenant_id and a.seq > new.seq and a."timestamp" = core.transaction_time()) then
    update core.audit_chain_heads h set seq = new.seq, hash = new.chain_hash
      where h.tenant_id = new.tenant_id and h.seq < new.seq;
  end if;
  return null;
end
$function$;

-- The policies' reads, as functions -----------------------------------------------

set local role tenancy_owner;
create function core.context_tenant_id(p_permission text) returns uuid
language plpgsql stable parallel restricted
set search_path = pg_catalog, pg_temp
as $$
begin
  return (select c.tenant_id from core.request_context c where p_permission = any (c.permissions));
end
$$;
comment on function core.context_tenant_id(text) is
  'The verified context''s tenant when its key holds the permission; a policy''s read on Citus, which takes no sublink';
create function core.context_user_id(p_role text) returns uuid
language plpgsql stable parallel restricted
set search_path = pg_catalog, pg_temp
as $$
begin
  return (select c.user_id from core.request_context c where p_role is null or c.user_role = p_role);
end
$$;
comment on function core.context_user_id(text) is
  'The verified context''s user, when of the role given (NULL: any); a policy''s read on Citus, which takes no sublink';
grant execute on function core.context_tenant_id(text), core.context_user_id(text)
  to app_user, uber_admin, tenancy_auth, tenancy_writer;
create function core.on_coordinator() returns boolean
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if to_regclass('pg_catalog.pg_dist_local_group') is null then
    return true;
  end if;
  return (select g.groupid = 0 from pg_catalog.pg_dist_local_group g);
end
$$;
comment on function core.on_coordinator() is
  'Whether this node is the Citus coordinator, or a single server: where a reference table''s triggers that write elsewhere fire';
grant execute on function core.on_coordinator() to app_user, uber_admin, tenancy_auth, tenancy_writer;

reset role;

create or replace function core.revoke_keys_of_deleted_user()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  perform core.revoke_keys(old.tenant_id,
    array(select k.key_id from core.tenant_api_keys k where k.tenant_id = old.tenant_id and k.user_id = old.user_id));
  -- The keys stay, bound to nobody: what ON DELETE SET NULL (user_id) did,
  -- which Citus takes on no foreign key that holds the distribution column.
  update core.tenant_api_keys k set user_id = null where k.tenant_id = old.tenant_id and k.user_id = old.user_id;
  return old;
end
$function$;

alter table core.tenant_api_keys drop constraint tenant_api_keys_tenant_id_user_id_fkey;
alter table core.tenant_api_keys add constraint tenant_api_keys_tenant_id_user_id_fkey
  foreign key (tenant_id, user_id) references core.users (tenant_id, user_id) not valid;
-- Keys are few: validating them in the migration's transaction is brief.
-- squawk-ignore constraint-missing-not-valid
alter table core.tenant_api_keys validate constraint tenant_api_keys_tenant_id_user_id_fkey;
grant update (user_id) on core.tenant_api_keys to tenancy_auth;

-- Distributing ------------------------------------------------------------------------

create function core.on_workers(p_command text) returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_failed text;
begin
  select string_agg(w.nodename || ':' || w.nodeport || ' ' || w.result, '; ') into v_failed
  from run_command_on_workers('begin; set local citus.enable_ddl_propagation = off; ' || p_command || '; commit') w
  where not w.success;
  if v_failed is not null then
    raise exception 'a command failed on a worker: %', v_failed;
  end if;
end
$$;
comment on function core.on_workers(text) is
  'Runs a command on every Citus worker as the superuser, in a transaction of its own, not passed on from there';
revoke execute on function core.on_workers(text) from public;
-- Run by a superuser, as the caller: owned like every function of the project.
alter function core.on_workers(text) owner to tenancy_owner;

create function core.policy_without_sublinks(p_expr text) returns text
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
declare
  v text := regexp_replace(p_expr, '\s+', ' ', 'g');
begin
  if v is null then return null; end if;
  v := regexp_replace(v, '\( SELECT c\.tenant_id FROM core\.request_context c WHERE \(''([a-z:*]+)''::text = ANY \(c\.permissions\)\)\)',
    'core.context_tenant_id(''\1'')', 'g');
  v := replace(v, '( SELECT c.tenant_id FROM core.request_context c)', 'core.current_tenant_id()');
  v := replace(v, '( SELECT c.api_key_id FROM core.request_context c)', 'core.current_api_key_id()');
  v := regexp_replace(v, '\( SELECT c\.user_id FROM core\.request_context c WHERE \(c\.user_role = ''([a-z_]+)''::text\)\)',
    'core.context_user_id(''\1'')', 'g');
  v := replace(v, '( SELECT c.user_id FROM core.request_context c)', 'core.context_user_id(NULL)');
  if v ~* 'select' then
    raise exception 'a policy of a shape Citus cannot take and this function does not know: %', p_expr;
  end if;
  return case when v = regexp_replace(p_expr, '\s+', ' ', 'g') then p_expr else v end;
end
$$;
comment on function core.policy_without_sublinks(text) is
  'A policy''s expression with its reads of core.request_context as function calls, which Citus takes';
revoke execute on function core.policy_without_sublinks(text) from public;
alter function core.policy_without_sublinks(text) owner to tenancy_owner;

create function core.distribute_on_citus() returns text
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_reference constant regclass[] := array['core.templates', 'core.plans', 'core.platform_operators',
    'core.platform_idempotency_keys', 'core.tenant_domains', 'core.api_key_hashes'];
  v_local constant regclass[] := array['core.context_signing_key'];
  v_rebuild text[] := '{}';
  v_row record;
  v_expr text;
  v_qual text;
  v_check text;
begin
  if not exists (select from pg_extension where extname = 'citus') then
    return 'the citus extension is not installed in this database: nothing to distribute';
  end if;
  if exists (select from pg_dist_partition where logicalrelid = 'core.tenants'::regclass) then
    return 'already distributed';
  end if;
  if not exists (select from pg_dist_node where groupid <> 0 and isactive and noderole = 'primary') then
    raise exception 'the Citus cluster has no worker yet: add the workers (citus_add_node), then distribute';
  end if;
  perform set_config('citus.enable_unsafe_triggers', 'on', true);
  -- Foreign keys to reference tables need one connection per node for the
  -- whole transaction.
  perform set_config('citus.multi_shard_modify_mode', 'sequential', true);

  -- Citus opens its connections to the workers as the role running the
  -- statement: a definer function's owner too, which must be able to log
  -- in. Citus keeps a role alike on every node, so the owners may log in on
  -- the coordinator too; no node takes a password for them (they have
  -- none) and the nodes' certificate stands for any role already.
  for v_row in
    select r.rolname from pg_roles r
    where not r.rolcanlogin and r.rolname !~ '^pg_'
      and (exists (select from pg_proc p where p.proowner = r.oid and p.pronamespace in ('core'::regnamespace, 'api'::regnamespace, 'platform'::regnamespace))
           or exists (select from pg_class c where c.relowner = r.oid and c.relnamespace in ('core'::regnamespace, 'api'::regnamespace, 'platform'::regnamespace)))
  loop
    execute format('alter role %I login', v_row.rolname);
  end loop;

  -- The context's signing key, on every worker, which verifies contexts
  -- too: a table of each node's own, outside Citus (a policy evaluated on a
  -- shard may read no Citus table), holding the coordinator's key.
  perform core.on_workers(format(
    'create schema if not exists core authorization tenancy_owner; '
    || 'create table if not exists core.context_signing_key (only_row boolean default true not null primary key, '
    || 'secret bytea not null, created_at timestamptz default now() not null, '
    || 'constraint context_signing_key_only_row_check check (only_row), '
    || 'constraint context_signing_key_secret_check check (octet_length(secret) = 32)); '
    || 'alter table core.context_signing_key owner to tenancy_owner; '
    || 'revoke all on table core.context_signing_key from public; '
    || 'grant select on table core.context_signing_key to tenancy_auth; '
    || 'delete from core.context_signing_key; '
    || 'insert into core.context_signing_key (only_row, secret, created_at) values (true, %L, %L)',
    k.secret, k.created_at))
  from core.context_signing_key k;

  -- Citus makes each object on the workers as its owner: the owner may use
  -- the schemas its objects are in (the definer roles could not, on one node).
  for v_row in
    select distinct n.nspname, o.owner
    from (select pronamespace as nsp, proowner::regrole::text as owner from pg_proc
          union select relnamespace, relowner::regrole::text from pg_class) o
    join pg_namespace n on n.oid = o.nsp
    where n.nspname in ('core', 'api', 'platform', 'extensions') and o.owner <> 'tenancy_owner'
  loop
    execute format('grant usage on schema %I to %I', v_row.nspname, v_row.owner);
  end loop;

  -- Foreign keys and triggers come off while the rows are copied into the
  -- shards (a trigger would fire for every copied row), and back after.
  for v_row in
    select c.oid, c.conrelid::regclass as rel, c.conname,
           format('alter table %s add constraint %I %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid)) as ddl
    from pg_constraint c join pg_class r on r.oid = c.conrelid
    where c.contype = 'f' and r.relnamespace = 'core'::regnamespace and c.conparentid = 0
  loop
    v_rebuild := v_rebuild || v_row.ddl;
    execute format('alter table %s drop constraint %I', v_row.rel, v_row.conname);
  end loop;
  for v_row in
    select t.tgrelid::regclass as rel, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid) as ddl, t.tgtype
    from pg_trigger t join pg_class r on r.oid = t.tgrelid
    where not t.tgisinternal and r.relnamespace = 'core'::regnamespace and t.tgparentid = 0
  loop
    v_expr := v_row.ddl;
    -- A trigger on a reference table fires on every node's copy: one that
    -- writes elsewhere does so on the coordinator's alone.
    if v_row.rel = any (v_reference) and v_row.tgtype & 2 = 0 then
      v_expr := replace(v_expr, ' FOR EACH ROW EXECUTE ', ' FOR EACH ROW WHEN (core.on_coordinator()) EXECUTE ');
    end if;
    v_rebuild := v_rebuild || v_expr
      || format('alter table %s enable always trigger %I', v_row.rel, v_row.tgname);
    execute format('drop trigger %I on %s', v_row.tgname, v_row.rel);
  end loop;

  -- Policies: the context read through functions, not sublinks.
  for v_row in
    select p.polname, p.polrelid::regclass as rel, pg_get_expr(p.polqual, p.polrelid) as qual,
           pg_get_expr(p.polwithcheck, p.polrelid) as with_check
    from pg_policy p join pg_class r on r.oid = p.polrelid
    where r.relnamespace = 'core'::regnamespace
  loop
    v_qual := core.policy_without_sublinks(v_row.qual);
    v_check := core.policy_without_sublinks(v_row.with_check);
    if v_qual is distinct from v_row.qual or v_check is distinct from v_row.with_check then
      execute format('alter policy %I on %s', v_row.polname, v_row.rel)
        || coalesce(' using (' || v_qual || ')', '') || coalesce(' with check (' || v_check || ')', '');
    end if;
  end loop;

  foreach v_expr in array v_reference::text[] loop
    perform create_reference_table(v_expr);
  end loop;
  perform create_distributed_table('core.tenants', 'tenant_id', colocate_with => 'none');
  for v_row in
    select c.oid::regclass as rel from pg_class c
    where c.relnamespace = 'core'::regnamespace and c.relkind in ('r', 'p') and not c.relispartition
      and c.oid <> 'core.tenants'::regclass and c.oid <> all (v_reference) and c.oid <> all (v_local)
    order by 1
  loop
    if not exists (select from pg_attribute a where a.attrelid = v_row.rel and a.attname = 'tenant_id') then
      raise exception 'core.% has no tenant_id and is no reference table: say how it is to be distributed', v_row.rel;
    end if;
    perform create_distributed_table(v_row.rel::text, 'tenant_id', colocate_with => 'core.tenants');
  end loop;

  foreach v_expr in array v_rebuild loop
    execute v_expr;
  end loop;

  -- The grants again, now that the objects are on the workers: Citus made
  -- the shards, the context's view and the functions there without them
  -- (a function with PostgreSQL's default: anyone may execute it), and
  -- passes a GRANT or REVOKE on a distributed object on to every node.
  for v_row in
    select o.kind, o.name, o.owner, o.acl
    from (select 'table' as kind, c.oid::regclass::text as name, c.relowner as owner, c.relacl as acl
          from pg_class c join pg_dist_partition d on d.logicalrelid = c.oid

) o
  loop
    execute format('revoke all on %s %s from public', v_row.kind, v_row.name);
    for v_expr in
      select format('grant %s on %s %s to %s%s', a.privilege_type, v_row.kind, v_row.name,
               case when a.grantee = 0 then 'public' else quote_ident(a.grantee::regrole::text) end,
               case when a.is_grantable then ' with grant option' else '' end)
      from aclexplode(coalesce(v_row.acl, acldefault(case when v_row.kind = 'table' then 'r' else 'f' end::"char", v_row.owner))) a
      where a.grantee <> v_row.owner
    loop
      execute v_expr;
    end loop;
  end loop;
  for v_row in
    select format('grant %s (%I) on table %s to %s%s', a.privilege_type, att.attname, c.oid::regclass,
             case when a.grantee = 0 then 'public' else quote_ident(a.grantee::regrole::text) end,
             case when a.is_grantable then ' with grant option' else '' end) as ddl
    from pg_class c join pg_dist_partition d on d.logicalrelid = c.oid
    join pg_attribute att on att.attrelid = c.oid and att.attnum > 0 and not att.attisdropped
    cross join lateral aclexplode(att.attacl) a
    where a.grantee <> c.relowner
  loop
    execute v_row.ddl;
  end loop;
  -- An INSERT reaches a shard with every column, the defaults filled in by
  -- Citus: a role that may insert some columns needs INSERT on the whole
  -- table. So on Citus the runtime roles too may give the columns their
  -- lists leave out (ids, created_at) values of their own, where a table
  -- has them; row-level security still holds every row to its tenant.
  -- (Issue 14 keeps this open: their inserts are to go through definers.)
  for v_row in
    select distinct format('grant insert on table %s to %I', c.oid::regclass, a.grantee::regrole::text) as ddl
    from pg_class c join pg_dist_partition d on d.logicalrelid = c.oid
    join pg_attribute att on att.attrelid = c.oid and att.attnum > 0 and not att.attisdropped
    cross join lateral aclexplode(att.attacl) a
    join pg_roles r on r.oid = a.grantee
    where a.privilege_type = 'INSERT'
  loop
    execute v_row.ddl;
  end loop;

  -- The extensions the functions call, on every worker.
  perform core.on_workers('create schema if not exists extensions authorization tenancy_owner; '
    || 'create extension if not exists pgcrypto with schema extensions; '
    || 'create extension if not exists pgrowlocks with schema extensions; '
    || coalesce((select string_agg(format('grant %s on schema extensions to %s', a.privilege_type,
                   case when a.grantee = 0 then 'public' else quote_ident(a.grantee::regrole::text) end), '; ')
                 from pg_namespace n cross join lateral aclexplode(n.nspacl) a
                 where n.nspname = 'extensions' and a.grantee <> n.nspowner), 'select')
    || '; ' || (select string_agg(format('revoke all on function %s from public', p.oid::regprocedure)
                  || coalesce((select string_agg(format('; grant execute on function %s to %s', p.oid::regprocedure,
                                 case when a.grantee = 0 then 'public' else quote_ident(a.grantee::regrole::text) end), '')
                               from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                               where a.grantee <> p.proowner), ''), '; ')
                from pg_proc p where p.pronamespace = 'extensions'::regnamespace));
  -- What runs on the shards, to every worker: the context's view and the
  -- functions of core (policies, triggers and what they call); and the
  -- views of api and platform, which Citus copies to the workers with the
  -- tables they read. The api and platform functions run where the service
  -- calls them, on the coordinator.
  for v_row in
    select c.oid::regclass as rel, pg_get_viewdef(c.oid) as def, c.reloptions, c.relowner::regrole::text as owner,
           (select string_agg(format('grant %s on table %s to %s', a.privilege_type, c.oid::regclass,
                     case when a.grantee = 0 then 'public' else quote_ident(a.grantee::regrole::text) end), '; ')
            from aclexplode(c.relacl) a where a.grantee <> c.relowner) as grants
    from pg_class c
    where c.relkind = 'v' and c.relnamespace in ('core'::regnamespace, 'api'::regnamespace, 'platform'::regnamespace)
    order by c.oid
  loop
    -- Citus makes the view on the workers as whoever replaced it: its owner
    -- and its grants again, which Citus then passes on.
    execute format('create or replace view %s%s as %s', v_row.rel,
      coalesce(' with (' || array_to_string(v_row.reloptions, ', ') || ')', ''), rtrim(v_row.def, ';'));
    execute format('alter view %s owner to %I', v_row.rel, v_row.owner);
    execute format('revoke all on table %s from public', v_row.rel);
    if v_row.grants is not null then
      execute v_row.grants;
    end if;
  end loop;
  for v_row in
    select p.oid::regprocedure as fn from pg_proc p
    where p.pronamespace = 'core'::regnamespace
      and not exists (select from pg_dist_object o where o.classid = 'pg_proc'::regclass and o.objid = p.oid)
    -- A worker checks an SQL function's body as it makes it: PL/pgSQL ones,
    -- which it does not, first.
    order by p.prolang = (select l.oid from pg_language l where l.lanname = 'sql'), p.oid
  loop
    perform create_distributed_function(v_row.fn);
  end loop;
  -- Citus makes a function on a worker with PostgreSQL's default (anyone
  -- may execute it) and passes on the grants it had: what the coordinator
  -- took away is taken away there too.
  for v_row in
    select p.oid::regprocedure::text as fn from pg_proc p
    where p.pronamespace = 'core'::regnamespace
      and not exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a where a.grantee = 0)
  loop
    execute format('revoke all on function %s from public', v_row.fn);
  end loop;
  -- The schemas' grants, which Citus passes on for the schemas it has made
  -- on the workers.
  for v_row in
    select format('grant %s on schema %I to %s', a.privilege_type, n.nspname,
             case when a.grantee = 0 then 'public' else quote_ident(a.grantee::regrole::text) end) as ddl
    from pg_namespace n cross join lateral aclexplode(n.nspacl) a
    where n.nspname in ('core', 'api', 'platform') and a.grantee <> n.nspowner
      and exists (select from pg_dist_object o where o.classid = 'pg_namespace'::regclass and o.objid = n.oid)
  loop
    execute v_row.ddl;
  end loop;
  -- Citus's own functions are no runtime role's to run: among them some
  -- that start a rebalance, cancel the cluster's jobs, run SQL on other
  -- nodes or set the distributed transaction a context is bound to. Citus
  -- grants some to everyone, and on the workers (which took no default
  -- privileges) all of them: revoked on every node. On the workers, Citus
  -- itself calls six of them over the connections it opens, as the role it
  -- connects as (assign_distributed_transaction_id,
  -- override_backend_data_gpid, lock_shard_resources, lock_shard_metadata,
  -- read_intermediate_result for a subquery's rows, and
  -- relation_is_a_known_shard): those stay everyone's there, where no role
  -- but the nodes' own connections reaches (no worker takes a password).
  select string_agg(format('revoke execute on routine %s from public', p.oid::regprocedure), '; ')
  into v_expr
  from pg_proc p
  join pg_depend d on d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
  join pg_extension e on e.oid = d.refobjid and e.extname = 'citus';
  execute v_expr;
  perform core.on_workers(v_expr || '; ' || (
    select string_agg(format('grant execute on function %s to public', p.oid::regprocedure), '; ')
    from pg_proc p
    where p.pronamespace = 'pg_catalog'::regnamespace
      and p.proname in ('assign_distributed_transaction_id', 'override_backend_data_gpid', 'lock_shard_resources',
                        'lock_shard_metadata', 'read_intermediate_result', 'relation_is_a_known_shard')));
  -- The context is bound to the distributed transaction
  -- (core.distributed_transaction), which tenancy_auth reads; the audit
  -- trail's time is the distributed transaction's (core.transaction_time),
  -- which whoever writes an audited row reads. It says only which
  -- transaction this is: setting it (assign_distributed_transaction_id)
  -- stays revoked on the coordinator.
  grant execute on function pg_catalog.get_current_transaction_id() to app_user, uber_admin, tenancy_auth,
    tenancy_auditor, tenancy_writer, tenancy_meter, tenancy_reaper;
  perform core.on_workers('grant execute on function pg_catalog.get_current_transaction_id() to app_user, uber_admin, '
    || 'tenancy_auth, tenancy_auditor, tenancy_writer, tenancy_meter, tenancy_reaper');
  return 'distributed';
end
$$;
comment on function core.distribute_on_citus() is
  'Distributes every table on Citus (run as a superuser on the coordinator once the workers have joined); does nothing without the citus extension';
revoke execute on function core.distribute_on_citus() from public;
alter function core.distribute_on_citus() owner to tenancy_owner;

select core.distribute_on_citus();

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '120s';

drop function core.distribute_on_citus();
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

create or replace function core.advance_chain_head()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  -- Fired at commit for each row; only a tenant's last row moves the head.
  if not exists (select from core.audit_logs a
                 where a.tenant_id = new.tenant_id and a.seq > new.seq and a."timestamp" = now()) then
    update core.audit_chain_heads h set seq = new.seq, hash = new.chain_hash
      where h.tenant_id = new.tenant_id and h.seq < new.seq;
  end if;
  return null;
end
$function$;
alter table core.audit_logs alter column "timestamp" set default now();
drop function core.transaction_time();

drop function core.policy_without_sublinks(text);
drop function core.on_workers(text);
revoke update (user_id) on core.tenant_api_keys from tenancy_auth;
alter table core.tenant_api_keys drop constraint tenant_api_keys_tenant_id_user_id_fkey;
alter table core.tenant_api_keys add constraint tenant_api_keys_tenant_id_user_id_fkey
  foreign key (tenant_id, user_id) references core.users (tenant_id, user_id) on delete set null (user_id) not valid;
-- squawk-ignore constraint-missing-not-valid
alter table core.tenant_api_keys validate constraint tenant_api_keys_tenant_id_user_id_fkey;
create or replace function core.revoke_keys_of_deleted_user()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  perform core.revoke_keys(old.tenant_id,
    array(select k.key_id from core.tenant_api_keys k where k.tenant_id = old.tenant_id and k.user_id = old.user_id));
  return old;
end
$function$;
drop function core.on_coordinator();
drop function core.context_user_id(text);
drop function core.context_tenant_id(text);
create or replace function core.sign_context(p_tenant_id uuid, p_api_key_id uuid, p_user_id uuid, p_user_role text, p_permissions text[], p_request_id uuid, p_client_request_id text, p_operator_id uuid DEFAULT NULL::uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
declare
  v_payload text;
begin
  if p_request_id is null then
    raise exception 'a request id is required' using errcode = 'null_value_not_allowed';
  end if;
  -- The separator can appear in no field: ids are uuids, roles and
  -- permissions come from checked columns, and a client's id is checked here.
  if p_client_request_id !~ '^[A-Za-z0-9._:-]{1,128}$' then
    raise exception 'a client request id is 1-128 characters from A-Z a-z 0-9 . _ : -'
      using errcode = 'invalid_parameter_value';
  end if;
  -- Under REPEATABLE READ or SERIALIZABLE the whole transaction reads one
  -- snapshot, possibly an old exported one: a revoked key would still pass.
  if current_setting('transaction_isolation') <> 'read committed' then
    raise exception 'a request context is signed only in a READ COMMITTED transaction'
      using errcode = 'invalid_transaction_state';
  end if;
  v_payload := concat_ws('|', 'v4', coalesce(p_tenant_id::text, ''), coalesce(p_api_key_id::text, ''),
    coalesce(p_user_id::text, ''), coalesce(p_user_role, ''), array_to_string(p_permissions, ','), p_request_id,
    coalesce(p_client_request_id, ''), (extract(epoch from clock_timestamp()) * 1000000)::bigint,
    coalesce(p_operator_id::text, ''));
  -- The number is signed, not shown: the MAC covers payload and number.
  perform set_config('app.context',
    v_payload || '|' || encode(core.context_mac(v_payload || '|' || nextval('core.context_nonce'),
                                                (select k.secret from core.context_signing_key k)), 'hex'),
    true);
end
$function$;
create or replace function core.context_verifies(p_signed text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_nonce bigint;
begin
  begin
    v_nonce := currval('core.context_nonce');
  exception
    -- This session never signed: nothing it holds can verify.
    when object_not_in_prerequisite_state then
      return false;
  end;
  return encode(core.context_mac(left(p_signed, -65) || '|' || v_nonce,
                                 (select k.secret from core.context_signing_key k)), 'hex') = right(p_signed, 64);
end
$function$;
create or replace function core.context_mac(p_payload text, p_secret bytea)
 RETURNS bytea
 LANGUAGE sql
 STABLE PARALLEL RESTRICTED
AS $function$
  select extensions.hmac(
    pg_catalog.convert_to(p_payload, 'UTF8')
      operator(pg_catalog.||) pg_catalog.int4send(pg_catalog.pg_backend_pid())
      operator(pg_catalog.||) pg_catalog.timestamptz_send(pg_catalog.transaction_timestamp()),
    p_secret, 'sha256')
$function$;
drop function core.distributed_transaction();
drop function core.on_citus();
