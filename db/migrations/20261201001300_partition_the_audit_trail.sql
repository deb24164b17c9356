-- migrate:up
/*
 * Why: the trail was one table that only grows, and the Fintech Template
 * promises audit_retention_days: 2555 (seven years), which nothing kept.
 *
 * core.audit_logs is now partitioned by month of "timestamp" (its
 * transaction's start), one partition per month: core.audit_logs_yYYYYmMM.
 * "timestamp" is the key because the lists page by it: a page of the newest
 * entries, or of a window in the past, reads the few partitions it falls in,
 * in order, and stops (an ordered Append), so a page still reads a handful
 * of buffers however many years the trail holds. The chain still runs by
 * seq across partitions: verification and export read each tenant's
 * (tenant_id, seq) index in every partition, merged. seq and log_id cannot
 * be unique across partitions (PostgreSQL wants the partition key in every
 * unique index): the chain head's row lock keeps seq gap-free and unique,
 * and verification reports any duplicate ("row inserted").
 *
 * The chaining trigger now refuses a row whose "timestamp" is not its
 * transaction's start (nobody but a superuser could supply one): the rows
 * a transaction has chained past its tenant's head are then all in the
 * partition of now(), and finding the last of them reads one partition,
 * not every month of seven years.
 *
 * Maintenance: core.maintain_audit_partitions() creates the partitions of
 * this month and the next three. The service calls it at start and every
 * ten minutes, and so does `scripts/db maintain`; it takes no arguments and does
 * nothing twice, so anyone allowed to call it may call it as often as they
 * like. It needs no extension and no server setting: pg_partman would
 * create partitions but knows nothing of a per-tenant retention or of a
 * chain, and pg_cron (or pg_partman's background worker) needs
 * shared_preload_libraries and, on PostgreSQL 15, a role that can log in to
 * run as. With partitions made three months ahead, the service can be down
 * for weeks before a write finds no partition (and is then refused, never
 * stored wrong).
 *
 * The function runs as tenancy_owner, because only a table's owner may add
 * partitions. It is the one SECURITY DEFINER function that runs as an owner
 * of tables: its only input is the clock, every name it builds comes from a
 * date, it pins every setting that changes what DDL does, and
 * pgtap/33_audit_partitions.sql checks it creates nothing else.
 *
 * Dropping is core.purge_audit_partitions(), which only the owner's members
 * run (`scripts/db maintain`, from cron): detaching a partition holds the
 * trail and core.tenants in ACCESS EXCLUSIVE mode until the transaction
 * ends, and a session that can log in as app_user or uber_admin, left open
 * after that, would stop every request. The service logs the partitions
 * past retention that wait for it.
 *
 * Retention: a tenant's audit_retention_days (a whole number of days from
 * 365 to 36,500; anything else, or none, keeps its trail for ever). A
 * partition is dropped when its end plus the retention of every tenant
 * with a row in it lies in the past, oldest first, and never while an older
 * partition stays. Rows are kept longer than their retention when a
 * partition also holds a tenant that keeps its trail longer; none is
 * removed sooner.
 *
 * Checkpoint: before a partition goes, each tenant with rows in it gets an
 * "audit.purged" row in its own chain, whose details name the last seq
 * dropped (through_seq), its chain_hash (through_hash), the partition and
 * the retention. Verification starts after the latest such row's
 * through_seq, from its through_hash, and verifies the purge row itself as
 * part of the chain; it refuses a checkpoint whose partition still exists
 * or is not yet past the retention the checkpoint names. What a chain alone
 * cannot show: a superuser who deletes rows and appends a checkpoint of
 * their own at the head, naming a retention short enough. That checkpoint
 * is in the trail for anyone to read (its time, its retention, its
 * db_role), and an anchor stored before it, of a row it claims purged, no
 * longer verifies (422: the anchor lies in the purged part).
 *
 * Transaction start and commit order can cross at a month's edge, so a
 * partition may hold a tenant's seq 6 while the next holds its seq 5: the
 * checkpoint is the partition's highest seq, a later partition that ends
 * below it leaves no checkpoint, and its rows below the checkpoint stay
 * until their partition goes, unverified (the chain is verified from the
 * checkpoint on).
 *
 * Rolling this migration back keeps every row, checkpoints included; the
 * verification before it knows no checkpoint and reports a purged chain as
 * "row missing".
 */
set local lock_timeout = '5s';
set local statement_timeout = '300s';

-- The old table steps aside; its rows are copied into the new one below.
-- No client sees the rename: the new core.audit_logs takes its place in
-- the same transaction, and the old one is dropped.
-- squawk-ignore renaming-table
alter table core.audit_logs rename to audit_logs_unpartitioned;
alter index core.audit_logs_pkey rename to audit_logs_unpartitioned_pkey;
alter index core.audit_logs_tenant_seq_key rename to audit_logs_unpartitioned_tenant_seq_key;
alter index core.audit_logs_tenant_timestamp_idx rename to audit_logs_unpartitioned_tenant_timestamp_idx;
alter index core.audit_logs_tenant_user_timestamp_idx rename to audit_logs_unpartitioned_tenant_user_timestamp_idx;
alter index core.audit_logs_timestamp_idx rename to audit_logs_unpartitioned_timestamp_idx;
alter table core.audit_logs_unpartitioned rename constraint audit_logs_tenant_id_fkey to audit_logs_unpartitioned_tenant_id_fkey;

set local role tenancy_owner;

create table core.audit_logs (
  log_id uuid not null default gen_random_uuid(),
  tenant_id uuid not null,
  user_id uuid,
  api_key_id uuid,
  action text not null constraint audit_logs_action_check check (action ~ '^[a-z][a-z_.]{0,99}$'),
  resource_type text not null constraint audit_logs_resource_type_check check (resource_type ~ '^[a-z][a-z_]{0,99}$'),
  resource_id uuid not null,
  details jsonb not null default '{}' constraint audit_logs_details_check check (jsonb_typeof(details) = 'object'),
  request_id text constraint audit_logs_request_id_check check (char_length(request_id) <= 200),
  "timestamp" timestamptz not null default now(),
  client_request_id text constraint audit_logs_client_request_id_check check (char_length(client_request_id) <= 200),
  operator_id uuid,
  seq bigint not null,
  recorded_at timestamptz not null,
  details_salt bytea not null,
  details_sha256 bytea not null,
  prev_hash bytea not null,
  chain_hash bytea not null,
  constraint audit_logs_pkey primary key (tenant_id, log_id, "timestamp"),
  constraint audit_logs_tenant_id_fkey foreign key (tenant_id) references core.tenants (tenant_id)
) partition by range ("timestamp");
create index audit_logs_tenant_seq_idx on core.audit_logs (tenant_id, seq);
create index audit_logs_tenant_timestamp_idx on core.audit_logs (tenant_id, "timestamp" desc, log_id desc);
create index audit_logs_tenant_user_timestamp_idx on core.audit_logs (tenant_id, user_id, "timestamp" desc, log_id desc);
create index audit_logs_timestamp_idx on core.audit_logs ("timestamp" desc, log_id desc);
-- Verification finds a tenant's latest checkpoint here, not in its chain.
create index audit_logs_tenant_purge_idx on core.audit_logs (tenant_id, seq) where action = 'audit.purged';

