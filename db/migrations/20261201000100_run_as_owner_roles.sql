-- migrate:up
/*
 * Why: every object belonged to the superuser that ran the migrations, so the
 * SECURITY DEFINER functions ran as a superuser. Their search_path was '',
 * and with pg_temp left out of the path PostgreSQL searches the session's
 * temporary schema first for types and relations. app_user could create
 * temporary objects (PUBLIC has TEMP on every new database), so a
 * pg_temp.jsonb domain whose CHECK called its own function ran that function
 * as the superuser as soon as the audit trigger fired. Closed here for the
 * whole class:
 *
 *   - tenancy_owner (NOLOGIN, no superuser, no BYPASSRLS) owns every schema,
 *     table, view and function of the project. Row-level security is forced
 *     on every tenant table, so even the owner is bound by the policies.
 *     Later migrations run their DDL as this role (`set local role
 *     tenancy_owner` ... `reset role`).
 *   - SECURITY DEFINER functions are owned by roles that hold exactly what
 *     those functions need and own no table: tenancy_auth (BYPASSRLS, to find
 *     a key by its hash before the tenant is known; column grants on keys,
 *     tenants and users) and tenancy_auditor (BYPASSRLS and INSERT on the
 *     audit trail, nothing else). No LOGIN role owns anything.
 *   - Every definer function pins search_path = pg_catalog, pg_temp: with
 *     pg_temp named last it is searched last, for types and relations too.
 *   - Nobody but superusers may create temporary objects in this database.
 *   - Every trigger on a project table fires ALWAYS, also in replica mode.
 *
 * api.schema_version() no longer needs to be a definer: the runtime roles may
 * read dbmate's version list, which holds nothing secret.
 *
 * Creating roles and giving objects away needs a superuser, so this file runs
 * as one; pgtap/10_rls_invariants.sql checks the result from the catalog.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

do $$
begin
  if not exists (select from pg_roles where rolname = 'tenancy_owner') then
    create role tenancy_owner;
  end if;
  if not exists (select from pg_roles where rolname = 'tenancy_auth') then
    create role tenancy_auth;
  end if;
  if not exists (select from pg_roles where rolname = 'tenancy_auditor') then
    create role tenancy_auditor;
  end if;
end
$$;
-- Whatever a role of that name was before, it is exactly this now.
alter role tenancy_owner nologin nosuperuser nocreatedb nocreaterole noinherit noreplication nobypassrls;
alter role tenancy_auth nologin nosuperuser nocreatedb nocreaterole noinherit noreplication bypassrls;
alter role tenancy_auditor nologin nosuperuser nocreatedb nocreaterole noinherit noreplication bypassrls;
comment on role tenancy_owner is 'Owns every schema, table, view and function of the project; cannot log in; bound by row-level security';
comment on role tenancy_auth is 'Owns the SECURITY DEFINER functions that authenticate API keys and sign the request context; cannot log in';
comment on role tenancy_auditor is 'Owns the SECURITY DEFINER audit trigger; may only append to the audit trail; cannot log in';

-- Functions tenancy_owner creates are not executable by PUBLIC either.
alter default privileges for role tenancy_owner revoke execute on functions from public;

-- Everything in the project's schemas (extension members aside: pgcrypto's
-- functions stay with the extension's owner) now belongs to tenancy_owner.
do $$
declare
  v_object record;
begin
  for v_object in
    select nspname from pg_namespace where nspname in ('core', 'api', 'platform', 'extensions')
  loop
    execute format('alter schema %I owner to tenancy_owner', v_object.nspname);
  end loop;
  for v_object in
    select c.oid::regclass as name,
           case c.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence'
             else 'table' end as kind
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('core', 'api', 'platform', 'extensions') and c.relkind in ('r', 'p', 'v', 'm', 'S')
      and not exists (select from pg_depend d
                      where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('e', 'a', 'i'))
  loop
    execute format('alter %s %s owner to tenancy_owner', v_object.kind, v_object.name);
  end loop;
  for v_object in
    select p.oid::regprocedure as name, case p.prokind when 'p' then 'procedure' else 'function' end as kind
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('core', 'api', 'platform', 'extensions')
      and not exists (select from pg_depend d
                      where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
  loop
    execute format('alter %s %s owner to tenancy_owner', v_object.kind, v_object.name);
  end loop;
end
$$;

-- Temporary objects are what the hijack was made of; the runtime roles have
-- no use for them.
do $$
begin
  execute format('revoke temporary on database %I from public, app_user, uber_admin', current_database());
end
$$;

-- api.schema_version() reads the list as its caller.
grant select on public.schema_migrations to app_user, uber_admin;
alter function api.schema_version() security invoker;
alter function api.schema_version() reset search_path;

-- The definer roles: usage of the schemas their functions touch, and the
-- privileges those functions use, column by column where it matters.
grant usage on schema core, api, extensions to tenancy_auth, tenancy_auditor;

grant select (tenant_id, key_id, key_hash, user_id, permissions, expires_at, revoked_at, last_used_at),
  update (last_used_at) on core.tenant_api_keys to tenancy_auth;
grant select (tenant_id, deactivated_at) on core.tenants to tenancy_auth;
-- api.create_api_key issues through core.issue_api_key, which inserts the
-- hash and returns the new row.
grant insert (tenant_id, key_hash, key_prefix, name, permissions, user_id, expires_at),
  select (key_prefix, name, created_at, updated_at) on core.tenant_api_keys to tenancy_auth;
grant execute on function core.issue_api_key(uuid, text, text[], uuid, timestamptz),
  extensions.gen_random_bytes(integer), core.current_tenant_id() to tenancy_auth;

grant insert (tenant_id, user_id, api_key_id, action, resource_type, resource_id, details, request_id)
  on core.audit_logs to tenancy_auditor;
grant execute on function core.current_user_id(), core.current_api_key_id(), core.current_request_id()
  to tenancy_auditor;

alter function api.begin_request(text, text, text) owner to tenancy_auth;
alter function api.touch_api_key(text) owner to tenancy_auth;
alter function api.create_api_key(text, text, text[], uuid, timestamptz) owner to tenancy_auth;
alter function core.record_audit() owner to tenancy_auditor;
-- The tables' owner attaches the audit trigger to the tables it creates.
grant execute on function core.record_audit() to tenancy_owner;

alter function api.begin_request(text, text, text) set search_path = pg_catalog, pg_temp;
alter function api.touch_api_key(text) set search_path = pg_catalog, pg_temp;
alter function api.create_api_key(text, text, text[], uuid, timestamptz) set search_path = pg_catalog, pg_temp;
alter function core.record_audit() set search_path = pg_catalog, pg_temp;

-- ALWAYS: a trigger that guards integrity or writes the trail must fire even
-- with session_replication_role = replica.
do $$
declare
  v_trigger record;
begin
  for v_trigger in
    select t.tgrelid::regclass as rel, t.tgname
    from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('core', 'api', 'platform') and not t.tgisinternal and t.tgenabled <> 'A'
  loop
    execute format('alter table %s enable always trigger %I', v_trigger.rel, v_trigger.tgname);
  end loop;
end
$$;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
-- Back to firing on origin only, except the two guards 0300 made ALWAYS.
do $$
declare
  v_trigger record;
begin
  for v_trigger in
    select t.tgrelid::regclass as rel, t.tgname
    from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('core', 'api', 'platform') and not t.tgisinternal
      and t.tgname not in ('reject_update_delete', 'reject_truncate')
  loop
    execute format('alter table %s enable trigger %I', v_trigger.rel, v_trigger.tgname);
  end loop;
end
$$;

alter function api.begin_request(text, text, text) set search_path = '';
alter function api.touch_api_key(text) set search_path = '';
alter function api.create_api_key(text, text, text[], uuid, timestamptz) set search_path = '';
alter function core.record_audit() set search_path = '';
alter function api.schema_version() security definer;
alter function api.schema_version() set search_path = '';
revoke select on public.schema_migrations from app_user, uber_admin;

do $$
begin
  execute format('grant temporary on database %I to public', current_database());
end
$$;

-- Everything the owner roles own here goes back to the role undoing this.
do $$
declare
  v_object record;
begin
  for v_object in
    select p.oid::regprocedure as name, case p.prokind when 'p' then 'procedure' else 'function' end as kind
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('core', 'api', 'platform', 'extensions')
      and p.proowner in ('tenancy_owner'::regrole, 'tenancy_auth'::regrole, 'tenancy_auditor'::regrole)
  loop
    execute format('alter %s %s owner to %I', v_object.kind, v_object.name, current_user);
  end loop;
  for v_object in
    select c.oid::regclass as name,
           case c.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence'
             else 'table' end as kind
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('core', 'api', 'platform', 'extensions') and c.relkind in ('r', 'p', 'v', 'm', 'S')
      and c.relowner = 'tenancy_owner'::regrole
      and not exists (select from pg_depend d
                      where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i'))
  loop
    execute format('alter %s %s owner to %I', v_object.kind, v_object.name, current_user);
  end loop;
  for v_object in
    select nspname from pg_namespace
    where nspname in ('core', 'api', 'platform', 'extensions') and nspowner = 'tenancy_owner'::regrole
  loop
    execute format('alter schema %I owner to %I', v_object.nspname, current_user);
  end loop;
end
$$;

-- Ownership went back above; what remains are grants to the definer roles.
revoke execute on function core.record_audit() from tenancy_owner;
revoke all on core.tenant_api_keys, core.tenants, core.audit_logs from tenancy_auth, tenancy_auditor;
revoke execute on function core.issue_api_key(uuid, text, text[], uuid, timestamptz),
  extensions.gen_random_bytes(integer), core.current_tenant_id() from tenancy_auth;
revoke execute on function core.current_user_id(), core.current_api_key_id(), core.current_request_id()
  from tenancy_auditor;
revoke usage on schema core, api, extensions from tenancy_auth, tenancy_auditor;
alter default privileges for role tenancy_owner grant execute on functions to public;

-- Roles are shared by every database of the cluster; drop them only when
-- nothing else still refers to them.
do $$
begin
  drop role if exists tenancy_auditor;
  drop role if exists tenancy_auth;
  drop role if exists tenancy_owner;
exception when dependent_objects_still_exist then
  raise notice 'roles tenancy_owner, tenancy_auth and tenancy_auditor are kept: another database of this cluster still uses them';
end
$$;
