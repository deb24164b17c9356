-- Forgery, from the side of someone who holds the app_user password but no
-- key: every way to claim a tenant's context without api.begin_request. The
-- session settings the policies once read (app.tenant_id, app.api_key_id,
-- app.user_id, app.request_id) set by hand; a signed context replayed from
-- another transaction or backend, signed with another key, or altered in one
-- field. Each reads no row of any tenant table or view, writes nothing, and
-- puts no actor into the trail. The same tenant through api.begin_request
-- with a real key reads and writes as it should, so the refusals mean
-- something.
begin;
select plan(18);

grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;
do $$ begin execute format('grant temporary on database %I to app_user, uber_admin, tenancy_writer', current_database()); end $$;

-- Fixtures: a tenant with a row in every tenant table -----------------------------

set local role uber_admin;
select tenant_id as tenant_a from platform.create_tenant('Target', null, 'pro', 'Fintech Template') \gset
reset role;
insert into core.users (tenant_id, email, role) values (:'tenant_a', 'owner@target.example', 'tenant_admin')
returning user_id as user_a \gset
insert into core.documents (tenant_id, user_id, title, content_hash)
values (:'tenant_a', :'user_a', 'Ledger', repeat('a', 64)) returning document_id as doc_a \gset
set local role uber_admin;
select key_id as key_a, key as secret_a from platform.create_api_key(:'tenant_a', 'Owner', '{*}', :'user_a') \gset
reset role;
insert into core.idempotency_keys (tenant_id, api_key_id, idempotency_key, request_hash, response_status)
values (:'tenant_a', :'key_a', 'retry-1', repeat('a', 64), 201);
insert into core.approval_requests (tenant_id, operation, payload, requested_by_key_id)
values (:'tenant_a', 'delete_user', jsonb_build_object('user_id', :'user_a'), :'key_a');

\ir lib/context.psql
\ir lib/readable_tenant_relations.psql
\ir lib/blind_writes.psql
\ir lib/fingerprint.psql
select pg_temp.hash_of(:'secret_a') as hash_a \gset

-- Rows of every table or view with a tenant_id column the caller may read.
create function pg_temp.visible_rows() returns table (rel text, row_count bigint)
language plpgsql stable
as $$
declare
  v_rel text;
begin
  for v_rel in select * from pg_temp.readable_tenant_relations() loop
    return query execute format('select %L::text, count(*) from %s', v_rel, v_rel);
  end loop;
end
$$;
grant execute on function pg_temp.visible_rows() to app_user;

create temp table before_forgery as select * from pg_temp.fingerprint();

-- One genuine context, signed as the service would, to take apart below.
set local role app_user;
select pg_temp.begin_as(:'hash_a', 'genuine') \gset ignored_
select current_setting('app.context') as genuine \gset
reset role;
set local app.context = '';
-- Everything but the signature: 64 hex digits and their separator.
select left(:'genuine', -65) as payload \gset
select secret from core.context_signing_key \gset
-- What api.begin_request would have signed in a transaction that began a
-- second earlier on this backend, and in this transaction on another backend.
select :'payload' || '|' || encode(extensions.hmac(convert_to(:'payload', 'UTF8') || int4send(pg_backend_pid())
         || timestamptz_send(now() - interval '1 second'), :'secret'::bytea, 'sha256'), 'hex') as replayed,
       :'payload' || '|' || encode(extensions.hmac(convert_to(:'payload', 'UTF8') || int4send(pg_backend_pid() + 1)
         || timestamptz_send(now()), :'secret'::bytea, 'sha256'), 'hex') as other_backend,
       :'payload' || '|' || encode(extensions.hmac(convert_to(:'payload', 'UTF8') || int4send(pg_backend_pid())
         || timestamptz_send(now()), extensions.gen_random_bytes(32), 'sha256'), 'hex') as other_key,
       replace(:'genuine', '|tenant_admin|', '|viewer|') as altered_role,
       replace(:'genuine', :'user_a', '00000000-0000-0000-0000-000000000001') as altered_user,
       upper(:'genuine') as upper_cased,
       left(:'genuine', -1) as truncated \gset

-- Each forgery, as app_user --------------------------------------------------------------

create temp table forgeries (label text primary key, setup text not null);
insert into forgeries values
  ('app.tenant_id of a real tenant, set by hand',
   format('select set_config(%L, %L, true)', 'app.tenant_id', :'tenant_a')),
  ('app.tenant_id, app.api_key_id and app.user_id of a real key, set by hand',
   format('select set_config(%L, %L, true), set_config(%L, %L, true), set_config(%L, %L, true), set_config(%L, %L, true)',
     'app.tenant_id', :'tenant_a', 'app.api_key_id', :'key_a', 'app.user_id', :'user_a', 'app.request_id', 'forged')),
  ('a signed context replayed from an earlier transaction',
   format('select set_config(%L, %L, true)', 'app.context', :'replayed')),
  ('a signed context replayed from another backend',
   format('select set_config(%L, %L, true)', 'app.context', :'other_backend')),
  ('a context signed with another key', format('select set_config(%L, %L, true)', 'app.context', :'other_key')),
  ('a signed context with its role changed', format('select set_config(%L, %L, true)', 'app.context', :'altered_role')),
  ('a signed context with its user changed', format('select set_config(%L, %L, true)', 'app.context', :'altered_user')),
  ('a signed context in upper case', format('select set_config(%L, %L, true)', 'app.context', :'upper_cased')),
  ('a signed context cut short by one character', format('select set_config(%L, %L, true)', 'app.context', :'truncated'));