-- As before: no planner statistics on any column (see migration
-- 20261201000500); every partition is made the same way below.
do $$
declare
  v_column name;
begin
  for v_column in
    select attname from pg_attribute where attrelid = 'core.audit_logs'::regclass and attnum > 0 and not attisdropped
  loop
    execute format('alter table core.audit_logs alter column %I set statistics 0', v_column);
  end loop;
end
$$;

comment on table core.audit_logs is
  'Append-only trail of every change to tenant-scoped rows, written by trigger; partitioned by month of "timestamp"';
comment on column core.audit_logs.log_id is 'Identity of the entry';
comment on column core.audit_logs.tenant_id is 'Tenant whose row changed';
comment on column core.audit_logs.user_id is 'Acting user (app.user_id), when the request was bound to one';
comment on column core.audit_logs.api_key_id is 'API key that made the request (app.api_key_id); NULL for platform operations';
comment on column core.audit_logs.action is 'What happened: insert, update or delete';
comment on column core.audit_logs.resource_type is 'Table the changed row belongs to, e.g. documents';
comment on column core.audit_logs.resource_id is 'Primary id of the changed row within its tenant';
comment on column core.audit_logs.details is 'Changed columns with old and new values (never key_hash) and the database role';
comment on column core.audit_logs.request_id is 'Request id the service assigned (a UUID), from the verified context; the one to trust';
comment on column core.audit_logs."timestamp" is 'Start of the transaction that made the change; the partition key';
comment on column core.audit_logs.client_request_id is 'x-request-id the client sent, if any; informational, never trusted';
comment on column core.audit_logs.operator_id is 'Platform operator who made the request (platform routes); NULL for tenant API keys and DBAs';
comment on column core.audit_logs.seq is 'Position in the tenant''s chain: 1, 2, 3, ... without gaps, in commit order';
comment on column core.audit_logs.recorded_at is 'Clock time at which the row was written (timestamp is its transaction''s start)';
comment on column core.audit_logs.details_salt is 'Random bytes hashed before the details, so that redacted details cannot be guessed from their hash';
comment on column core.audit_logs.details_sha256 is 'SHA-256 of details_salt and details::text, which the chain covers';
comment on column core.audit_logs.prev_hash is 'chain_hash of the tenant''s previous row; 32 zero bytes before the first';
comment on column core.audit_logs.chain_hash is 'SHA-256 of prev_hash and the row''s canonical record (see migration 20261201000900)';

-- One month's partition, made as the parent is: bound by row-level security
-- with no policy at all (so not even its owner reads it except through the
-- parent, whose policies apply), no statistics, refusing TRUNCATE (row
-- triggers are cloned from the parent; statement triggers are not).
-- Created apart and then attached, which locks the parent in SHARE UPDATE
-- EXCLUSIVE mode only: writers and readers go on meanwhile.
create function core.create_audit_partition(p_month timestamptz) returns text
language plpgsql
set search_path = pg_catalog, pg_temp
set timezone = 'UTC'
set datestyle = 'ISO, MDY'
set default_tablespace = ''
set default_table_access_method = 'heap'
as $$
declare
  v_from timestamptz := date_trunc('month', p_month);
  v_name text := format('audit_logs_y%sm%s', to_char(v_from, 'YYYY'), to_char(v_from, 'MM'));
  v_column name;
  v_trigger name;
begin
  if to_regclass(format('core.%I', v_name)) is not null then
    return null;
  end if;
  execute format('create table core.%I (like core.audit_logs including defaults including constraints)', v_name);
  for v_column in
    select attname from pg_attribute where attrelid = 'core.audit_logs'::regclass and attnum > 0 and not attisdropped
  loop
    execute format('alter table core.%I alter column %I set statistics 0', v_name, v_column);
  end loop;
  execute format('alter table core.%I enable row level security, force row level security', v_name);
  execute format('create trigger reject_truncate before truncate on core.%I for each statement execute function core.reject_audit_change()', v_name);
  execute format('alter table core.audit_logs attach partition core.%I for values from (%L) to (%L)',
    v_name, v_from, v_from + interval '1 month');
  -- Cloned row triggers start enabled on origin only.
  for v_trigger in
    select tgname from pg_trigger where tgrelid = format('core.%I', v_name)::regclass and not tgisinternal and tgenabled <> 'A'
  loop
    execute format('alter table core.%I enable always trigger %I', v_name, v_trigger);
  end loop;
  execute format('comment on table core.%I is %L', v_name,
    format('Audit entries whose transaction began in %s (UTC); a partition of core.audit_logs', to_char(v_from, 'YYYY-MM')));
  return v_name;
end
$$;
comment on function core.create_audit_partition(timestamptz) is
  'Creates the partition of core.audit_logs for the month (UTC) of a time, unless it exists; returns its name, or NULL';

-- Every month the old rows fall in, this one and the next three (as the
-- maintenance makes them).
select core.create_audit_partition(m)
from generate_series(
  (select date_trunc('month', coalesce(min("timestamp"), now()), 'UTC') from core.audit_logs_unpartitioned),
  date_trunc('month', now(), 'UTC') + interval '3 months', interval '1 month') as m;

reset role;
-- The rows as they are, hashes and all: no trigger is on the new table yet.
-- As the superuser this runs as: tenancy_owner would see, through forced
-- row-level security, none of them.
insert into core.audit_logs select * from core.audit_logs_unpartitioned;
do $$
begin
  if (select count(*) from core.audit_logs) <> (select count(*) from core.audit_logs_unpartitioned) then
    raise exception 'the audit rows were not all copied';
  end if;
end
$$;
-- The views and the record encoding follow the old table's row type; they
-- are pointed at the new one, unchanged.
create or replace view api.audit_logs with (security_invoker = false) as
  select a.log_id, a.tenant_id, a.user_id, a.api_key_id, a.action, a.resource_type, a.resource_id,
    case when core.audit_details_readable(a.resource_type, (select core.current_permissions()))
         then a.details else a.details - 'old' - 'new' end as details,
    a.request_id, a."timestamp", a.client_request_id, a.operator_id
  from core.audit_logs a;
