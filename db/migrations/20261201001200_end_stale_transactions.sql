-- migrate:up
/*
 * Why: a fifth attack found that a session holding a row lock for as long
 * as it likes stops what must never be stopped. Anyone with the app_user
 * password and a key that may write one row: write it (the tenant's audit
 * chain head is now locked until commit), switch off the session's own
 * idle_in_transaction_session_timeout, and never commit. Every audited write
 * of the tenant then waits, the revocation of that very key among them, and
 * the key keeps working in other sessions: revoking it answered 503. An
 * operator could do the same on the Platform's chain and not be revoked.
 *
 * No request lives longer than 30 s: its context stops verifying then, and
 * the service's statement and idle timeouts end its transactions much
 * sooner. So a transaction of app_user or uber_admin older than 30 s is no
 * request, and core.end_stale_transactions() ends it: the chaining trigger
 * calls it when it finds its tenant's head locked by someone else, and key
 * and operator revocations call it before they lock anything. It runs as
 * tenancy_reaper, which cannot log in, owns nothing but these functions,
 * and holds pg_signal_backend and pg_read_all_stats (to see the other
 * sessions' transaction start). A lock held by a younger transaction is waited for,
 * up to lock_timeout, as before; the next attempt, once the holder is 30 s
 * old, goes through. DBA sessions (any other role) are never ended.
 *
 * A revocation does not wait for a holder to grow old: it ends whoever
 * holds its tenant's chain head and takes the head itself, again and again
 * if a fresh session of the attacker takes it in between
 * (core.seize_chain_head; pgrowlocks names the holders, shared locks
 * included). The sessions it ends are app_user's and
 * uber_admin's in this database only; a service request caught there gets a
 * 503 and is retried. tenancy_reaper bypasses row-level security to read the
 * heads' lock holders, and reads nothing else.
 *
 * A lock taken inside a savepoint is held under the subtransaction's id,
 * which no SQL function maps back to its session: app_user and uber_admin
 * now make no audited change in a subtransaction whose transaction has not
 * locked the head before (platform.bootstrap_operator no longer needs an
 * exception block for that).
 *
 * Prepared transactions are no session and cannot be ended: keep
 * max_prepared_transactions = 0 (PostgreSQL's default), as the README says.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

do $$
begin
  if not exists (select from pg_roles where rolname = 'tenancy_reaper') then
    create role tenancy_reaper;
  end if;
end
$$;
alter role tenancy_reaper nologin nosuperuser nocreatedb nocreaterole inherit noreplication bypassrls;
comment on role tenancy_reaper is
  'Owns the functions that end app_user and uber_admin sessions holding up audited writes or revocations (BYPASSRLS to read the chain heads'' lock holders); cannot log in';
grant pg_signal_backend, pg_read_all_stats to tenancy_reaper;

create extension if not exists pgrowlocks with schema extensions;
revoke execute on function extensions.pgrowlocks(text) from public;

set local role tenancy_owner;
create function core.end_stale_transactions() returns integer
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ended integer;
begin
  -- pg_stat_activity is read once per transaction unless told otherwise: a
  -- second call would judge other sessions by their state at the first.
  perform pg_stat_clear_snapshot();
  select count(*) filter (where pg_terminate_backend(a.pid)) into v_ended
  from pg_stat_activity a
  where a.usename in ('app_user', 'uber_admin') and a.pid <> pg_backend_pid() and a.datname = current_database()
    and a.xact_start < clock_timestamp() - interval '30 seconds';
  return v_ended;
end
$$;
comment on function core.end_stale_transactions() is
  'Ends the sessions of app_user and uber_admin in this database whose transaction began more than 30 s ago (no request lives that long); returns how many';

-- A revocation goes first: it ends whoever holds the tenant's chain head
-- (whatever their age) and takes the head itself, trying again at once if
-- another session took it in between, so a string of fresh holders cannot
-- keep it waiting.
create function core.end_chain_holders(p_tenant_id uuid) returns integer
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ended integer;
begin
  perform pg_stat_clear_snapshot();
  -- pgrowlocks names the backends that hold a row's lock, whether they took
  -- it in a subtransaction or share it with others (a multixact): a row's
  -- xmax alone names neither reliably.
  select count(*) filter (where pg_terminate_backend(a.pid)) into v_ended
  from core.audit_chain_heads h
  join extensions.pgrowlocks('core.audit_chain_heads') r on r.locked_row = h.ctid
  cross join lateral unnest(r.pids) as holder (pid)
  join pg_stat_activity a on a.pid = holder.pid
  where h.tenant_id = p_tenant_id and a.usename in ('app_user', 'uber_admin') and a.pid <> pg_backend_pid()
    and a.datname = current_database();
  return v_ended;
end
$$;
comment on function core.end_chain_holders(uuid) is
  'Ends the app_user or uber_admin sessions that hold this tenant''s audit chain head locked; returns how many';

create function core.seize_chain_head(p_tenant_id uuid) returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  for attempt in 1..100 loop
    perform from core.audit_chain_heads h where h.tenant_id = p_tenant_id for update skip locked;
    if found or not exists (select from core.audit_chain_heads h where h.tenant_id = p_tenant_id) then
      return;
    end if;
    perform core.end_chain_holders(p_tenant_id);
  end loop;
  -- Still taken after a hundred rounds: wait like any writer (lock_timeout).
  perform from core.audit_chain_heads h where h.tenant_id = p_tenant_id for update;
end
$$;
comment on function core.seize_chain_head(uuid) is
  'Locks the tenant''s audit chain head for this transaction, ending the app_user and uber_admin sessions that hold it';
reset role;
alter function core.end_stale_transactions() owner to tenancy_reaper;
alter function core.end_chain_holders(uuid) owner to tenancy_reaper;
alter function core.seize_chain_head(uuid) owner to tenancy_auditor;
grant usage on schema core to tenancy_reaper;
grant select on core.audit_chain_heads to tenancy_reaper;
grant usage on schema extensions to tenancy_reaper;
grant execute on function extensions.pgrowlocks(text) to tenancy_reaper;
grant execute on function core.end_stale_transactions() to tenancy_auditor, tenancy_auth, uber_admin;
grant execute on function core.end_chain_holders(uuid) to tenancy_auditor;
grant execute on function core.seize_chain_head(uuid) to tenancy_auth, uber_admin;

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

create or replace function platform.revoke_operator(p_operator_id uuid)
returns table (operator_id uuid, revoked_at timestamptz)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_caller uuid := core.current_operator_id();
begin
  if v_caller is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  -- Serialises revocations, so two operators cannot revoke each other as
  -- the last two: each locks every active operator's row first. (Row locks
  -- only tenancy_auth can take, where an advisory lock anyone can hold.)
  perform core.end_stale_transactions();
  perform from core.platform_operators o where o.revoked_at is null for update;
  -- The operators' rows first, then the chain head, in the order every
  -- writer of operators takes them.
  perform core.seize_chain_head('00000000-0000-0000-0000-000000000000');
  if exists (select from core.platform_operators o where o.operator_id = p_operator_id and o.revoked_at is null)
     and not exists (select from core.platform_operators o
                     where o.revoked_at is null and o.operator_id <> p_operator_id) then
    raise exception 'the last active operator cannot be revoked; create another first' using errcode = 'PT409';
  end if;
  return query
    update core.platform_operators o
    set revoked_at = coalesce(o.revoked_at, now()), revoked_by = coalesce(o.revoked_by, v_caller)
    where o.operator_id = p_operator_id
    returning o.operator_id, o.revoked_at;
end
$$;

create or replace function platform.bootstrap_operator(p_token_hash text)
returns boolean
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_operator_id uuid := gen_random_uuid();
begin
  -- Only READ COMMITTED sees every operator committed so far.
  if current_setting('transaction_isolation') <> 'read committed' then
    raise exception 'an operator is bootstrapped only in a READ COMMITTED transaction'
      using errcode = 'invalid_transaction_state';
  end if;
  if exists (select from core.platform_operators o where o.revoked_at is null) then
    return false;
  end if;
  -- A credential once revoked stays revoked, bootstrap or not.
  if exists (select from core.platform_operators o where o.token_hash = p_token_hash) then
    return false;
  end if;
  -- A concurrent bootstrap's operator, named "bootstrap" too, may come
  -- first: the unique index on active names waits for it, and this one is
  -- not inserted. (No exception block: an audited change is never made in a
  -- subtransaction, see core.chain_audit_row.)
  insert into core.platform_operators (operator_id, name, token_hash, token_prefix, created_by)
  values (v_operator_id, 'bootstrap', p_token_hash, '', v_operator_id)
  on conflict do nothing;
  return found;
end
$$;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

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

create or replace function core.revoke_keys(p_tenant_id uuid, p_key_ids uuid[])
returns table (key_id uuid)
language plpgsql
as $$
#variable_conflict use_column
begin
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

create or replace function platform.revoke_operator(p_operator_id uuid)
returns table (operator_id uuid, revoked_at timestamptz)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_caller uuid := core.current_operator_id();
begin
  if v_caller is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  -- Serialises revocations, so two operators cannot revoke each other as
  -- the last two: each locks every active operator's row first. (Row locks
  -- only tenancy_auth can take, where an advisory lock anyone can hold.)
  perform from core.platform_operators o where o.revoked_at is null for update;
  if exists (select from core.platform_operators o where o.operator_id = p_operator_id and o.revoked_at is null)
     and not exists (select from core.platform_operators o
                     where o.revoked_at is null and o.operator_id <> p_operator_id) then
    raise exception 'the last active operator cannot be revoked; create another first' using errcode = 'PT409';
  end if;
  return query
    update core.platform_operators o
    set revoked_at = coalesce(o.revoked_at, now()), revoked_by = coalesce(o.revoked_by, v_caller)
    where o.operator_id = p_operator_id
    returning o.operator_id, o.revoked_at;
end
$$;

create or replace function platform.bootstrap_operator(p_token_hash text)
returns boolean
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_operator_id uuid := gen_random_uuid();
begin
  -- Only READ COMMITTED sees every operator committed so far.
  if current_setting('transaction_isolation') <> 'read committed' then
    raise exception 'an operator is bootstrapped only in a READ COMMITTED transaction'
      using errcode = 'invalid_transaction_state';
  end if;
  if exists (select from core.platform_operators o where o.revoked_at is null) then
    return false;
  end if;
  -- A credential once revoked stays revoked, bootstrap or not.
  if exists (select from core.platform_operators o where o.token_hash = p_token_hash) then
    return false;
  end if;
  insert into core.platform_operators (operator_id, name, token_hash, token_prefix, created_by)
  values (v_operator_id, 'bootstrap', p_token_hash, '', v_operator_id);
  return true;
exception
  -- A concurrent bootstrap's operator, named "bootstrap" too, came first:
  -- the unique index on active names waits for it and then refuses this one.
  when unique_violation then
    return false;
end
$$;

drop function core.seize_chain_head(uuid);
drop function core.end_chain_holders(uuid);
drop function core.end_stale_transactions();
revoke select on core.audit_chain_heads from tenancy_reaper;
revoke usage on schema extensions from tenancy_reaper;
drop extension pgrowlocks;
revoke usage on schema core from tenancy_reaper;
-- Roles are shared by every database of the cluster; drop it only when
-- nothing else still refers to it.
do $$
begin
  drop role if exists tenancy_reaper;
exception when dependent_objects_still_exist then
  raise notice 'role tenancy_reaper is kept: another database of this cluster still uses it';
end
$$;