grant select on forgeries to app_user;

-- Whether a statement succeeds and returns a row; it is rolled back either way.
create function pg_temp.lands(p_statement text) returns boolean
language plpgsql volatile
as $$
declare
  v_landed boolean;
begin
  begin
    execute 'select exists (' || p_statement || ')' into v_landed;
    raise exception 'undo' using errcode = 'PT999';
  exception
    when sqlstate 'PT999' then null;
    when others then v_landed := false;
  end;
  return v_landed;
end
$$;
grant execute on function pg_temp.lands(text) to app_user;

-- For each forgery: what app_user then sees and what its writes reach.
create function pg_temp.attempt(p_setup text) returns table (what text)
language plpgsql volatile
as $$
begin
  perform set_config('app.context', '', true);
  execute p_setup;
  return query select format('%s shows %s rows', v.rel, v.row_count) from pg_temp.visible_rows() v where v.row_count > 0;
  return query select format('%s %s touched %s', b.rel, b.command, b.outcome) from pg_temp.blind_writes() b
    where b.outcome <> '0 rows';
  return query select format('%s landed', w.call)
    from unnest(array[
      $w$select * from api.create_user('mallory@target.example')$w$,
      format($w$select * from api.create_document(%L, 'Planted', repeat('f', 64))$w$,
        (select user_id from core.users limit 1)),
      $w$select * from api.create_api_key('Planted', '{*}')$w$,
      $w$select * from api.claim_idempotency_key('retry-2', repeat('f', 64))$w$,
      $w$select * from api.update_tenant_config('{"currency": "USD"}')$w$,
      $w$select * from api.update_user((select user_id from core.users limit 1), p_role => 'viewer')$w$
    ]) as w(call)
    where pg_temp.lands(w.call);
end
$$;
grant execute on function pg_temp.attempt(text) to app_user;

set local role app_user;
select is(array(select what from pg_temp.attempt(f.setup)), '{}'::text[],
  format('with %s, app_user reads no tenant row and no write of it lands', f.label))
from forgeries f order by f.label;
reset role;
set local app.context = '';

select set_eq('select * from pg_temp.fingerprint()', 'select * from before_forgery',
  'after every forgery every table is exactly as before: nothing written, nothing audited');
select is_empty(
  format($$ select 1 from core.audit_logs where api_key_id = %L or user_id = %L or request_id = 'forged'
            or client_request_id = 'genuine' $$, :'key_a', :'user_a'),
  'the trail holds no entry with the forged actor, key or request');

-- The same tenant through api.begin_request with its key ----------------------------

set local role app_user;
select pg_temp.begin_as(:'hash_a', 'real') \gset ignored_
select is(
  array(select rel from pg_temp.visible_rows() where row_count = 0 and rel <> 'core.request_context' order by 1),
  '{}'::text[],
  'with the real key, app_user reads the tenant''s rows in every tenant table and view');
select is(
  array(select format('%s %s', rel, command) from pg_temp.blind_writes()
        where not pg_temp.reached(outcome) order by 1),
  '{}'::text[],
  'with the real key, a blind UPDATE and DELETE of every table app_user may write reaches the tenant''s rows');
select isnt_empty($$ select * from api.create_user('colleague@target.example') $$,
  'with the real key, api.create_user adds a user');
select isnt_empty(format($$ select * from api.create_document(%L, 'Real', repeat('b', 64)) $$, :'user_a'),
  'with the real key, api.create_document stores a document');
select isnt_empty($$ select * from api.create_api_key('Real', '{documents:read}') $$,
  'with the real key, api.create_api_key issues a key');
reset role;
select results_eq(
  $$ select count(*)::int, count(*) filter (where client_request_id = 'real')::int from core.audit_logs
     where "timestamp" = now() and resource_type in ('users', 'documents', 'tenant_api_keys') and action = 'insert'
       and api_key_id is not null $$,
  'values (3, 3)',
  'and each of those writes is audited with the real key and request');
select results_eq(
  format($$ select distinct user_id, api_key_id from core.audit_logs where client_request_id = 'real' $$),
  format($$ values (%L::uuid, %L::uuid) $$, :'user_a', :'key_a'),
  'with the actor of the real key');

select * from finish();
rollback;