create or replace view platform.audit_logs with (security_invoker = true) as
  select log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id, details, request_id,
    "timestamp", client_request_id, operator_id
  from core.audit_logs;
drop function core.audit_record(core.audit_logs_unpartitioned);
set local role tenancy_owner;
create function core.audit_record(p_row core.audit_logs) returns bytea
language sql immutable parallel safe
as $$
  select convert_to(E'tenancy-audit-v1\n' || string_agg(
           case when f.value is null then '~' else octet_length(f.value) || ':' || f.value || ',' end,
           '' order by f.n), 'UTF8')
  from unnest(array[
    p_row.tenant_id::text, p_row.seq::text, p_row.log_id::text, p_row.user_id::text, p_row.api_key_id::text,
    p_row.operator_id::text, p_row.action, p_row.resource_type, p_row.resource_id::text,
    encode(p_row.details_sha256, 'hex'), p_row.request_id, p_row.client_request_id,
    core.audit_time(p_row."timestamp"), core.audit_time(p_row.recorded_at)]) with ordinality as f (value, n)
$$;
comment on function core.audit_record(core.audit_logs) is
  'Canonical record of an audit row, which its chain_hash covers (format: migration 20261201000900)';
grant execute on function core.audit_record(core.audit_logs) to tenancy_auditor, tenancy_writer, uber_admin;
reset role;
drop table core.audit_logs_unpartitioned;

set local role tenancy_owner;
alter table core.audit_logs enable row level security;
alter table core.audit_logs force row level security;
create policy select_own_tenant on core.audit_logs for select
  using (tenant_id = (select c.tenant_id from core.request_context c where 'audit:read' = any (c.permissions)));
create policy insert_own_tenant on core.audit_logs for insert
  with check (tenant_id = (select c.tenant_id from core.request_context c));

grant select on core.audit_logs to uber_admin;
grant select (seq, recorded_at, details_salt, details_sha256, prev_hash, chain_hash) on core.audit_logs to uber_admin;
grant select (log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id, details, request_id,
  "timestamp", client_request_id, operator_id, seq, recorded_at, details_salt, details_sha256, prev_hash, chain_hash)
  on core.audit_logs to tenancy_writer;
-- "timestamp" and action are new for tenancy_auditor: it reads which
-- tenants a partition holds, and their checkpoints (below).
grant select (tenant_id, seq, chain_hash, "timestamp", action, details),
  insert (tenant_id, user_id, api_key_id, operator_id, action, resource_type, resource_id, details, request_id,
          client_request_id)
  on core.audit_logs to tenancy_auditor;
reset role;

-- Triggers on the parent reach every partition, present and future. (The
-- chain's trigger functions run as tenancy_auditor, which alone may
-- execute them.)
create trigger chain_audit_row before insert on core.audit_logs
  for each row execute function core.chain_audit_row();
create constraint trigger advance_chain_head after insert on core.audit_logs
  deferrable initially deferred for each row execute function core.advance_chain_head();
create trigger reject_update_delete before update or delete on core.audit_logs
  for each row execute function core.reject_audit_change();
create trigger reject_truncate before truncate on core.audit_logs
  for each statement execute function core.reject_audit_change();
alter table core.audit_logs enable always trigger chain_audit_row;
alter table core.audit_logs enable always trigger advance_chain_head;
alter table core.audit_logs enable always trigger reject_update_delete;
alter table core.audit_logs enable always trigger reject_truncate;

-- The chaining trigger: one partition to look in for this transaction's rows.
create or replace function core.chain_audit_row() returns trigger
language plpgsql
as $$
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
$$;

create or replace function core.advance_chain_head() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  -- Fired at commit for each row; only a tenant's last row moves the head.
  if not exists (select from core.audit_logs a
                 where a.tenant_id = new.tenant_id and a.seq > new.seq and a."timestamp" = now()) then
    update core.audit_chain_heads h set seq = new.seq, hash = new.chain_hash
      where h.tenant_id = new.tenant_id and h.seq < new.seq;
  end if;
  return null;
end
$$;

-- Retention ----------------------------------------------------------------------

-- Which tenants have rows in a month, the last of each one's rows there,
-- and how long each keeps its trail (NULL: for ever). Runs as
-- tenancy_auditor, which bypasses row-level security, through the parent
-- (a partition has no policy): the range prunes it to that one partition,
-- which it walks tenant by tenant through an index, not row by row.
set local role tenancy_owner;
create function core.audit_partition_tenants(p_from timestamptz, p_to timestamptz)
returns table (tenant_id uuid, through_seq bigint, through_hash bytea, retention_days integer, floor_seq bigint)
language sql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  with recursive tenants (tenant_id) as (
    (select a.tenant_id from core.audit_logs a
     where a."timestamp" >= p_from and a."timestamp" < p_to order by a.tenant_id limit 1)
    union all
    select (select a.tenant_id from core.audit_logs a
            where a."timestamp" >= p_from and a."timestamp" < p_to and a.tenant_id > t.tenant_id
            order by a.tenant_id limit 1)
    from tenants t where t.tenant_id is not null
  )
  select t.tenant_id, last.seq, last.chain_hash,
    case when s.days::text ~ '^[1-9][0-9]{2,4}$' and s.days::text::int between 365 and 36500 then s.days::text::int end,
    (select (a.details ->> 'through_seq')::bigint from core.audit_logs a
     where a.tenant_id = t.tenant_id and a.action = 'audit.purged' and a.details ->> 'through_seq' ~ '^[0-9]{1,18}$'
     order by a.seq desc limit 1)
  from tenants t
  cross join lateral (
    select a.seq, a.chain_hash from core.audit_logs a
    where a.tenant_id = t.tenant_id and a."timestamp" >= p_from and a."timestamp" < p_to
    order by a.seq desc limit 1) last
  left join lateral (
    select c.settings -> 'audit_retention_days' as days from core.tenant_configs c where c.tenant_id = t.tenant_id) s
    on true
  where t.tenant_id is not null
$$;
comment on function core.audit_partition_tenants(timestamptz, timestamptz) is
  'Tenants with audit rows in a time range: the last seq and chain_hash of each there, its audit_retention_days (NULL: keep for ever) and its latest checkpoint''s seq';

-- The checkpoint a purge leaves in a tenant's chain, as a row of the chain.
create function core.record_audit_purge(p_tenant_id uuid, p_through_seq bigint, p_through_hash bytea,
  p_partition text, p_retention_days integer) returns bigint
