-- migrate:up
/*
 * Why: the trail was append-only against ordinary roles, but the table's
 * owner or a superuser could disable its triggers and change or delete rows,
 * and nothing afterwards showed it. And `timestamp` is the transaction's
 * start, so a consumer polling with `since` could miss a row that committed
 * late.
 *
 * Now every tenant's trail is a hash chain. Each row gets the tenant's next
 * sequence number (seq, from 1, gap-free) and
 *   chain_hash = SHA-256(prev_hash || record)
 * where prev_hash is the previous row's chain_hash (32 zero bytes before the
 * first row) and record is the canonical encoding of the row:
 *
 *   "tenancy-audit-v1\n", then for each field in this order a netstring,
 *   <length in bytes, decimal>:<UTF-8 value>, ... or "~" for NULL:
 *   tenant_id, seq, log_id, user_id, api_key_id, operator_id, action,
 *   resource_type, resource_id, details_sha256, request_id,
 *   client_request_id, timestamp, recorded_at
 *
 * uuids in lower-case hex with hyphens; seq in decimal; details_sha256 is
 * the hex SHA-256 of details_salt (16 random bytes of the row's own) followed
 * by the details' text exactly as PostgreSQL prints the jsonb (the export
 * carries both, unless the details are redacted, when it carries neither: a
 * hash of low-entropy values alone could be guessed); times in UTC as
 * YYYY-MM-DDTHH:MM:SS.ffffffZ, with " BC" after a time before year 1.
 * `recorded_at` is the clock when the row was written.
 *
 * core.audit_chain_heads holds each tenant's last committed (seq, hash). A
 * writer locks its tenant's head row (FOR UPDATE) before it chains a row and
 * holds it until commit, so a second writer of the same tenant waits and then
 * chains after the first: seq order is commit order, no fork, no gap (a
 * rolled-back row returns its number with it). At commit a deferred trigger
 * moves the head to the transaction's last row, once. Writers of different
 * tenants lock different rows and do not wait for each other.
 *
 * core.verify_audit_chain walks a tenant's chain and names the first seq
 * where it breaks and why: row changed, row missing, row inserted, order
 * changed, or anchor mismatch; or returns the head (seq, hash). A head
 * stored outside the system (an anchor) proves, when verified later, that
 * nothing up to it was rewritten; without one, whoever can rewrite every row
 * and the heads can rewrite a consistent chain, which is why anchors exist.
 * Tenants verify their own chain (api.verify_audit_chain, audit:read) and
 * read it by seq (api.export_audit_logs), which a poller never skips a late
 * commit with; operators do both for any tenant (platform.*). Existing rows
 * are chained here, in (timestamp, log_id) order.
 */
set local lock_timeout = '5s';
set local statement_timeout = '600s';

set local role tenancy_owner;

alter table core.audit_logs
  add column seq bigint,
  add column recorded_at timestamptz,
  add column details_salt bytea,
  add column details_sha256 bytea,
  add column prev_hash bytea,
  add column chain_hash bytea;
alter table core.audit_logs alter column seq set statistics 0;
alter table core.audit_logs alter column recorded_at set statistics 0;
alter table core.audit_logs alter column details_salt set statistics 0;
alter table core.audit_logs alter column details_sha256 set statistics 0;
alter table core.audit_logs alter column prev_hash set statistics 0;
alter table core.audit_logs alter column chain_hash set statistics 0;
comment on column core.audit_logs.seq is 'Position in the tenant''s chain: 1, 2, 3, ... without gaps, in commit order';
comment on column core.audit_logs.recorded_at is 'Clock time at which the row was written (timestamp is its transaction''s start)';
comment on column core.audit_logs.details_salt is 'Random bytes hashed before the details, so that redacted details cannot be guessed from their hash';
comment on column core.audit_logs.details_sha256 is 'SHA-256 of details_salt and details::text, which the chain covers';
comment on column core.audit_logs.prev_hash is 'chain_hash of the tenant''s previous row; 32 zero bytes before the first';
comment on column core.audit_logs.chain_hash is 'SHA-256 of prev_hash and the row''s canonical record (see migration 20261201000900)';

