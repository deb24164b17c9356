-- Rate limits (migration 20261201001600): api.lease_requests hands out a
-- tenant's requests-per-minute budget in slices that never add up to more
-- than the limit, shrink as it runs out, start again in the next minute,
-- stop when the limit is lowered, and are one tenant's only; nobody but the
-- lease writes the windows.
begin;
select plan(21);

grant execute on all functions in schema public to app_user, uber_admin;
do $$ begin execute format('grant temporary on database %I to app_user, uber_admin', current_database()); end $$;
set constraints core.advance_chain_head immediate;

update core.plans set requests_per_minute = 40 where tier = 'free';
update core.plans set requests_per_minute = 1000 where tier = 'pro';

set local role uber_admin;
select tenant_id as tenant_a from platform.create_tenant('Rate A', null, 'free') \gset
select tenant_id as tenant_b from platform.create_tenant('Rate B', null, 'pro') \gset
select key as key_a from platform.create_api_key(:'tenant_a', 'Root', '{*}') \gset
select key as key_b from platform.create_api_key(:'tenant_b', 'Root', '{*}') \gset
reset role;
\ir lib/context.psql

-- Leases in the current context until a lease grants nothing: the slices granted, in order.
create function pg_temp.lease_all() returns integer[]
language plpgsql volatile
as $$
declare
  v_slices integer[] := '{}';
  v_granted integer;
begin
  loop
    select l.granted into v_granted from api.lease_requests() l;
    exit when v_granted = 0 or cardinality(v_slices) > 1000;
    v_slices := v_slices || v_granted;
  end loop;
  return v_slices;
end
$$;
grant execute on function pg_temp.lease_all() to app_user;

-- Every tenant has its row ------------------------------------------------------------

select is((select count(*)::int from core.tenants t
           where not exists (select from core.request_windows w where w.tenant_id = t.tenant_id)),
  0, 'every tenant has its row of leased requests, the ones made before the migration too');
select results_eq(format($$ select window_start, leased from core.request_windows where tenant_id = %L $$, :'tenant_b'),
  $$ values ('-infinity'::timestamptz, 0) $$,
  'a new tenant''s row is made with it, nothing leased yet (so a lease never has to insert it)');

-- Without a context ------------------------------------------------------------------

set local role app_user;
select throws_ok($$ select * from api.lease_requests() $$, 'PT401', null,
  'a lease without a tenant''s context is refused');
select throws_ok($$ select * from core.request_windows $$, '42501', null,
  'app_user may not read the windows');
select throws_ok(format($$ update core.request_windows set leased = 0 where tenant_id = %L $$, :'tenant_a'), '42501', null,
  'nor give a tenant a fresh budget by writing them');
select throws_ok(format($$ insert into core.request_windows values (%L, now(), 0) $$, :'tenant_a'), '42501', null,
  'nor start a window of its own');
reset role;

-- The first lease ----------------------------------------------------------------------

set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'key_a')) \gset ignored_
select * from api.lease_requests() \gset first_
reset role;
select is(:'first_tenant_id'::uuid, :'tenant_a'::uuid, 'a lease names the key''s tenant');
select is(array[:first_granted, :first_request_limit, :first_remaining], array[2, 40, 38],
  'the first lease of a 40-a-minute plan grants a twentieth of it and says what is left');
select ok(:first_resets_in_ms between 1 and 60000, 'and when the minute ends, within the next minute');
select results_eq(format($$ select leased, window_start = date_bin('1 minute', window_start, timestamptz '2000-01-01 00:00:00+00')
                            from core.request_windows where tenant_id = %L $$, :'tenant_a'),
  $$ values (2, true) $$, 'the window records what was leased, in a minute aligned to the clock');

-- The whole budget --------------------------------------------------------------------

-- The window is moved a minute ahead, so that the clock's own minute
-- cannot end it half-way: a lease never takes a window back to an earlier
-- minute, and this one is still at its start.
update core.request_windows set window_start = date_bin('1 minute', now(), timestamptz '2000-01-01 00:00:00+00') + interval '1 minute',
  leased = 0