language sql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
  insert into core.audit_logs (tenant_id, operator_id, action, resource_type, resource_id, details)
  values (p_tenant_id, core.current_operator_id(), 'audit.purged', 'audit_logs', p_tenant_id,
    jsonb_build_object('through_seq', p_through_seq, 'through_hash', encode(p_through_hash, 'hex'),
      'partition', p_partition, 'retention_days', p_retention_days, 'db_role', session_user))
  returning seq
$$;
comment on function core.record_audit_purge(uuid, bigint, bytea, text, integer) is
  'Appends the "audit.purged" row that records the last seq and hash of a tenant''s rows in a dropped partition';
reset role;
alter function core.audit_partition_tenants(timestamptz, timestamptz) owner to tenancy_auditor;
alter function core.record_audit_purge(uuid, bigint, bytea, text, integer) owner to tenancy_auditor;
grant select (tenant_id, settings) on core.tenant_configs to tenancy_auditor;
set local role tenancy_auditor;
revoke execute on function core.audit_partition_tenants(timestamptz, timestamptz) from public;
revoke execute on function core.record_audit_purge(uuid, bigint, bytea, text, integer) from public;
grant execute on function core.audit_partition_tenants(timestamptz, timestamptz) to tenancy_owner;
grant execute on function core.record_audit_purge(uuid, bigint, bytea, text, integer) to tenancy_owner;
reset role;

-- The maintenance locks the trail; a session of the service's roles that
-- holds a lock in its way (its own call of the maintenance, left open) is
-- ended, as core.end_chain_holders ends a chain head's holders.
set local role tenancy_owner;
create function core.end_audit_lock_holders(p_modes text[]) returns integer
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ended integer;
begin
  perform pg_stat_clear_snapshot();
  select count(*) filter (where pg_terminate_backend(a.pid)) into v_ended
  from pg_locks l
  join pg_stat_activity a on a.pid = l.pid
  where l.locktype = 'relation' and l.relation = 'core.audit_logs'::regclass and l.mode = any (p_modes)
    and l.database = (select d.oid from pg_database d where d.datname = current_database())
    and a.usename in ('app_user', 'uber_admin') and a.pid <> pg_backend_pid() and a.datname = current_database();
  return v_ended;
end
$$;
comment on function core.end_audit_lock_holders(text[]) is
  'Ends the app_user and uber_admin sessions holding core.audit_logs locked in one of these modes; returns how many';
reset role;
alter function core.end_audit_lock_holders(text[]) owner to tenancy_reaper;
set local role tenancy_reaper;
revoke execute on function core.end_audit_lock_holders(text[]) from public;
grant execute on function core.end_audit_lock_holders(text[]) to tenancy_owner;
reset role;

-- tenancy_owner adds partitions for core.maintain_audit_partitions(), and
-- attaching one clones the parent's triggers, which takes the right to
-- execute their functions (a trigger function cannot be called otherwise).
grant execute on function core.advance_chain_head() to tenancy_owner;
grant execute on function core.end_stale_transactions() to tenancy_owner;

set local role tenancy_owner;
-- The partitions whose every row is past its tenant's retention, oldest
-- first, up to the first that must stay.
create function core.expired_audit_partitions()
returns table (rel regclass, name text, from_time timestamptz, to_time timestamptz)
language plpgsql stable
set search_path = pg_catalog, pg_temp
set timezone = 'UTC'
set datestyle = 'ISO, MDY'
as $$
declare
  v_partition record;
begin
  for v_partition in
    select c.oid::regclass as rel, c.relname::text as name, b.bounds[1]::timestamptz as from_time,
      b.bounds[2]::timestamptz as to_time
    from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
    cross join lateral regexp_match(pg_get_expr(c.relpartbound, c.oid),
      '^FOR VALUES FROM \(''([^'']+)''\) TO \(''([^'']+)''\)$') as b (bounds)
    where i.inhparent = 'core.audit_logs'::regclass
    order by 3
  loop
    exit when v_partition.to_time > now();
    exit when exists (select from core.audit_partition_tenants(v_partition.from_time, v_partition.to_time) t
                      where t.retention_days is null
                         or v_partition.to_time + make_interval(days => t.retention_days) > now());
    return query select v_partition.rel, v_partition.name, v_partition.from_time, v_partition.to_time;
  end loop;
end
$$;
comment on function core.expired_audit_partitions() is
  'The oldest audit partitions whose every row is past its tenant''s audit_retention_days, up to the first that must stay';

-- Settings a caller (or its role's defaults) could give the session, and
-- that would change what DDL does or make it fail, are pinned: the service
-- calls this as app_user, whose role app_user may give defaults of its own.
create function core.maintain_audit_partitions() returns table (action text, partition_name text)
language plpgsql volatile
security definer
set search_path = pg_catalog, pg_temp
set timezone = 'UTC'
set datestyle = 'ISO, MDY'
set intervalstyle = 'postgres'
set default_tablespace = ''
set default_table_access_method = 'heap'
set row_security = on
set lock_timeout = '2s'
as $$
#variable_conflict use_column
declare
  v_month timestamptz;
  v_name text;
begin
  -- One maintainer at a time: attaching a partition takes this lock anyway,
  -- and the next caller, once it has it, finds nothing left to do. (Not an
  -- advisory lock, which any role could take first and hold.) A service
  -- session in the way (one that called this and never committed) is ended.
  perform core.end_stale_transactions();
  perform core.end_audit_lock_holders(array['ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock',
    'ExclusiveLock', 'AccessExclusiveLock']);
  lock table core.audit_logs in share update exclusive mode;
  for v_month in
    select generate_series(date_trunc('month', now()), date_trunc('month', now()) + interval '3 months', interval '1 month')
  loop
    v_name := core.create_audit_partition(v_month);
    if v_name is not null then
      return query select 'created', v_name;
    end if;
  end loop;
  -- Dropping is not done here: see core.purge_audit_partitions.
  return query select 'expired', e.name from core.expired_audit_partitions() e;
end
$$;
comment on function core.maintain_audit_partitions() is
  'Creates the audit partitions of this month and the next three; returns those it created and those past retention (for core.purge_audit_partitions)';
grant execute on function core.maintain_audit_partitions() to app_user, uber_admin;

-- Dropping a partition holds the whole trail (and, through its foreign key,
-- core.tenants) in ACCESS EXCLUSIVE mode until the transaction ends. A
-- session that may log in as app_user or uber_admin must never hold that:
-- left open, it would stop every request. So only the owner's members run
-- this (scripts/db maintain, from cron), as themselves, not as a definer.
create function core.purge_audit_partitions() returns table (action text, partition_name text)
language plpgsql volatile
set search_path = pg_catalog, pg_temp
set timezone = 'UTC'
set datestyle = 'ISO, MDY'
set lock_timeout = '2s'
as $$
#variable_conflict use_column
declare
  v_partition record;
  v_tenant record;
begin
  for v_partition in select * from core.expired_audit_partitions() loop
    -- No writer or reader may be inside the trail while it loses a
    -- partition: the service's sessions in it are ended (a request caught
    -- so is retried), once a month at most.
    perform core.end_audit_lock_holders(array['AccessShareLock', 'RowShareLock', 'RowExclusiveLock',
      'ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock']);
    lock table core.audit_logs in access exclusive mode;
    for v_tenant in select * from core.audit_partition_tenants(v_partition.from_time, v_partition.to_time) loop
      -- Commit order and transaction start can cross at a month's edge: a
      -- partition may end below a checkpoint already written, whose rows
      -- past it are verified from that checkpoint still.
      if v_tenant.floor_seq is null or v_tenant.through_seq > v_tenant.floor_seq then
        perform core.record_audit_purge(v_tenant.tenant_id, v_tenant.through_seq, v_tenant.through_hash,
          v_partition.name, v_tenant.retention_days);
      end if;
    end loop;
    execute format('alter table core.audit_logs detach partition %s', v_partition.rel);
    execute format('drop table %s', v_partition.rel);
    return query select 'dropped', v_partition.name;
  end loop;