create table core.audit_chain_heads (
  tenant_id uuid primary key references core.tenants (tenant_id),
  seq bigint not null check (seq >= 0),
  hash bytea not null check (octet_length(hash) = 32)
);
alter table core.audit_chain_heads alter column tenant_id set statistics 0;
alter table core.audit_chain_heads alter column seq set statistics 0;
alter table core.audit_chain_heads alter column hash set statistics 0;
comment on table core.audit_chain_heads is
  'Last (seq, chain_hash) of each tenant''s audit chain; its row lock orders the tenant''s audit writers';
comment on column core.audit_chain_heads.tenant_id is 'Tenant whose chain this is';
comment on column core.audit_chain_heads.seq is 'seq of the tenant''s last audit row; 0 before the first';
comment on column core.audit_chain_heads.hash is 'chain_hash of that row';
alter table core.audit_chain_heads enable row level security;
alter table core.audit_chain_heads force row level security;
-- Written only by the chaining trigger (as tenancy_auditor, which bypasses
-- row-level security); read by whoever may read the tenant's trail.
create policy select_own_tenant on core.audit_chain_heads for select
  using (tenant_id = (select c.tenant_id from core.request_context c where 'audit:read' = any (c.permissions)));
create policy insert_own_tenant on core.audit_chain_heads for insert with check (false);
create policy update_own_tenant on core.audit_chain_heads for update using (false) with check (false);
create policy delete_own_tenant on core.audit_chain_heads for delete using (false);

-- The encoding ------------------------------------------------------------------------

