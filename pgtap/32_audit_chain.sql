-- The audit chain, from an auditor's side: every tenant's trail numbered
-- 1, 2, 3, ... and hashed as migration 20261201000900 documents; then, from
-- a superuser's side, each way of rewriting the trail (change, delete, insert,
-- reorder, rewrite everything after a row consistently) and what
-- verification says about it. Each tampering is undone by a savepoint.
begin;
select plan(33);

-- The chain's head moves when a transaction commits (a deferred trigger);
-- this suite never commits, so it moves at the end of each statement.
set constraints core.advance_chain_head immediate;

grant execute on all functions in schema public to app_user, uber_admin;

-- Fixtures: one tenant, its row and five users, written as a DBA would (no
-- context), so eight audit rows with the configuration.
select gen_random_uuid() as tenant_id \gset
insert into core.tenant_domains (domain, tenant_id) values ('chained.example', :'tenant_id');
insert into core.tenants (tenant_id, name, domain) values (:'tenant_id', 'Chained', 'chained.example');
insert into core.users (tenant_id, email, role)
select :'tenant_id', format('user%s@chained.example', n), 'member' from generate_series(1, 5) as n;
update core.users set role = 'viewer' where tenant_id = :'tenant_id' and email = 'user1@chained.example';
select count(*) as n from core.audit_logs where tenant_id = :'tenant_id' \gset

-- The chain as written ------------------------------------------------------------------

select results_eq(
  format('select seq from core.audit_logs where tenant_id = %L order by seq', :'tenant_id'),
  format('select generate_series(1::bigint, %s)', :n),
  'the tenant''s rows are numbered 1 to n, without gaps');
select is(
  (select prev_hash from core.audit_logs where tenant_id = :'tenant_id' and seq = 1),
  decode(repeat('00', 32), 'hex'),
  'the first row follows 32 zero bytes');
select is(
  (select count(*)::int from core.audit_logs a join core.audit_logs p on p.tenant_id = a.tenant_id and p.seq = a.seq - 1
   where a.tenant_id = :'tenant_id' and a.prev_hash <> p.chain_hash),
  0,
  'every other row follows its predecessor''s chain_hash');
