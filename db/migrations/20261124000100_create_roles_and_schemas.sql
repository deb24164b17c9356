-- migrate:up
/*
 * Why: every later migration relies on the same two login roles, the split
 * between private tables (core) and what the HTTP layer may call (api,
 * platform), and one way of reading the per-transaction tenant context.
 *
 * Roles are cluster-wide, so they are created only when missing and without
 * passwords: a DBA's `dbmate up` on a new server needs nothing else, and the
 * scripts set generated passwords for the local cluster. Creating a BYPASSRLS
 * role needs a superuser in PostgreSQL 15, so migrations run as one.
 */
-- Fail fast instead of queueing behind long transactions on a live server.
set local lock_timeout = '5s';
set local statement_timeout = '60s';
do $$
begin
  if not exists (select from pg_roles where rolname = 'app_user') then
    create role app_user login nosuperuser nocreatedb nocreaterole noinherit nobypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'uber_admin') then
    create role uber_admin login nosuperuser nocreatedb nocreaterole noinherit bypassrls;
  end if;
end
$$;

comment on role app_user is 'Runtime role of the HTTP layer: owns nothing, subject to row-level security';
comment on role uber_admin is 'Platform operator role: bypasses row-level security, used only by admin routes';

-- Functions are not executable by PUBLIC unless a migration grants them by
-- name. (PostgreSQL 15 already denies CREATE on schema public to PUBLIC.)
alter default privileges revoke execute on functions from public;

create schema extensions;
comment on schema extensions is 'Extensions, kept out of the schemas the roles can list';
create extension pgcrypto with schema extensions;

create schema core;
comment on schema core is 'Private tables; reached by app_user only through api views and functions, under row-level security';

create schema api;
comment on schema api is 'Tenant-facing views and functions called by the HTTP layer as app_user';

create schema platform;
comment on schema platform is 'Cross-tenant functions for platform operators, executable by uber_admin only';

grant usage on schema core, api to app_user;
grant usage on schema core, api, platform to uber_admin;
grant usage on schema extensions to app_user, uber_admin;

-- The one way to read the session context. Transaction-local settings read
-- as '' (not NULL) once their transaction ends, so both mean "not set".
create function core.current_tenant_id() returns uuid
language sql stable parallel safe
as $$ select nullif(current_setting('app.tenant_id', true), '')::uuid $$;
comment on function core.current_tenant_id() is
  'Tenant of the current transaction from app.tenant_id; NULL when unset or empty, so policies fail closed';

create function core.current_user_id() returns uuid
language sql stable parallel safe
as $$ select nullif(current_setting('app.user_id', true), '')::uuid $$;
comment on function core.current_user_id() is 'Acting user from app.user_id, for the audit trail; NULL when unset';

create function core.current_api_key_id() returns uuid
language sql stable parallel safe
as $$ select nullif(current_setting('app.api_key_id', true), '')::uuid $$;
comment on function core.current_api_key_id() is 'API key of the current request from app.api_key_id, for the audit trail';

create function core.current_request_id() returns text
language sql stable parallel safe
as $$ select nullif(current_setting('app.request_id', true), '') $$;
comment on function core.current_request_id() is 'Request id of the current HTTP request from app.request_id, for the audit trail';

grant execute on function core.current_tenant_id(), core.current_user_id(),
  core.current_api_key_id(), core.current_request_id() to app_user, uber_admin;

create function core.set_updated_at() returns trigger
language plpgsql volatile
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
comment on function core.set_updated_at() is 'Trigger: keeps updated_at equal to the time of the last change';

-- /ready compares this with the migration the service was built for; app_user
-- cannot read dbmate's table itself.
create function api.schema_version() returns text
language sql stable security definer
set search_path = ''
as $$ select max(version) from public.schema_migrations $$;
comment on function api.schema_version() is 'Newest applied dbmate migration, for readiness checks';
grant execute on function api.schema_version() to app_user, uber_admin;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
drop function api.schema_version();
drop function core.set_updated_at();
drop function core.current_request_id();
drop function core.current_api_key_id();
drop function core.current_user_id();
drop function core.current_tenant_id();
drop schema platform;
drop schema api;
drop schema core;
drop extension pgcrypto;
drop schema extensions;
alter default privileges grant execute on functions to public;
-- Roles are shared by every database of the cluster (the test database
-- among them); drop them only when nothing else still refers to them.
do $$
begin
  drop role if exists app_user;
  drop role if exists uber_admin;
exception when dependent_objects_still_exist then
  raise notice 'roles app_user and uber_admin are kept: another database of this cluster still uses them';
end
$$;
