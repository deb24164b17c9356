-- A signed context verifies for 30 seconds from the start of the transaction
-- that signed it, and not after. PostgreSQL gives every transaction of one
-- multi-statement simple-query message the same start time, so without this
-- bound a context copied to the session would verify again in the later
-- transactions of such a message, after its key was revoked. (It also
-- verifies for 30 seconds from its signing alone, which on Citus bounds a
-- context set again on a worker: pgtap/citus.) Here the context is signed
-- 20 seconds into its transaction and checked 31 seconds into it, where
-- only the transaction's bound refuses it; this suite waits 31 seconds.
begin;
select plan(4);

grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;

set local role uber_admin;
select tenant_id as tenant_a from platform.create_tenant('Short-lived context') \gset
select key as secret_a from platform.create_api_key(:'tenant_a', 'Key', '{*}') \gset
reset role;

\ir lib/context.psql

select pg_sleep(20);
set local role app_user;
select pg_temp.begin_as(pg_temp.hash_of(:'secret_a')) \gset ignored_
select is((select tenant_id from core.request_context), :'tenant_a'::uuid,
  'right after api.begin_request the context verifies');
select is((select count(*)::int from api.current_tenant()), 1, '...and the tenant reads its own row');
select pg_sleep(11);
select is((select count(*)::int from core.request_context), 0,
  '31 seconds after its transaction began, the context signed 20 seconds into it no longer verifies');
select is((select count(*)::int from api.current_tenant()), 0, '...and the tenant reads nothing with it');
reset role;

select * from finish();
rollback;