create function core.audit_time(p_at timestamptz) returns text
language sql immutable parallel safe
as $$
  select to_char(p_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
         || case when p_at < '0001-01-01 00:00:00+00' then ' BC' else '' end
$$;
comment on function core.audit_time(timestamptz) is
  'A time as the chain encodes it: UTC, microseconds, YYYY-MM-DDTHH:MM:SS.ffffffZ, and " BC" before year 1';

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

-- Chaining each new row ------------------------------------------------------------------

create function core.chain_audit_row() returns trigger
language plpgsql volatile
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
  select h.seq, h.hash into v_head from core.audit_chain_heads h where h.tenant_id = new.tenant_id for update;
  if not found then
    insert into core.audit_chain_heads (tenant_id, seq, hash)
      values (new.tenant_id, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
      on conflict (tenant_id) do nothing;
    select h.seq, h.hash into v_head from core.audit_chain_heads h where h.tenant_id = new.tenant_id for update;
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
comment on function core.chain_audit_row() is
  'Trigger: gives a new audit row its tenant''s next seq and its chain hash, holding the tenant''s head locked until commit';

create function core.advance_chain_head() returns trigger
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
comment on function core.advance_chain_head() is
  'Trigger, deferred to commit: moves the tenant''s head to the last row its transaction chained; runs as tenancy_auditor, whoever commits';

-- Verifying ------------------------------------------------------------------------------

create function core.verify_audit_chain(
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
comment on function core.verify_audit_chain(uuid, bigint, integer, bigint, bytea) is
  'Walks a tenant''s audit chain from a seq (at most 100,000 rows a call) and returns the head, or the first seq where it breaks and why';

-- Redaction, one rule for the list and the export -------------------------------------------

create function core.audit_details_readable(p_resource_type text, p_permissions text[]) returns boolean
language sql immutable parallel safe
as $$
  select p_resource_type = 'tenants'
      or case p_resource_type
           when 'users' then 'users:read'
           when 'documents' then 'documents:read'
           when 'tenant_api_keys' then 'keys:read'
           when 'tenant_configs' then 'config:read'
         end = any (coalesce(p_permissions, '{}'))
$$;
comment on function core.audit_details_readable(text, text[]) is
  'Whether a key with these permissions sees old and new values of an entry of this resource type';

create or replace view api.audit_logs with (security_invoker = false) as
  select a.log_id, a.tenant_id, a.user_id, a.api_key_id, a.action, a.resource_type, a.resource_id,
         case when core.audit_details_readable(a.resource_type, (select core.current_permissions()))
              then a.details else a.details - 'old' - 'new' end as details,
         a.request_id, a."timestamp", a.client_request_id, a.operator_id
  from core.audit_logs a;

-- Reading by seq, as an auditor exports it ---------------------------------------------------

create function core.audit_export(p_tenant_id uuid, p_from_seq bigint, p_limit integer, p_permissions text[])
returns table (
  seq bigint, log_id uuid, tenant_id uuid, user_id uuid, api_key_id uuid, operator_id uuid, action text,
  resource_type text, resource_id uuid, details jsonb, details_text text, details_salt text, details_sha256 text, request_id text,
  client_request_id text, "timestamp" text, recorded_at text, prev_hash text, chain_hash text
)
language sql stable
as $$
  select a.seq, a.log_id, a.tenant_id, a.user_id, a.api_key_id, a.operator_id, a.action, a.resource_type,
         a.resource_id,
         case when p_permissions is null or core.audit_details_readable(a.resource_type, p_permissions)
              then a.details else a.details - 'old' - 'new' end,
         case when p_permissions is null or core.audit_details_readable(a.resource_type, p_permissions)
              then a.details::text end,
         case when p_permissions is null or core.audit_details_readable(a.resource_type, p_permissions)
              then encode(a.details_salt, 'hex') end,
         encode(a.details_sha256, 'hex'), a.request_id, a.client_request_id, core.audit_time(a."timestamp"),
         core.audit_time(a.recorded_at),
         encode(a.prev_hash, 'hex'), encode(a.chain_hash, 'hex')
  from (
    -- A page ends at 1,000 rows or once 4 MB of details are in it, so a page
    -- of large entries still fits in memory and a statement's time.
    select a.*, sum(octet_length(a.details::text)) over (order by a.seq) - octet_length(a.details::text) as before
    from core.audit_logs a
    where a.tenant_id = p_tenant_id and a.seq >= greatest(coalesce(p_from_seq, 1), 1)
    order by a.seq
    limit least(greatest(coalesce(p_limit, 1000), 1), 1000)
  ) a
  where a.before < 4194304
  order by a.seq
$$;
comment on function core.audit_export(uuid, bigint, integer, text[]) is
  'A tenant''s audit rows from a seq, in chain order, at most 1,000 or 4 MB of details, with what verifying them needs (times as the chain encodes them); values redacted as for these permissions (NULL: none redacted)';

create function api.export_audit_logs(p_from_seq bigint default 1, p_limit integer default 1000)
returns table (
  seq bigint, log_id uuid, tenant_id uuid, user_id uuid, api_key_id uuid, operator_id uuid, action text,
  resource_type text, resource_id uuid, details jsonb, details_text text, details_salt text, details_sha256 text, request_id text,
  client_request_id text, "timestamp" text, recorded_at text, prev_hash text, chain_hash text
)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  -- Row-level security gives tenancy_writer the rows of the context's
  -- tenant, and only with audit:read.
  select e.* from core.request_context c
  cross join lateral core.audit_export(c.tenant_id, p_from_seq, p_limit, c.permissions) e
  where 'audit:read' = any (c.permissions)
$$;
comment on function api.export_audit_logs(bigint, integer) is
  'The current tenant''s audit chain from a seq, at most 1,000 rows, with hashes; values redacted as in api.audit_logs';

create function api.verify_audit_chain(
  p_from_seq bigint default 1,
  p_max_rows integer default 100000,
  p_anchor_seq bigint default null,
  p_anchor_hash text default null
) returns table (
  verified boolean, from_seq bigint, to_seq bigint, rows_checked bigint, complete boolean,
  head_seq bigint, head_hash text, broken_at_seq bigint, reason text
)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select v.* from core.request_context c
  cross join lateral core.verify_audit_chain(c.tenant_id, p_from_seq, p_max_rows, p_anchor_seq,
    decode(p_anchor_hash, 'hex')) v
  where 'audit:read' = any (c.permissions)
$$;
comment on function api.verify_audit_chain(bigint, integer, bigint, text) is
  'Verifies the current tenant''s audit chain (audit:read): its head, or the first seq where it breaks and why';

create function platform.export_audit_logs(p_tenant_id uuid, p_from_seq bigint default 1, p_limit integer default 1000)
returns table (
  seq bigint, log_id uuid, tenant_id uuid, user_id uuid, api_key_id uuid, operator_id uuid, action text,
  resource_type text, resource_id uuid, details jsonb, details_text text, details_salt text, details_sha256 text, request_id text,
  client_request_id text, "timestamp" text, recorded_at text, prev_hash text, chain_hash text
)
language plpgsql stable
as $$
begin
  if not exists (select from core.tenants t where t.tenant_id = p_tenant_id) then
    raise exception 'no tenant with that id' using errcode = 'no_data_found';
  end if;
  return query select * from core.audit_export(p_tenant_id, p_from_seq, p_limit, null);
end
$$;
comment on function platform.export_audit_logs(uuid, bigint, integer) is
  'Any tenant''s audit chain from a seq, at most 1,000 rows, with hashes and values';

create function platform.verify_audit_chain(
  p_tenant_id uuid,
  p_from_seq bigint default 1,
  p_max_rows integer default 100000,
  p_anchor_seq bigint default null,
  p_anchor_hash text default null
) returns table (
  verified boolean, from_seq bigint, to_seq bigint, rows_checked bigint, complete boolean,
  head_seq bigint, head_hash text, broken_at_seq bigint, reason text
)
language plpgsql stable
as $$
begin
  if not exists (select from core.tenants t where t.tenant_id = p_tenant_id) then
    raise exception 'no tenant with that id' using errcode = 'no_data_found';
  end if;
  return query
    select * from core.verify_audit_chain(p_tenant_id, p_from_seq, p_max_rows, p_anchor_seq, decode(p_anchor_hash, 'hex'));
end
$$;
comment on function platform.verify_audit_chain(uuid, bigint, integer, bigint, text) is
  'Verifies any tenant''s audit chain: its head, or the first seq where it breaks and why';

reset role;

-- Chain what is there, in the order it happened, as the trigger would have.
alter table core.audit_logs disable trigger reject_update_delete;
do $$
declare
  v_row core.audit_logs;
  v_tenant uuid;
  v_seq bigint;
  v_prev bytea;
begin
  for v_row in select * from core.audit_logs order by tenant_id, "timestamp", log_id loop
    if v_tenant is distinct from v_row.tenant_id then
      if v_tenant is not null then
        insert into core.audit_chain_heads (tenant_id, seq, hash) values (v_tenant, v_seq, v_prev);
      end if;
      v_tenant := v_row.tenant_id;
      v_seq := 0;
      v_prev := '\x0000000000000000000000000000000000000000000000000000000000000000';
    end if;
    v_seq := v_seq + 1;
    v_row.seq := v_seq;
    v_row.recorded_at := v_row."timestamp";
    v_row.details_salt := extensions.gen_random_bytes(16);
    v_row.details_sha256 := sha256(v_row.details_salt || convert_to(v_row.details::text, 'UTF8'));
    v_row.prev_hash := v_prev;
    v_row.chain_hash := sha256(v_prev || core.audit_record(v_row));
    update core.audit_logs a
      set seq = v_row.seq, recorded_at = v_row.recorded_at, details_salt = v_row.details_salt,
          details_sha256 = v_row.details_sha256,
          prev_hash = v_row.prev_hash, chain_hash = v_row.chain_hash
      where a.tenant_id = v_row.tenant_id and a.log_id = v_row.log_id;
    v_prev := v_row.chain_hash;
  end loop;
  if v_tenant is not null then
    insert into core.audit_chain_heads (tenant_id, seq, hash) values (v_tenant, v_seq, v_prev);
  end if;
end
$$;
alter table core.audit_logs enable always trigger reject_update_delete;

set local role tenancy_owner;
-- Every row was just rewritten above; the scans below read it once more.
-- squawk-ignore adding-not-nullable-field
alter table core.audit_logs alter column seq set not null;
-- squawk-ignore adding-not-nullable-field
alter table core.audit_logs alter column recorded_at set not null;
-- squawk-ignore adding-not-nullable-field
alter table core.audit_logs alter column details_sha256 set not null;
-- squawk-ignore adding-not-nullable-field
alter table core.audit_logs alter column details_salt set not null;
-- squawk-ignore adding-not-nullable-field
alter table core.audit_logs alter column prev_hash set not null;
-- squawk-ignore adding-not-nullable-field
alter table core.audit_logs alter column chain_hash set not null;
-- squawk-ignore require-concurrent-index-creation
create unique index audit_logs_tenant_seq_key on core.audit_logs (tenant_id, seq);
create trigger chain_audit_row before insert on core.audit_logs
  for each row execute function core.chain_audit_row();
alter table core.audit_logs enable always trigger chain_audit_row;
create constraint trigger advance_chain_head after insert on core.audit_logs
  deferrable initially deferred
  for each row execute function core.advance_chain_head();
alter table core.audit_logs enable always trigger advance_chain_head;
reset role;
alter function core.advance_chain_head() owner to tenancy_auditor;

-- Who may do what ------------------------------------------------------------------------------

grant select, insert (tenant_id, seq, hash), update (seq, hash) on core.audit_chain_heads to tenancy_auditor;
grant select (tenant_id, seq, chain_hash) on core.audit_logs to tenancy_auditor;
grant execute on function extensions.gen_random_bytes(integer) to tenancy_auditor;
grant execute on function core.audit_time(timestamptz), core.audit_record(core.audit_logs)
  to tenancy_auditor, tenancy_writer, uber_admin;
grant execute on function core.verify_audit_chain(uuid, bigint, integer, bigint, bytea),
  core.audit_export(uuid, bigint, integer, text[]), core.audit_details_readable(text, text[])
  to tenancy_writer, uber_admin;
grant select on core.audit_chain_heads to tenancy_writer, uber_admin;
grant select (log_id, tenant_id, user_id, api_key_id, operator_id, action, resource_type, resource_id, details,
  request_id, client_request_id, "timestamp", seq, recorded_at, details_salt, details_sha256, prev_hash, chain_hash)
  on core.audit_logs to tenancy_writer;
grant select (seq, recorded_at, details_salt, details_sha256, prev_hash, chain_hash) on core.audit_logs to uber_admin;

alter function api.export_audit_logs(bigint, integer) owner to tenancy_writer;
alter function api.verify_audit_chain(bigint, integer, bigint, text) owner to tenancy_writer;
grant execute on function api.export_audit_logs(bigint, integer), api.verify_audit_chain(bigint, integer, bigint, text)
  to app_user;
grant execute on function platform.export_audit_logs(uuid, bigint, integer),
  platform.verify_audit_chain(uuid, bigint, integer, bigint, text) to uber_admin;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

revoke execute on function extensions.gen_random_bytes(integer) from tenancy_auditor;
drop function platform.verify_audit_chain(uuid, bigint, integer, bigint, text);
drop function platform.export_audit_logs(uuid, bigint, integer);
drop function api.verify_audit_chain(bigint, integer, bigint, text);
drop function api.export_audit_logs(bigint, integer);

set local role tenancy_owner;
create or replace view api.audit_logs with (security_invoker = false) as
  select a.log_id, a.tenant_id, a.user_id, a.api_key_id, a.action, a.resource_type, a.resource_id,
         case when a.resource_type = 'tenants'
                   or case a.resource_type
                        when 'users' then 'users:read'
                        when 'documents' then 'documents:read'
                        when 'tenant_api_keys' then 'keys:read'
                        when 'tenant_configs' then 'config:read'
                      end = any (coalesce((select core.current_permissions()), '{}'))
              then a.details else a.details - 'old' - 'new' end as details,
         a.request_id, a."timestamp", a.client_request_id, a.operator_id
  from core.audit_logs a;
drop function core.audit_export(uuid, bigint, integer, text[]);
drop function core.audit_details_readable(text, text[]);
drop function core.verify_audit_chain(uuid, bigint, integer, bigint, bytea);
drop trigger advance_chain_head on core.audit_logs;
drop trigger chain_audit_row on core.audit_logs;
drop function core.advance_chain_head();
drop function core.chain_audit_row();
drop function core.audit_record(core.audit_logs);
drop function core.audit_time(timestamptz);
drop table core.audit_chain_heads;
-- squawk-ignore ban-drop-column
alter table core.audit_logs drop column seq;
-- squawk-ignore ban-drop-column
alter table core.audit_logs drop column recorded_at;
-- squawk-ignore ban-drop-column
alter table core.audit_logs drop column details_sha256;
-- squawk-ignore ban-drop-column
alter table core.audit_logs drop column details_salt;
-- squawk-ignore ban-drop-column
alter table core.audit_logs drop column prev_hash;
-- squawk-ignore ban-drop-column
alter table core.audit_logs drop column chain_hash;
reset role;