-- The encoding spelled out by hand, as a verifier elsewhere would build it.
select is(
  (select a.chain_hash from core.audit_logs a where a.tenant_id = :'tenant_id' and a.seq = 2),
  (select sha256(a.prev_hash || convert_to(E'tenancy-audit-v1\n'
            || '36:' || a.tenant_id || ',' || '1:2,' || '36:' || a.log_id || ','
            || '~' || '~' || '~'
            || octet_length(a.action) || ':' || a.action || ','
            || octet_length(a.resource_type) || ':' || a.resource_type || ','
            || '36:' || a.resource_id || ','
            || '64:' || encode(sha256(a.details_salt || convert_to(a.details::text, 'UTF8')), 'hex') || ','
            || '~' || '~'
            || '27:' || to_char(a."timestamp" at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || ','
            || '27:' || to_char(a.recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || ',',
          'UTF8'))
   from core.audit_logs a where a.tenant_id = :'tenant_id' and a.seq = 2),
  'chain_hash is SHA-256 of prev_hash and the netstring record the migration documents (NULL as ~, details salted)');
select is((select count(distinct details_salt)::int from core.audit_logs where tenant_id = :'tenant_id'), :'n'::int,
  'every row has a salt of its own');
select isnt(core.audit_time('2026-12-01 10:00:00+00'), core.audit_time('2026-12-01 10:00:00+00 BC'::timestamptz),
  'a time BC does not encode as the same time AD');
select results_eq(
  format('select verified, head_seq, reason from core.verify_audit_chain(%L)', :'tenant_id'),
  format('values (true, %s::bigint, null::text)', :n),
  'the untouched chain verifies, up to its head');
select is(
  (select head_hash from core.verify_audit_chain(:'tenant_id')),
  (select encode(chain_hash, 'hex') from core.audit_logs where tenant_id = :'tenant_id' and seq = :n),
  'the head returned is the last row''s chain_hash');
-- The heads are exempt from auditing (pgtap/30_audit.sql) because nothing
-- but chaining moves them: every tenant's head is its last row.
select is(
  array(select h.tenant_id::text from core.audit_chain_heads h
        where not exists (select from core.audit_logs a
                          where a.tenant_id = h.tenant_id and a.seq = h.seq and a.chain_hash = h.hash)
           or exists (select from core.audit_logs a where a.tenant_id = h.tenant_id and a.seq > h.seq)
        order by 1),
  '{}'::text[],
  'every tenant''s head is its last row''s seq and chain_hash');
select is(
  (select count(*)::int from (select distinct tenant_id from core.audit_logs) t
   where not exists (select from core.audit_chain_heads h where h.tenant_id = t.tenant_id)),
  0,
  'every tenant with a trail has a head');
select head_hash as anchor_hash from core.verify_audit_chain(:'tenant_id') \gset

-- Whatever a writer supplies, the chain decides position and hash.
insert into core.audit_logs (tenant_id, action, resource_type, resource_id, seq, chain_hash, prev_hash, recorded_at)
values (:'tenant_id', 'note', 'tenants', :'tenant_id', 1, '\x00', '\x00', '2000-01-01');
select results_eq(
  format($$ select seq, recorded_at > now() - interval '1 hour', octet_length(chain_hash) from core.audit_logs
            where tenant_id = %L and action = 'note' $$, :'tenant_id'),
  format('values (%s::bigint + 1, true, 32)', :n),
  'a row inserted with a seq, hashes and time of its own gets the next seq, the clock and its real hash');
select is((select verified from core.verify_audit_chain(:'tenant_id')), true, '...and the chain still verifies');
select :n + 1 as n \gset

-- Reading in parts -------------------------------------------------------------------------

select results_eq(
  format('select verified, complete, to_seq from core.verify_audit_chain(%L, 1, 3)', :'tenant_id'),
  $$ values (true, false, 3::bigint) $$,
  'a call verifies at most the rows it is given, and says the chain goes on');
select results_eq(
  format('select verified, complete, head_seq from core.verify_audit_chain(%L, 4)', :'tenant_id'),
  format('values (true, true, %s::bigint)', :n),
  'the next call goes on from there, trusting only the row before it');
select throws_ok(
  format($$ select * from core.verify_audit_chain(%L, 1, 100, 3, '\x00') $$, :'tenant_id'), 'PT422', null,
  'an anchor hash that is not 32 bytes is refused');
select throws_ok(
  format($$ select * from core.verify_audit_chain(%L, 5, 100, 3, sha256('')) $$, :'tenant_id'), 'PT422', null,
  'an anchor before the first row verified is refused');
select throws_ok(
  format($$ select * from core.verify_audit_chain(%L, %s + 2) $$, :'tenant_id', :n), 'PT422', null,
  'a first seq beyond the head is refused, not reported as a row missing from a healthy chain');

-- A superuser's rewrites ----------------------------------------------------------------------

-- A forged row, hashed right, with the chain triggers off: as the trigger
-- would have written it, but without moving the head.
create function pg_temp.forge_row(p_tenant_id uuid, p_seq bigint, p_prev bytea) returns void
language plpgsql
as $$
declare
  v_row core.audit_logs;
begin
  select * into v_row from core.audit_logs where tenant_id = p_tenant_id order by seq limit 1;
  v_row.log_id := gen_random_uuid();
  v_row.action := 'forged';
  v_row.seq := p_seq;
  v_row.prev_hash := p_prev;
  v_row.chain_hash := sha256(p_prev || core.audit_record(v_row));
  insert into core.audit_logs select v_row.*;
end
$$;
alter table core.audit_logs disable trigger reject_update_delete;

savepoint tamper;
update core.audit_logs set details = details || '{"forged": true}' where tenant_id = :'tenant_id' and seq = 3;
select results_eq(format('select verified, broken_at_seq, reason from core.verify_audit_chain(%L)', :'tenant_id'),
  $$ values (false, 3::bigint, 'row changed') $$, 'changed details: row changed, at that row');
rollback to savepoint tamper;

update core.audit_logs set action = 'delete' where tenant_id = :'tenant_id' and seq = 4;
select results_eq(format('select verified, broken_at_seq, reason from core.verify_audit_chain(%L)', :'tenant_id'),
  $$ values (false, 4::bigint, 'row changed') $$, 'a changed column: row changed');
rollback to savepoint tamper;

delete from core.audit_logs where tenant_id = :'tenant_id' and seq = 3;
select results_eq(format('select verified, broken_at_seq, reason from core.verify_audit_chain(%L)', :'tenant_id'),
  $$ values (false, 3::bigint, 'row missing') $$, 'a deleted row: row missing, at its seq');
rollback to savepoint tamper;

delete from core.audit_logs where tenant_id = :'tenant_id' and seq = :n;
select results_eq(format('select verified, broken_at_seq, reason from core.verify_audit_chain(%L)', :'tenant_id'),
  format($$ values (false, %s::bigint, 'row missing') $$, :n), 'the last row deleted: the head says it is missing');
rollback to savepoint tamper;

-- Deleted, and the rest renumbered and re-linked so that every row is whole.
delete from core.audit_logs where tenant_id = :'tenant_id' and seq = 3;
update core.audit_logs set seq = seq - 1 where tenant_id = :'tenant_id' and seq > 3;
select results_eq(format('select verified, broken_at_seq, reason from core.verify_audit_chain(%L)', :'tenant_id'),
  $$ values (false, 3::bigint, 'row missing') $$,
  'rows renumbered over a deleted one hash right only one place later, after a row that is gone: row missing');
rollback to savepoint tamper;

alter table core.audit_logs disable trigger chain_audit_row;
alter table core.audit_logs disable trigger advance_chain_head;
select pg_temp.forge_row(:'tenant_id', :n + 1,
  (select chain_hash from core.audit_logs where tenant_id = :'tenant_id' and seq = :n));
select results_eq(format('select verified, broken_at_seq, reason from core.verify_audit_chain(%L)', :'tenant_id'),
  format($$ values (false, %s::bigint + 1, 'row inserted') $$, :n), 'a row added behind the head''s back: row inserted');
rollback to savepoint tamper;

alter table core.audit_logs disable trigger chain_audit_row;
select pg_temp.forge_row(:'tenant_id', 3, (select chain_hash from core.audit_logs where tenant_id = :'tenant_id' and seq = 2));
select results_eq(format('select verified, broken_at_seq, reason from core.verify_audit_chain(%L)', :'tenant_id'),
  $$ values (false, 3::bigint, 'row inserted') $$, 'a second row at a taken seq, hashed right: row inserted');
rollback to savepoint tamper;

-- Two rows swapped: each keeps its hash, the positions change.
update core.audit_logs set seq = -seq where tenant_id = :'tenant_id' and seq in (3, 4);
update core.audit_logs set seq = case seq when -3 then 4 else 3 end where tenant_id = :'tenant_id' and seq in (-3, -4);
select results_eq(format('select verified, broken_at_seq, reason from core.verify_audit_chain(%L)', :'tenant_id'),
  $$ values (false, 3::bigint, 'order changed') $$, 'two rows swapped: order changed');
rollback to savepoint tamper;

-- The thorough forger: changes row 3, then recomputes every hash after it
-- and the head, exactly as the trigger would have.
update core.audit_logs set details = details || '{"forged": true}' where tenant_id = :'tenant_id' and seq = 3;
do $$
declare
  v_row core.audit_logs;
  v_prev bytea;
  v_tenant uuid := (select tenant_id from core.tenants where domain = 'chained.example');
begin
  select chain_hash into v_prev from core.audit_logs where tenant_id = v_tenant and seq = 2;
  for v_row in select * from core.audit_logs where tenant_id = v_tenant and seq >= 3 order by seq loop
    v_row.details_sha256 := sha256(v_row.details_salt || convert_to(v_row.details::text, 'UTF8'));
    v_row.prev_hash := v_prev;
    v_row.chain_hash := sha256(v_prev || core.audit_record(v_row));
    update core.audit_logs set details_sha256 = v_row.details_sha256, prev_hash = v_row.prev_hash,
      chain_hash = v_row.chain_hash where tenant_id = v_tenant and seq = v_row.seq;
    v_prev := v_row.chain_hash;
  end loop;
  update core.audit_chain_heads set hash = v_prev where tenant_id = v_tenant;
end
$$;
select is((select verified from core.verify_audit_chain(:'tenant_id')), true,
  'a consistent rewrite of everything after a row verifies on its own: this is what anchors are for');
select results_eq(
  format($$ select verified, broken_at_seq, reason from core.verify_audit_chain(%L, 1, 100000, %s, decode(%L, 'hex')) $$,
         :'tenant_id', :n - 1, :'anchor_hash'),
  format($$ values (false, %s::bigint - 1, 'anchor mismatch') $$, :n),
  'against the head stored before, it shows: anchor mismatch');
rollback to savepoint tamper;

delete from core.audit_logs where tenant_id = :'tenant_id';
delete from core.audit_chain_heads where tenant_id = :'tenant_id';
select results_eq(
  format($$ select verified, broken_at_seq, reason from core.verify_audit_chain(%L, 1, 100000, %s, decode(%L, 'hex')) $$,
         :'tenant_id', :n - 1, :'anchor_hash'),
  $$ values (false, 1::bigint, 'row missing') $$,
  'the whole trail and its head removed: against the anchor, row missing from 1');
rollback to savepoint tamper;

select results_eq(
  format($$ select verified from core.verify_audit_chain(%L, 1, 100000, %s, decode(%L, 'hex')) $$,
         :'tenant_id', :n - 1, :'anchor_hash'),
  $$ values (true) $$,
  'with every rewrite undone, the chain verifies against the anchor (the control)');
alter table core.audit_logs enable always trigger reject_update_delete;

-- From the tenant's side ----------------------------------------------------------------------

set local role uber_admin;
select is((select count(*)::int from platform.export_audit_logs(:'tenant_id')), :'n'::int,
  'an operator exports the tenant''s whole chain');
reset role;
select is((select count(*)::int from platform.export_audit_logs(:'tenant_id')
           where details_sha256 = encode(sha256(decode(details_salt, 'hex') || convert_to(details_text, 'UTF8')), 'hex')),
  :'n'::int,
  'each exported row carries the details'' text its hash covers');
set local role app_user;
select throws_ok('select 1 from core.audit_chain_heads', '42501', null,
  'app_user reads no chain head directly');
select is((select count(*)::int from api.export_audit_logs()), 0,
  'without a context api.export_audit_logs reads nothing');
reset role;

select * from finish();
rollback;