where tenant_id = :'tenant_a';
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'key_a')) \gset ignored_
select pg_temp.lease_all() as slices_a \gset
reset role;
select is((select sum(s)::int from unnest(:'slices_a'::int[]) s), 40,
  'the slices of one minute add up to exactly the limit, and then a lease grants nothing');
select is(:'slices_a'::int[], '{2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,1,1,1,1}'::int[],
  'each slice is a twentieth of the limit until a quarter of what is left is less, then that (at least one)');
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'key_a')) \gset ignored_
select results_eq($$ select granted, remaining from api.lease_requests() $$, $$ values (0, 0) $$,
  'a lease of a spent budget grants nothing and says nothing is left');
reset role;

-- A lease of at most so many --------------------------------------------------------------

update core.request_windows set window_start = window_start - interval '2 minutes' where tenant_id = :'tenant_a';
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'key_a')) \gset ignored_
select results_eq($$ select tenant_id, granted, remaining from api.lease_requests(0) $$,
  format($$ values (%L::uuid, 0, 40) $$, :'tenant_a'),
  'a lease of at most nothing only names the key''s tenant and what is left');
select results_eq($$ select granted, remaining from api.lease_requests(1) $$, $$ values (1, 39) $$,
  'a lease of at most one grants one, less than a slice');
reset role;

-- Another tenant is its own -------------------------------------------------------------

set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'key_b')) \gset ignored_
select results_eq($$ select tenant_id, granted, request_limit, remaining from api.lease_requests() $$,
  format($$ values (%L::uuid, 50, 1000, 950) $$, :'tenant_b'),
  'tenant B''s first lease is a slice of its own plan''s budget, however spent tenant A''s is');
reset role;

-- Shrinking slices, a new minute, a lowered limit -----------------------------------------

update core.request_windows set leased = 1000 - 60 where tenant_id = :'tenant_b';
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'key_b')) \gset ignored_
select pg_temp.lease_all() as slices_b \gset
reset role;
select is(:'slices_b'::int[], '{15,12,9,6,5,4,3,2,1,1,1,1}'::int[],
  'near the end each slice is at most a quarter of what is left (at least one), and they add up to the rest exactly');

update core.request_windows set window_start = window_start - interval '2 minutes' where tenant_id = :'tenant_a';
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'key_a')) \gset ignored_
select results_eq($$ select granted, remaining from api.lease_requests() $$, $$ values (2, 38) $$,
  'in a later minute the budget is whole again');
reset role;

update core.plans set requests_per_minute = 1 where tier = 'free';
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'key_a')) \gset ignored_
select results_eq($$ select granted, request_limit, remaining from api.lease_requests() $$, $$ values (0, 1, 0) $$,
  'a limit lowered below what the minute has leased leaves nothing to lease, at once');
reset role;

select results_eq(format($$ select tenant_id, leased from core.request_windows where tenant_id in (%L, %L) order by leased $$,
                         :'tenant_a', :'tenant_b'),
  format($$ values (%L::uuid, 2), (%L::uuid, 1000) $$, :'tenant_a', :'tenant_b'),
  'each tenant''s leases moved its own window only');

select is(
  array(select r.rolname::text from pg_roles r
        where not r.rolsuper and r.rolname !~ '^pg_'
          and (has_any_column_privilege(r.oid, 'core.request_windows', 'INSERT')
               or has_any_column_privilege(r.oid, 'core.request_windows', 'UPDATE')
               or has_table_privilege(r.oid, 'core.request_windows', 'DELETE')
               or has_table_privilege(r.oid, 'core.request_windows', 'TRUNCATE'))
        order by 1),
  array['tenancy_meter', 'tenancy_owner'],
  'of the project''s roles only tenancy_meter (the lease) and the table''s owner may write the windows');

select * from finish();
rollback;