end
$$;
comment on function core.purge_audit_partitions() is
  'Drops the oldest audit partitions whose every row is past its tenant''s audit_retention_days, leaving a checkpoint in each tenant''s chain; for the owner''s members only';
reset role;

-- Verification starts after the latest checkpoint ------------------------------

create or replace function core.verify_audit_chain(p_tenant_id uuid, p_from_seq bigint default 1,
  p_max_rows integer default 100000, p_anchor_seq bigint default null, p_anchor_hash bytea default null)
returns table (verified boolean, from_seq bigint, to_seq bigint, rows_checked bigint, complete boolean,
  head_seq bigint, head_hash text, broken_at_seq bigint, reason text)
language plpgsql stable
as $$
#variable_conflict use_column
declare
  v_from bigint := greatest(coalesce(p_from_seq, 1), 1);
  v_limit integer := least(greatest(coalesce(p_max_rows, 100000), 1), 100000);
  v_prev bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
  v_expected bigint;
  v_checked bigint := 0;
  v_row core.audit_logs;
  v_moved core.audit_logs;
  v_linked bigint;
  v_candidate bigint;
  v_reason text;
  v_head record;
  v_purge record;
  v_floor_seq bigint;
  v_floor_hash bytea;
begin
  if (p_anchor_seq is null) <> (p_anchor_hash is null) then
    raise exception 'an anchor is a seq and a hash' using errcode = 'PT422';
  end if;
  if p_anchor_seq is not null and (p_anchor_seq < v_from or octet_length(p_anchor_hash) <> 32) then
    raise exception 'an anchor is a hash of 32 bytes at or after the first seq verified'
      using errcode = 'PT422';
  end if;
  select h.seq, h.hash into v_head from core.audit_chain_heads h where h.tenant_id = p_tenant_id;
  if v_from > coalesce(v_head.seq, 0) + 1 then
    raise exception 'from_seq is beyond the end of the chain (%)', coalesce(v_head.seq, 0)
      using errcode = 'PT422';
  end if;
  -- Rows up to the latest purge's through_seq went with their partitions:
  -- the chain goes on from the hash it recorded (its own row is verified
  -- below, as part of the chain). A purge row that could not have been
  -- written by the maintenance (its partition still there, or not yet past
  -- the retention it names, or details that are no checkpoint) was inserted
  -- by someone else.
  select a.seq as at_seq, a."timestamp" as at_time, a.details ->> 'through_seq' as through_seq,
    a.details ->> 'through_hash' as through_hash, a.details ->> 'partition' as partition_name,
    a.details ->> 'retention_days' as retention_days
    into v_purge
    from core.audit_logs a
    where a.tenant_id = p_tenant_id and a.action = 'audit.purged'
    order by a.seq desc limit 1;
  if found then
    if not (v_purge.through_seq ~ '^[0-9]{1,18}$' and v_purge.through_seq::bigint < v_purge.at_seq
            and v_purge.through_hash ~ '^[0-9a-f]{64}$'
            and v_purge.partition_name ~ '^audit_logs_y[0-9]{4}m(0[1-9]|1[0-2])$'
            and v_purge.retention_days ~ '^[1-9][0-9]{2,4}$' and v_purge.retention_days::int between 365 and 36500
            and to_regclass(format('core.%I', v_purge.partition_name)) is null
            and v_purge.at_time >= make_timestamptz(substr(v_purge.partition_name, 13, 4)::int,
                                     substr(v_purge.partition_name, 18, 2)::int, 1, 0, 0, 0, 'UTC')
                                   + interval '1 month' + make_interval(days => v_purge.retention_days::int)) then
      return query select false, v_from, null::bigint, 0::bigint, true, null::bigint, null::text, v_purge.at_seq,
        'row inserted';
      return;
    end if;
    v_floor_seq := v_purge.through_seq::bigint;
    v_floor_hash := decode(v_purge.through_hash, 'hex');
  end if;
  if v_floor_seq is not null and v_from <= v_floor_seq + 1 then
    if p_anchor_seq <= v_floor_seq then
      if p_anchor_seq < v_floor_seq then
        raise exception 'the anchor lies in the purged part of the chain (through seq %)', v_floor_seq
          using errcode = 'PT422';
      elsif p_anchor_hash <> v_floor_hash then
        return query select false, v_floor_seq + 1, v_floor_seq, 0::bigint, true, null::bigint, null::text,
          v_floor_seq, 'anchor mismatch';
        return;
      end if;
    end if;
    v_from := v_floor_seq + 1;
    v_prev := v_floor_hash;
  elsif v_from > 1 then
    select a.chain_hash into v_prev from core.audit_logs a where a.tenant_id = p_tenant_id and a.seq = v_from - 1;
    if not found then
      return query select false, v_from, null::bigint, 0::bigint, true, null::bigint, null::text, v_from - 1,
        'row missing';
      return;
    end if;
  end if;
  v_expected := v_from;
  for v_row in
    select * from core.audit_logs a where a.tenant_id = p_tenant_id and a.seq >= v_from
    order by a.seq limit v_limit + 1
  loop
    if v_checked = v_limit then
      -- More rows than one call verifies: the caller goes on from v_expected.
      return query select true, v_from, v_expected - 1, v_checked, false, v_expected - 1, encode(v_prev, 'hex'),
        null::bigint, null::text;
      return;
    end if;
    if v_row.seq > v_expected then
      return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text, v_expected,
        'row missing';
      return;
    elsif v_row.seq < v_expected then
      return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text, v_row.seq,
        'row inserted';
      return;
    end if;
    if v_row.details_sha256 is distinct from sha256(v_row.details_salt || convert_to(v_row.details::text, 'UTF8'))
       or v_row.chain_hash is distinct from sha256(v_row.prev_hash || core.audit_record(v_row)) then
      -- A row that hashes right under another seq (a neighbour's, or the
      -- one after its predecessor's) was moved, not changed.
      select a.seq + 1 into v_linked from core.audit_logs a
        where a.tenant_id = p_tenant_id and a.chain_hash = v_row.prev_hash limit 1;
      v_reason := 'row changed';
      if v_row.details_sha256 = sha256(v_row.details_salt || convert_to(v_row.details::text, 'UTF8')) then
        foreach v_candidate in array array[v_row.seq - 1, v_row.seq + 1, v_linked] loop
          continue when v_candidate is null or v_candidate = v_row.seq or v_candidate < 1;
          v_moved := v_row;
          v_moved.seq := v_candidate;
          if v_row.chain_hash = sha256(v_row.prev_hash || core.audit_record(v_moved)) then
            -- Moved after the row it followed was removed, or among rows
            -- that are all still there.
            v_reason := case when v_linked is null and v_row.seq > 1 then 'row missing' else 'order changed' end;
            exit;
          end if;
        end loop;
      end if;
      return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text, v_row.seq,
        v_reason;
      return;
    end if;
    if v_row.prev_hash is distinct from v_prev then
      -- The row is intact but follows something else: a row before it was
      -- removed (it links further back), moved, or rewritten.
      select a.seq into v_linked from core.audit_logs a
        where a.tenant_id = p_tenant_id and a.chain_hash = v_row.prev_hash limit 1;
      return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text,
        case when v_linked < v_row.seq - 1 then v_linked + 1 when v_linked > v_row.seq then v_row.seq else v_row.seq - 1 end,
        case when v_linked < v_row.seq - 1 then 'row missing' when v_linked > v_row.seq then 'order changed'
             else 'row changed' end;
      return;
    end if;
    if v_row.seq = p_anchor_seq and v_row.chain_hash <> p_anchor_hash then
      return query select false, v_from, v_row.seq, v_checked + 1, true, null::bigint, null::text, v_row.seq,
        'anchor mismatch';
      return;
    end if;
    v_prev := v_row.chain_hash;
    v_expected := v_row.seq + 1;
    v_checked := v_checked + 1;
  end loop;

  -- The whole chain from v_from was read: the head must be its end.
  if p_anchor_seq >= v_expected then
    return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text, v_expected,
      'row missing';
    return;
  end if;
  select h.seq, h.hash into v_head from core.audit_chain_heads h where h.tenant_id = p_tenant_id;
  if coalesce(v_head.seq, 0) > v_expected - 1 then
    return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text, v_expected,
      'row missing';
  elsif coalesce(v_head.seq, 0) < v_expected - 1 then
    return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text,
      coalesce(v_head.seq, 0) + 1, 'row inserted';
  elsif v_expected > 1 and v_head.hash is distinct from v_prev then
    return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text, v_expected - 1,
      'row changed';
  else
    return query select true, v_from, v_expected - 1, v_checked, true, v_expected - 1, encode(v_prev, 'hex'),
      null::bigint, null::text;
  end if;
end
$$;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '300s';

drop function core.purge_audit_partitions();
drop function core.maintain_audit_partitions();
drop function core.expired_audit_partitions();
drop function core.end_audit_lock_holders(text[]);
revoke execute on function core.end_stale_transactions() from tenancy_owner;
revoke execute on function core.advance_chain_head() from tenancy_owner;
drop function core.record_audit_purge(uuid, bigint, bytea, text, integer);
drop function core.audit_partition_tenants(timestamptz, timestamptz);
revoke select (tenant_id, settings) on core.tenant_configs from tenancy_auditor;

-- squawk-ignore renaming-table
alter table core.audit_logs rename to audit_logs_partitioned;
alter index core.audit_logs_pkey rename to audit_logs_partitioned_pkey;
alter index core.audit_logs_tenant_seq_idx rename to audit_logs_partitioned_tenant_seq_idx;
alter index core.audit_logs_tenant_timestamp_idx rename to audit_logs_partitioned_tenant_timestamp_idx;
alter index core.audit_logs_tenant_user_timestamp_idx rename to audit_logs_partitioned_tenant_user_timestamp_idx;
alter index core.audit_logs_timestamp_idx rename to audit_logs_partitioned_timestamp_idx;
alter table core.audit_logs_partitioned rename constraint audit_logs_tenant_id_fkey to audit_logs_partitioned_tenant_id_fkey;

set local role tenancy_owner;
create table core.audit_logs (
  log_id uuid not null default gen_random_uuid(),
  tenant_id uuid not null,
  user_id uuid,
  api_key_id uuid,
  action text not null constraint audit_logs_action_check check (action ~ '^[a-z][a-z_.]{0,99}$'),
  resource_type text not null constraint audit_logs_resource_type_check check (resource_type ~ '^[a-z][a-z_]{0,99}$'),
  resource_id uuid not null,
  details jsonb not null default '{}' constraint audit_logs_details_check check (jsonb_typeof(details) = 'object'),
  request_id text constraint audit_logs_request_id_check check (char_length(request_id) <= 200),
  "timestamp" timestamptz not null default now(),
  client_request_id text constraint audit_logs_client_request_id_check check (char_length(client_request_id) <= 200),
  operator_id uuid,
  seq bigint not null,
  recorded_at timestamptz not null,
  details_salt bytea not null,
  details_sha256 bytea not null,
  prev_hash bytea not null,
  chain_hash bytea not null,
  constraint audit_logs_pkey primary key (tenant_id, log_id),
  constraint audit_logs_tenant_id_fkey foreign key (tenant_id) references core.tenants (tenant_id)
);
reset role;
insert into core.audit_logs select * from core.audit_logs_partitioned;
do $$
begin
  if (select count(*) from core.audit_logs) <> (select count(*) from core.audit_logs_partitioned) then
    raise exception 'the audit rows were not all copied';
  end if;
end
$$;
set local role tenancy_owner;
create unique index audit_logs_tenant_seq_key on core.audit_logs (tenant_id, seq);
create index audit_logs_tenant_timestamp_idx on core.audit_logs (tenant_id, "timestamp" desc, log_id desc);
create index audit_logs_tenant_user_timestamp_idx on core.audit_logs (tenant_id, user_id, "timestamp" desc, log_id desc);
create index audit_logs_timestamp_idx on core.audit_logs ("timestamp" desc, log_id desc);
do $$
declare
  v_column name;
begin
  for v_column in
    select attname from pg_attribute where attrelid = 'core.audit_logs'::regclass and attnum > 0 and not attisdropped
  loop
    execute format('alter table core.audit_logs alter column %I set statistics 0', v_column);
  end loop;
end
$$;
comment on table core.audit_logs is 'Append-only trail of every change to tenant-scoped rows, written by trigger';
comment on column core.audit_logs.log_id is 'Identity of the entry';
comment on column core.audit_logs.tenant_id is 'Tenant whose row changed';
comment on column core.audit_logs.user_id is 'Acting user (app.user_id), when the request was bound to one';
comment on column core.audit_logs.api_key_id is 'API key that made the request (app.api_key_id); NULL for platform operations';
comment on column core.audit_logs.action is 'What happened: insert, update or delete';
comment on column core.audit_logs.resource_type is 'Table the changed row belongs to, e.g. documents';
comment on column core.audit_logs.resource_id is 'Primary id of the changed row within its tenant';
comment on column core.audit_logs.details is 'Changed columns with old and new values (never key_hash) and the database role';
comment on column core.audit_logs.request_id is 'Request id the service assigned (a UUID), from the verified context; the one to trust';
comment on column core.audit_logs."timestamp" is 'Start of the transaction that made the change';
comment on column core.audit_logs.client_request_id is 'x-request-id the client sent, if any; informational, never trusted';
comment on column core.audit_logs.operator_id is 'Platform operator who made the request (platform routes); NULL for tenant API keys and DBAs';
comment on column core.audit_logs.seq is 'Position in the tenant''s chain: 1, 2, 3, ... without gaps, in commit order';
comment on column core.audit_logs.recorded_at is 'Clock time at which the row was written (timestamp is its transaction''s start)';
comment on column core.audit_logs.details_salt is 'Random bytes hashed before the details, so that redacted details cannot be guessed from their hash';
comment on column core.audit_logs.details_sha256 is 'SHA-256 of details_salt and details::text, which the chain covers';
comment on column core.audit_logs.prev_hash is 'chain_hash of the tenant''s previous row; 32 zero bytes before the first';
comment on column core.audit_logs.chain_hash is 'SHA-256 of prev_hash and the row''s canonical record (see migration 20261201000900)';
reset role;

create or replace view api.audit_logs with (security_invoker = false) as
  select a.log_id, a.tenant_id, a.user_id, a.api_key_id, a.action, a.resource_type, a.resource_id,
    case when core.audit_details_readable(a.resource_type, (select core.current_permissions()))
         then a.details else a.details - 'old' - 'new' end as details,
    a.request_id, a."timestamp", a.client_request_id, a.operator_id
  from core.audit_logs a;
create or replace view platform.audit_logs with (security_invoker = true) as
  select log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id, details, request_id,
    "timestamp", client_request_id, operator_id
  from core.audit_logs;
drop function core.audit_record(core.audit_logs_partitioned);
set local role tenancy_owner;
create function core.audit_record(p_row core.audit_logs) returns bytea
language sql immutable parallel safe
as $$
  select convert_to(E'tenancy-audit-v1\n' || string_agg(
           case when f.value is null then '~' else octet_length(f.value) || ':' || f.value || ',' end,
           '' order by f.n), 'UTF8')
  from unnest(array[
    p_row.tenant_id::text, p_row.seq::text, p_row.log_id::text, p_row.user_id::text, p_row.api_key_id::text,
    p_row.operator_id::text, p_row.action, p_row.resource_type, p_row.resource_id::text,
    encode(p_row.details_sha256, 'hex'), p_row.request_id, p_row.client_request_id,
    core.audit_time(p_row."timestamp"), core.audit_time(p_row.recorded_at)]) with ordinality as f (value, n)
$$;
comment on function core.audit_record(core.audit_logs) is
  'Canonical record of an audit row, which its chain_hash covers (format: migration 20261201000900)';
grant execute on function core.audit_record(core.audit_logs) to tenancy_auditor, tenancy_writer, uber_admin;
reset role;
drop table core.audit_logs_partitioned;
drop function core.create_audit_partition(timestamptz);

set local role tenancy_owner;
alter table core.audit_logs enable row level security;
alter table core.audit_logs force row level security;
create policy select_own_tenant on core.audit_logs for select
  using (tenant_id = (select c.tenant_id from core.request_context c where 'audit:read' = any (c.permissions)));
create policy insert_own_tenant on core.audit_logs for insert
  with check (tenant_id = (select c.tenant_id from core.request_context c));
grant select on core.audit_logs to uber_admin;
grant select (seq, recorded_at, details_salt, details_sha256, prev_hash, chain_hash) on core.audit_logs to uber_admin;
grant select (log_id, tenant_id, user_id, api_key_id, action, resource_type, resource_id, details, request_id,
  "timestamp", client_request_id, operator_id, seq, recorded_at, details_salt, details_sha256, prev_hash, chain_hash)
  on core.audit_logs to tenancy_writer;
grant select (tenant_id, seq, chain_hash),
  insert (tenant_id, user_id, api_key_id, operator_id, action, resource_type, resource_id, details, request_id,
          client_request_id)
  on core.audit_logs to tenancy_auditor;
reset role;
create trigger chain_audit_row before insert on core.audit_logs
  for each row execute function core.chain_audit_row();
create constraint trigger advance_chain_head after insert on core.audit_logs
  deferrable initially deferred for each row execute function core.advance_chain_head();
create trigger reject_update_delete before update or delete on core.audit_logs
  for each row execute function core.reject_audit_change();
create trigger reject_truncate before truncate on core.audit_logs
  for each statement execute function core.reject_audit_change();
alter table core.audit_logs enable always trigger chain_audit_row;
alter table core.audit_logs enable always trigger advance_chain_head;
alter table core.audit_logs enable always trigger reject_update_delete;
alter table core.audit_logs enable always trigger reject_truncate;

-- The functions as they were.
create or replace function core.chain_audit_row()
returns trigger
language plpgsql
as $$
declare
  v_head record;
  v_last record;
begin
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
    from core.audit_logs a where a.tenant_id = new.tenant_id and a.seq > v_head.seq
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
$$;

create or replace function core.advance_chain_head() returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  -- Fired at commit for each row; only a tenant's last row moves the head.
  if not exists (select from core.audit_logs a where a.tenant_id = new.tenant_id and a.seq > new.seq) then
    update core.audit_chain_heads h set seq = new.seq, hash = new.chain_hash
      where h.tenant_id = new.tenant_id and h.seq < new.seq;
  end if;
  return null;
end
$$;

create or replace function core.verify_audit_chain(
  p_tenant_id uuid,
  p_from_seq bigint default 1,
  p_max_rows integer default 100000,
  p_anchor_seq bigint default null,
  p_anchor_hash bytea default null
) returns table (
  verified boolean, from_seq bigint, to_seq bigint, rows_checked bigint, complete boolean,
  head_seq bigint, head_hash text, broken_at_seq bigint, reason text
)
language plpgsql stable
as $$
#variable_conflict use_column
declare
  v_from bigint := greatest(coalesce(p_from_seq, 1), 1);
  v_limit integer := least(greatest(coalesce(p_max_rows, 100000), 1), 100000);
  v_prev bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
  v_expected bigint;
  v_checked bigint := 0;
  v_row core.audit_logs;
  v_moved core.audit_logs;
  v_linked bigint;
  v_candidate bigint;
  v_reason text;
  v_head record;
begin
  if (p_anchor_seq is null) <> (p_anchor_hash is null) then
    raise exception 'an anchor is a seq and a hash' using errcode = 'PT422';
  end if;
  if p_anchor_seq is not null and (p_anchor_seq < v_from or octet_length(p_anchor_hash) <> 32) then
    raise exception 'an anchor is a hash of 32 bytes at or after the first seq verified'
      using errcode = 'PT422';
  end if;
  select h.seq, h.hash into v_head from core.audit_chain_heads h where h.tenant_id = p_tenant_id;
  if v_from > coalesce(v_head.seq, 0) + 1 then
    raise exception 'from_seq is beyond the end of the chain (%)', coalesce(v_head.seq, 0)
      using errcode = 'PT422';
  end if;
  if v_from > 1 then
    select a.chain_hash into v_prev from core.audit_logs a where a.tenant_id = p_tenant_id and a.seq = v_from - 1;
    if not found then
      return query select false, v_from, null::bigint, 0::bigint, true, null::bigint, null::text, v_from - 1,
        'row missing';
      return;
    end if;
  end if;
  v_expected := v_from;
  for v_row in
    select * from core.audit_logs a where a.tenant_id = p_tenant_id and a.seq >= v_from
    order by a.seq limit v_limit + 1
  loop
    if v_checked = v_limit then
      -- More rows than one call verifies: the caller goes on from v_expected.
      return query select true, v_from, v_expected - 1, v_checked, false, v_expected - 1, encode(v_prev, 'hex'),
        null::bigint, null::text;
      return;
    end if;
    if v_row.seq > v_expected then
      return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text, v_expected,
        'row missing';
      return;
    elsif v_row.seq < v_expected then
      return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text, v_row.seq,
        'row inserted';
      return;
    end if;
    if v_row.details_sha256 is distinct from sha256(v_row.details_salt || convert_to(v_row.details::text, 'UTF8'))
       or v_row.chain_hash is distinct from sha256(v_row.prev_hash || core.audit_record(v_row)) then
      -- A row that hashes right under another seq (a neighbour's, or the
      -- one after its predecessor's) was moved, not changed.
      select a.seq + 1 into v_linked from core.audit_logs a
        where a.tenant_id = p_tenant_id and a.chain_hash = v_row.prev_hash limit 1;
      v_reason := 'row changed';
      if v_row.details_sha256 = sha256(v_row.details_salt || convert_to(v_row.details::text, 'UTF8')) then
        foreach v_candidate in array array[v_row.seq - 1, v_row.seq + 1, v_linked] loop
          continue when v_candidate is null or v_candidate = v_row.seq or v_candidate < 1;
          v_moved := v_row;
          v_moved.seq := v_candidate;
          if v_row.chain_hash = sha256(v_row.prev_hash || core.audit_record(v_moved)) then
            -- Moved after the row it followed was removed, or among rows
            -- that are all still there.
            v_reason := case when v_linked is null and v_row.seq > 1 then 'row missing' else 'order changed' end;
            exit;
          end if;
        end loop;
      end if;
      return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text, v_row.seq,
        v_reason;
      return;
    end if;
    if v_row.prev_hash is distinct from v_prev then
      -- The row is intact but follows something else: a row before it was
      -- removed (it links further back), moved, or rewritten.
      select a.seq into v_linked from core.audit_logs a
        where a.tenant_id = p_tenant_id and a.chain_hash = v_row.prev_hash limit 1;
      return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text,
        case when v_linked < v_row.seq - 1 then v_linked + 1 when v_linked > v_row.seq then v_row.seq else v_row.seq - 1 end,
        case when v_linked < v_row.seq - 1 then 'row missing' when v_linked > v_row.seq then 'order changed'
             else 'row changed' end;
      return;
    end if;
    if v_row.seq = p_anchor_seq and v_row.chain_hash <> p_anchor_hash then
      return query select false, v_from, v_row.seq, v_checked + 1, true, null::bigint, null::text, v_row.seq,
        'anchor mismatch';
      return;
    end if;
    v_prev := v_row.chain_hash;
    v_expected := v_row.seq + 1;
    v_checked := v_checked + 1;
  end loop;

  -- The whole chain from v_from was read: the head must be its end.
  if p_anchor_seq >= v_expected then
    return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text, v_expected,
      'row missing';
    return;
  end if;
  select h.seq, h.hash into v_head from core.audit_chain_heads h where h.tenant_id = p_tenant_id;
  if coalesce(v_head.seq, 0) > v_expected - 1 then
    return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text, v_expected,
      'row missing';
  elsif coalesce(v_head.seq, 0) < v_expected - 1 then
    return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text,
      coalesce(v_head.seq, 0) + 1, 'row inserted';
  elsif v_expected > 1 and v_head.hash is distinct from v_prev then
    return query select false, v_from, v_expected - 1, v_checked, true, null::bigint, null::text, v_expected - 1,
      'row changed';
  else
    return query select true, v_from, v_expected - 1, v_checked, true, v_expected - 1, encode(v_prev, 'hex'),
      null::bigint, null::text;
  end if;
end
$$;
