\restrict dbmate

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: api; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA api;


--
-- Name: SCHEMA api; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON SCHEMA api IS 'Tenant-facing views and functions called by the HTTP layer as app_user';


--
-- Name: core; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA core;


--
-- Name: SCHEMA core; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON SCHEMA core IS 'Private tables; reached by app_user only through api views and functions, under row-level security';


--
-- Name: extensions; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA extensions;


--
-- Name: SCHEMA extensions; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON SCHEMA extensions IS 'Extensions, kept out of the schemas the roles can list';


--
-- Name: platform; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA platform;


--
-- Name: SCHEMA platform; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON SCHEMA platform IS 'Cross-tenant functions for platform operators, executable by uber_admin only';


--
-- Name: pgcrypto; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;


--
-- Name: EXTENSION pgcrypto; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION pgcrypto IS 'cryptographic functions';


--
-- Name: pgrowlocks; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS pgrowlocks WITH SCHEMA extensions;


--
-- Name: EXTENSION pgrowlocks; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION pgrowlocks IS 'show row-level locking information';


--
-- Name: begin_request(text, text, uuid, text, boolean); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.begin_request(p_key_hash text, p_permission text, p_request_id uuid, p_client_request_id text DEFAULT NULL::text, p_read_only boolean DEFAULT false) RETURNS TABLE(tenant_id uuid, key_id uuid, user_id uuid, permissions text[], last_used_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_claim record;
  v_key record;
  v_permissions text[];
begin
  select h.tenant_id, h.key_id into v_claim from core.api_key_hashes h where h.key_hash = p_key_hash;
  -- The hash is compared again: a key written without its claim names no key.
  select k.tenant_id, k.key_id, k.user_id, u.role, k.permissions, s.last_used_at
  into v_key
  from core.tenant_api_keys k
  join core.tenants t on t.tenant_id = k.tenant_id
  left join core.users u on u.tenant_id = k.tenant_id and u.user_id = k.user_id
  left join core.api_key_usage s on s.tenant_id = k.tenant_id and s.key_id = k.key_id
  where k.tenant_id = v_claim.tenant_id and k.key_id = v_claim.key_id
    and k.key_hash = p_key_hash
    and k.revoked_at is null
    and (k.expires_at is null or k.expires_at > now())
    and t.deactivated_at is null;
  if not found then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  v_permissions := core.effective_permissions(v_key.permissions, v_key.role);
  if p_permission is not null and not p_permission = any (v_permissions) then
    raise exception 'the API key lacks the permission %', p_permission using errcode = 'PT403';
  end if;
  perform core.sign_context(v_key.tenant_id, v_key.key_id, v_key.user_id, v_key.role, v_permissions,
    p_request_id, p_client_request_id);
  if p_read_only then
    perform set_config('transaction_read_only', 'on', true);
  end if;
  return query select v_key.tenant_id, v_key.key_id, v_key.user_id, v_permissions, v_key.last_used_at;
end
$$;


--
-- Name: FUNCTION begin_request(p_key_hash text, p_permission text, p_request_id uuid, p_client_request_id text, p_read_only boolean); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.begin_request(p_key_hash text, p_permission text, p_request_id uuid, p_client_request_id text, p_read_only boolean) IS 'Authenticates a key hash, checks one permission against what the key may do, signs the transaction''s request context, and makes the rest of the transaction read-only if asked';


--
-- Name: claim_idempotency_key(text, text); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.claim_idempotency_key(p_idempotency_key text, p_request_hash text) RETURNS TABLE(claimed boolean, request_hash text, response_status integer, response_body jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_now timestamptz := now();
  -- timestamptz + interval is stable, not immutable (time zones).
  v_expires_at timestamptz := now() + interval '24 hours';
begin
  perform core.carry_context_to_workers();
  -- Keep the table small: drop a few of this key's expired claims.
  delete from core.idempotency_keys k
  where k.tenant_id = v_tenant_id
    and k.expires_at < v_now
    and k.idempotency_key <> p_idempotency_key
    and k.idempotency_key in (
      select e.idempotency_key from core.idempotency_keys e
      where e.tenant_id = v_tenant_id and e.expires_at < v_now
      limit 10);

  return query
    insert into core.idempotency_keys as k (idempotency_key, request_hash)
    values (p_idempotency_key, p_request_hash)
    on conflict (tenant_id, api_key_id, idempotency_key) do update
      set request_hash = excluded.request_hash, response_status = null, response_body = null,
          created_at = v_now, expires_at = v_expires_at
      where k.expires_at < v_now
    returning true, k.request_hash, k.response_status, k.response_body;
  if not found then
    return query
      select false, k.request_hash, k.response_status, k.response_body
      from core.idempotency_keys k
      where k.tenant_id = v_tenant_id and k.idempotency_key = p_idempotency_key;
  end if;
end
$$;


--
-- Name: FUNCTION claim_idempotency_key(p_idempotency_key text, p_request_hash text); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.claim_idempotency_key(p_idempotency_key text, p_request_hash text) IS 'Claims an Idempotency-Key for the calling API key (claimed = true), or returns the stored request hash and response';


--
-- Name: create_api_key(text, text[], uuid, timestamp with time zone); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.create_api_key(p_name text, p_permissions text[], p_user_id uuid DEFAULT NULL::uuid, p_expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid, expires_at timestamp with time zone, revoked_at timestamp with time zone, last_used_at timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone, issued_by_key_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
declare
  v_tenant_id uuid;
  v_key_id uuid;
  v_issuer record;
begin
  perform core.carry_context_to_workers();
  select c.tenant_id, c.api_key_id into v_tenant_id, v_key_id from core.request_context c;
  select * into v_issuer from core.check_key_issue(v_tenant_id, v_key_id, p_permissions, p_user_id, p_expires_at);
  return query
    select * from core.issue_api_key(v_tenant_id, p_name, p_permissions,
      coalesce(p_user_id, v_issuer.user_id),
      -- Asked for no expiry: its issuer's, or the tenant's cap if sooner.
      coalesce(p_expires_at, least(v_issuer.expires_at, core.capped_expiry(v_tenant_id, null))),
      v_issuer.key_id);
end
$$;


--
-- Name: FUNCTION create_api_key(p_name text, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.create_api_key(p_name text, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone) IS 'Issues a key for the calling key''s tenant within its effective permissions, life and user; returns the key once';


--
-- Name: current_tenant_id(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.current_tenant_id() RETURNS uuid
    LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
    AS $$
begin
  return (select c.tenant_id from core.request_context c);
end
$$;


--
-- Name: FUNCTION current_tenant_id(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.current_tenant_id() IS 'Tenant of the verified request context; NULL without one, so policies fail closed';


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: documents; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.documents (
    tenant_id uuid DEFAULT core.current_tenant_id() NOT NULL,
    document_id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    title text NOT NULL,
    content_hash text NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT documents_content_hash_check CHECK ((content_hash ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT documents_metadata_check CHECK ((jsonb_typeof(metadata) = 'object'::text)),
    CONSTRAINT documents_title_check CHECK (((char_length(title) >= 1) AND (char_length(title) <= 500)))
);
ALTER TABLE ONLY core.documents ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE ONLY core.documents ALTER COLUMN document_id SET STATISTICS 0;
ALTER TABLE ONLY core.documents ALTER COLUMN user_id SET STATISTICS 0;
ALTER TABLE ONLY core.documents ALTER COLUMN title SET STATISTICS 0;
ALTER TABLE ONLY core.documents ALTER COLUMN content_hash SET STATISTICS 0;
ALTER TABLE ONLY core.documents ALTER COLUMN metadata SET STATISTICS 0;
ALTER TABLE ONLY core.documents ALTER COLUMN created_at SET STATISTICS 0;
ALTER TABLE ONLY core.documents ALTER COLUMN updated_at SET STATISTICS 0;

ALTER TABLE ONLY core.documents FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE documents; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.documents IS 'Documents of a tenant';


--
-- Name: COLUMN documents.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.documents.tenant_id IS 'Tenant the document belongs to; set from app.tenant_id';


--
-- Name: COLUMN documents.document_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.documents.document_id IS 'Identity of the document within the tenant';


--
-- Name: COLUMN documents.user_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.documents.user_id IS 'Author: a user of the same tenant';


--
-- Name: COLUMN documents.title; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.documents.title IS 'Title, 1-500 characters';


--
-- Name: COLUMN documents.content_hash; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.documents.content_hash IS 'SHA-256 of the content as 64 lower-case hex digits';


--
-- Name: COLUMN documents.metadata; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.documents.metadata IS 'Free-form JSON object';


--
-- Name: COLUMN documents.created_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.documents.created_at IS 'When the document was created';


--
-- Name: COLUMN documents.updated_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.documents.updated_at IS 'When the row last changed (maintained by trigger)';


--
-- Name: documents; Type: VIEW; Schema: api; Owner: -
--

CREATE VIEW api.documents WITH (security_invoker='true') AS
 SELECT documents.document_id,
    documents.tenant_id,
    documents.user_id,
    documents.title,
    documents.content_hash,
    documents.metadata,
    documents.created_at,
    documents.updated_at
   FROM core.documents;


--
-- Name: VIEW documents; Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON VIEW api.documents IS 'Documents of the current tenant';


--
-- Name: create_document(uuid, text, text, jsonb); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.create_document(p_user_id uuid, p_title text, p_content_hash text, p_metadata jsonb DEFAULT '{}'::jsonb) RETURNS SETOF api.documents
    LANGUAGE plpgsql
    AS $$
declare
  v_caller_user_id uuid := (select c.user_id from core.request_context c);
begin
  if v_caller_user_id is not null and p_user_id is distinct from v_caller_user_id and p_user_id is not null then
    raise exception 'a key bound to a user authors documents only as that user' using errcode = 'PT403';
  end if;
  if coalesce(p_user_id, v_caller_user_id) is null then
    raise exception 'a key bound to no user must name the author (user_id)' using errcode = 'PT422';
  end if;
  return query
    insert into core.documents (user_id, title, content_hash, metadata)
    values (coalesce(p_user_id, v_caller_user_id), p_title, p_content_hash, coalesce(p_metadata, '{}'))
    returning document_id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at;
end
$$;


--
-- Name: FUNCTION create_document(p_user_id uuid, p_title text, p_content_hash text, p_metadata jsonb); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.create_document(p_user_id uuid, p_title text, p_content_hash text, p_metadata jsonb) IS 'Stores a document of the current tenant; a user-bound key authors as its user (p_user_id may be NULL), an unbound key names the author';


--
-- Name: users; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.users (
    tenant_id uuid DEFAULT core.current_tenant_id() NOT NULL,
    user_id uuid DEFAULT gen_random_uuid() NOT NULL,
    email text NOT NULL,
    role text DEFAULT 'member'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT users_email_check CHECK ((((char_length(email) >= 3) AND (char_length(email) <= 320)) AND (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'::text))),
    CONSTRAINT users_role_check CHECK ((role = ANY (ARRAY['tenant_admin'::text, 'member'::text, 'viewer'::text])))
);
ALTER TABLE ONLY core.users ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE ONLY core.users ALTER COLUMN user_id SET STATISTICS 0;
ALTER TABLE ONLY core.users ALTER COLUMN email SET STATISTICS 0;
ALTER TABLE ONLY core.users ALTER COLUMN role SET STATISTICS 0;
ALTER TABLE ONLY core.users ALTER COLUMN created_at SET STATISTICS 0;
ALTER TABLE ONLY core.users ALTER COLUMN updated_at SET STATISTICS 0;

ALTER TABLE ONLY core.users FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE users; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.users IS 'People of a tenant';


--
-- Name: COLUMN users.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.users.tenant_id IS 'Tenant the user belongs to; set from app.tenant_id';


--
-- Name: COLUMN users.user_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.users.user_id IS 'Identity of the user within the tenant';


--
-- Name: COLUMN users.email; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.users.email IS 'Email address, unique per tenant regardless of case';


--
-- Name: COLUMN users.role; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.users.role IS 'Role within the tenant: tenant_admin, member or viewer';


--
-- Name: COLUMN users.created_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.users.created_at IS 'When the user was created';


--
-- Name: COLUMN users.updated_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.users.updated_at IS 'When the row last changed (maintained by trigger)';


--
-- Name: users; Type: VIEW; Schema: api; Owner: -
--

CREATE VIEW api.users WITH (security_invoker='true') AS
 SELECT users.user_id,
    users.tenant_id,
    users.email,
    users.role,
    users.created_at,
    users.updated_at
   FROM core.users;


--
-- Name: VIEW users; Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON VIEW api.users IS 'Users of the current tenant';


--
-- Name: create_user(text, text); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.create_user(p_email text, p_role text DEFAULT 'member'::text) RETURNS SETOF api.users
    LANGUAGE plpgsql
    AS $$
declare
  v_user api.users;
begin
  insert into core.users (email, role)
  values (p_email, coalesce(p_role, 'member'))
  returning user_id, tenant_id, email, role, created_at, updated_at into v_user;
  return next v_user;
end
$$;


--
-- Name: FUNCTION create_user(p_email text, p_role text); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.create_user(p_email text, p_role text) IS 'Adds a user to the current tenant';


--
-- Name: current_plan(); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.current_plan() RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return (
    select jsonb_build_object(
      'tier', p.tier,
      'limits', jsonb_build_object('documents', p.max_documents, 'users', p.max_users, 'api_keys', p.max_api_keys,
                                   'metadata_bytes', p.max_metadata_bytes, 'requests_per_minute', p.requests_per_minute),
      'usage', jsonb_build_object('documents', u.documents, 'users', u.users, 'api_keys', u.api_keys))
    from core.tenant_usage u
    join core.tenants t on t.tenant_id = u.tenant_id
    join core.plans p on p.tier = t.subscription_tier
    where u.tenant_id = v_tenant_id and t.tenant_id = v_tenant_id);
end
$$;


--
-- Name: FUNCTION current_plan(); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.current_plan() IS 'The current tenant''s plan: its tier, its limits and the tenant''s usage of them';


--
-- Name: tenants; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.tenants (
    tenant_id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    domain text,
    subscription_tier text DEFAULT 'free'::text NOT NULL,
    deactivated_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT tenants_domain_check CHECK (((char_length(domain) <= 253) AND (domain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$'::text))),
    CONSTRAINT tenants_name_check CHECK (((char_length(name) >= 1) AND (char_length(name) <= 200))),
    CONSTRAINT tenants_platform_stays_deactivated CHECK (((tenant_id <> '00000000-0000-0000-0000-000000000000'::uuid) OR (deactivated_at IS NOT NULL))),
    CONSTRAINT tenants_subscription_tier_check CHECK ((subscription_tier = ANY (ARRAY['free'::text, 'pro'::text, 'enterprise'::text])))
);
ALTER TABLE ONLY core.tenants ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE ONLY core.tenants ALTER COLUMN name SET STATISTICS 0;
ALTER TABLE ONLY core.tenants ALTER COLUMN domain SET STATISTICS 0;
ALTER TABLE ONLY core.tenants ALTER COLUMN subscription_tier SET STATISTICS 0;
ALTER TABLE ONLY core.tenants ALTER COLUMN deactivated_at SET STATISTICS 0;
ALTER TABLE ONLY core.tenants ALTER COLUMN created_at SET STATISTICS 0;
ALTER TABLE ONLY core.tenants ALTER COLUMN updated_at SET STATISTICS 0;

ALTER TABLE ONLY core.tenants FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE tenants; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.tenants IS 'Customers of the platform; the root every tenant-scoped row belongs to';


--
-- Name: COLUMN tenants.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenants.tenant_id IS 'Identity of the tenant and the key every tenant-scoped table is partitioned by';


--
-- Name: COLUMN tenants.name; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenants.name IS 'Display name, 1-200 characters';


--
-- Name: COLUMN tenants.domain; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenants.domain IS 'Optional lower-case hostname, unique across tenants (claimed in core.tenant_domains)';


--
-- Name: COLUMN tenants.subscription_tier; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenants.subscription_tier IS 'Plan: free, pro or enterprise';


--
-- Name: COLUMN tenants.deactivated_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenants.deactivated_at IS 'When a platform operator deactivated the tenant; its keys stop working, its data is kept';


--
-- Name: COLUMN tenants.created_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenants.created_at IS 'When the tenant was provisioned';


--
-- Name: COLUMN tenants.updated_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenants.updated_at IS 'When the row last changed (maintained by trigger)';


--
-- Name: tenant; Type: VIEW; Schema: api; Owner: -
--

CREATE VIEW api.tenant WITH (security_invoker='true') AS
 SELECT tenants.tenant_id,
    tenants.name,
    tenants.domain,
    tenants.subscription_tier,
    tenants.created_at,
    tenants.updated_at
   FROM core.tenants;


--
-- Name: VIEW tenant; Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON VIEW api.tenant IS 'The tenant of the current context: one row, or none without context';


--
-- Name: current_tenant(); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.current_tenant() RETURNS SETOF api.tenant
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query select * from api.tenant t where t.tenant_id = v_tenant_id;
end
$$;


--
-- Name: FUNCTION current_tenant(); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.current_tenant() IS 'The tenant of the current context: one row, or none without context';


--
-- Name: settings_error(jsonb); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.settings_error(p_settings jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $_$
  select case
    when jsonb_typeof(p_settings -> 'audit_retention_days') not in ('null') and
         (jsonb_typeof(p_settings -> 'audit_retention_days') <> 'number'
          or (p_settings ->> 'audit_retention_days') !~ '^[1-9][0-9]{2,4}$'
          or (p_settings ->> 'audit_retention_days')::int not between 365 and 36500)
      then 'audit_retention_days is a whole number of days from 365 to 36,500'
    when jsonb_typeof(p_settings -> 'api_key_max_lifetime_days') not in ('null') and
         (jsonb_typeof(p_settings -> 'api_key_max_lifetime_days') <> 'number'
          or (p_settings ->> 'api_key_max_lifetime_days') !~ '^[1-9][0-9]{0,4}$'
          or (p_settings ->> 'api_key_max_lifetime_days')::int > 36500)
      then 'api_key_max_lifetime_days is a whole number of days from 1 to 36,500'
    when jsonb_typeof(p_settings -> 'require_two_person_approval') not in ('null', 'boolean')
      then 'require_two_person_approval is true or false'
    when jsonb_typeof(p_settings -> 'currency') not in ('null') and
         (jsonb_typeof(p_settings -> 'currency') <> 'string' or (p_settings ->> 'currency') !~ '^[A-Z]{3}$')
      then 'currency is three capital letters (ISO 4217)'
    when jsonb_typeof(p_settings -> 'data_residency') not in ('null') and
         (jsonb_typeof(p_settings -> 'data_residency') <> 'string'
          or (p_settings ->> 'data_residency') !~ '^[a-z]{2}(-[a-z0-9]{1,8})?$')
      then 'data_residency is a lower-case region code such as eu or us-east'
  end
$_$;


--
-- Name: FUNCTION settings_error(p_settings jsonb); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.settings_error(p_settings jsonb) IS 'What is wrong with the settings the database acts on in a settings object (NULL: nothing); other keys are free';


--
-- Name: tenant_configs; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.tenant_configs (
    tenant_id uuid NOT NULL,
    template_id uuid,
    settings jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT tenant_configs_known_settings_check CHECK ((core.settings_error(settings) IS NULL)),
    CONSTRAINT tenant_configs_settings_check CHECK ((jsonb_typeof(settings) = 'object'::text))
);
ALTER TABLE ONLY core.tenant_configs ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_configs ALTER COLUMN template_id SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_configs ALTER COLUMN settings SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_configs ALTER COLUMN created_at SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_configs ALTER COLUMN updated_at SET STATISTICS 0;

ALTER TABLE ONLY core.tenant_configs FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE tenant_configs; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.tenant_configs IS 'One configuration row per tenant';


--
-- Name: COLUMN tenant_configs.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_configs.tenant_id IS 'Tenant the configuration belongs to';


--
-- Name: COLUMN tenant_configs.template_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_configs.template_id IS 'Template the configuration was seeded from, if any';


--
-- Name: COLUMN tenant_configs.settings; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_configs.settings IS 'Tenant settings as a JSON object';


--
-- Name: COLUMN tenant_configs.created_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_configs.created_at IS 'When the configuration was created';


--
-- Name: COLUMN tenant_configs.updated_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_configs.updated_at IS 'When the row last changed (maintained by trigger)';


--
-- Name: tenant_config; Type: VIEW; Schema: api; Owner: -
--

CREATE VIEW api.tenant_config WITH (security_invoker='true') AS
 SELECT tenant_configs.tenant_id,
    tenant_configs.template_id,
    tenant_configs.settings,
    tenant_configs.created_at,
    tenant_configs.updated_at
   FROM core.tenant_configs;


--
-- Name: VIEW tenant_config; Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON VIEW api.tenant_config IS 'Configuration of the current tenant: one row, or none without context';


--
-- Name: current_tenant_config(); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.current_tenant_config() RETURNS SETOF api.tenant_config
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query select * from api.tenant_config c where c.tenant_id = v_tenant_id;
end
$$;


--
-- Name: FUNCTION current_tenant_config(); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.current_tenant_config() IS 'Configuration of the current tenant: one row, or none without context or config:read';


--
-- Name: decide_approval(uuid, boolean); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.decide_approval(p_approval_id uuid, p_approve boolean) RETURNS TABLE(approval jsonb, result jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_context record;
  v_request core.approval_requests;
  v_needed text;
begin
  perform core.carry_context_to_workers();
  select c.tenant_id, c.api_key_id, c.user_id, c.permissions into v_context from core.request_context c;
  if v_context.tenant_id is null or not core.key_is_active(v_context.tenant_id, v_context.api_key_id) then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  select * into v_request from core.approval_requests a
  where a.tenant_id = v_context.tenant_id and a.approval_id = p_approval_id;
  if not found then
    raise exception 'no approval request with that id' using errcode = 'P0002';
  end if;
  if v_request.status <> 'pending' then
    raise exception 'the request was % already', v_request.status using errcode = 'PT409';
  end if;
  if v_request.expires_at <= clock_timestamp() then
    raise exception 'the request has expired; ask again' using errcode = 'PT409';
  end if;
  -- A request lives no longer than the key that made it, nor than its
  -- right to ask for it.
  if not core.key_is_active(v_request.tenant_id, v_request.requested_by_key_id) then
    raise exception 'the key that asked for this change is revoked or expired' using errcode = 'PT409';
  end if;
  begin
    perform core.check_change_request(v_request.tenant_id, v_request.requested_by_key_id, v_request.operation,
      v_request.payload);
  exception when no_data_found then
    -- The request's user may be gone because a concurrent decision of this
    -- very request removed it, after the request was read above.
    if exists (select from core.approval_requests a
               where a.tenant_id = v_request.tenant_id and a.approval_id = v_request.approval_id
                 and a.status <> 'pending') then
      raise exception 'the request was decided meanwhile' using errcode = 'PT409';
    end if;
    raise;
  end;
  -- Nobody decides their own request, nor with a key of their making.
  if v_context.user_id is null then
    raise exception 'a key deciding a request must be bound to a user' using errcode = 'PT403';
  end if;
  -- Whoever issued a key has seen its secret: two keys with an issuer in
  -- common (or one issued by the other) may be one person's.
  if v_context.api_key_id = v_request.requested_by_key_id
     or v_context.user_id is not distinct from v_request.requested_by_user_id
     or exists (select from core.key_lineage(v_context.tenant_id, v_context.api_key_id) a
                join core.key_lineage(v_request.tenant_id, v_request.requested_by_key_id) r on r = a) then
    raise exception 'a key cannot decide a request of its own user, or of a key it shares an issuer with'
      using errcode = 'PT403';
  end if;
  -- The decider may make the change itself.
  v_needed := case v_request.operation when 'create_api_key' then 'keys:write'
                                       when 'update_tenant_config' then 'config:write'
                                       else 'users:write' end;
  if not v_needed = any (v_context.permissions)
     or (v_request.operation = 'create_api_key' and not core.effective_permissions(
           array(select jsonb_array_elements_text(v_request.payload -> 'permissions')), null) <@ v_context.permissions) then
    raise exception 'the API key may not make this change itself' using errcode = 'PT403';
  end if;

  -- Decided as the role that makes the change: on Citus one role writes a
  -- tenant's shards in a transaction (tenancy_writer changes the
  -- configuration and deletes users; keys and roles are tenancy_auth's).
  if p_approve and v_request.operation in ('update_tenant_config', 'delete_user') then
    return query select d.approval, d.result from core.decide_as_writer(v_request.tenant_id, v_request.approval_id,
      p_approve, v_context.api_key_id, v_context.user_id) d;
  else
    return query select d.approval, d.result from core.decide_request(v_request.tenant_id, v_request.approval_id,
      p_approve, v_context.api_key_id, v_context.user_id) d;
  end if;
end
$$;


--
-- Name: FUNCTION decide_approval(p_approval_id uuid, p_approve boolean); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.decide_approval(p_approval_id uuid, p_approve boolean) IS 'Approves a pending request (performing its change, once) or rejects it, by a key of another user that may make the change';


--
-- Name: delete_document(uuid); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.delete_document(p_document_id uuid) RETURNS SETOF api.documents
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  perform core.carry_context_to_workers();
  return query
    delete from core.documents
    where tenant_id = v_tenant_id and document_id = p_document_id
    returning document_id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at;
  if not found and exists (select 1 from core.documents d
                           where d.tenant_id = v_tenant_id and d.document_id = p_document_id) then
    raise exception 'a key of a member deletes only the documents its user authors' using errcode = 'PT403';
  end if;
end
$$;


--
-- Name: FUNCTION delete_document(p_document_id uuid); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.delete_document(p_document_id uuid) IS 'Removes a document of the current tenant; no row when unknown';


--
-- Name: delete_user(uuid); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.delete_user(p_user_id uuid) RETURNS SETOF api.users
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_user api.users;
begin
  perform core.carry_context_to_workers();
  delete from core.users
  where tenant_id = v_tenant_id and user_id = p_user_id
  returning user_id, tenant_id, email, role, created_at, updated_at into v_user;
  if found then
    return next v_user;
  end if;
end
$$;


--
-- Name: FUNCTION delete_user(p_user_id uuid); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.delete_user(p_user_id uuid) IS 'Removes a user of the current tenant; their keys are revoked and kept; no row when unknown; fails (23503) while the user authors documents';


--
-- Name: export_audit_logs(bigint, integer); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.export_audit_logs(p_from_seq bigint DEFAULT 1, p_limit integer DEFAULT 1000) RETURNS TABLE(seq bigint, log_id uuid, tenant_id uuid, user_id uuid, api_key_id uuid, operator_id uuid, action text, resource_type text, resource_id uuid, details jsonb, details_text text, details_salt text, details_sha256 text, request_id text, client_request_id text, "timestamp" text, recorded_at text, prev_hash text, chain_hash text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_context record;
begin
  -- Row-level security gives tenancy_writer the rows of the context's
  -- tenant, and only with audit:read.
  select c.tenant_id, c.permissions into v_context from core.request_context c;
  if 'audit:read' = any (v_context.permissions) then
    return query select * from core.audit_export(v_context.tenant_id, p_from_seq, p_limit, v_context.permissions);
  end if;
end
$$;


--
-- Name: FUNCTION export_audit_logs(p_from_seq bigint, p_limit integer); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.export_audit_logs(p_from_seq bigint, p_limit integer) IS 'The current tenant''s audit chain from a seq, at most 1,000 rows, with hashes; values redacted as in api.audit_logs';


--
-- Name: approval_requests; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.approval_requests (
    tenant_id uuid NOT NULL,
    approval_id uuid DEFAULT gen_random_uuid() NOT NULL,
    operation text NOT NULL,
    payload jsonb NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    requested_by_key_id uuid NOT NULL,
    requested_by_user_id uuid,
    decided_by_key_id uuid,
    decided_by_user_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone DEFAULT (now() + '24:00:00'::interval) NOT NULL,
    decided_at timestamp with time zone,
    executing_in text,
    key_hash text,
    key_prefix text,
    CONSTRAINT approval_requests_check CHECK (((status = 'pending'::text) = (decided_at IS NULL))),
    CONSTRAINT approval_requests_key_hash_check CHECK ((key_hash ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT approval_requests_operation_check CHECK ((operation = ANY (ARRAY['create_api_key'::text, 'update_tenant_config'::text, 'delete_user'::text, 'update_user_role'::text]))),
    CONSTRAINT approval_requests_payload_check CHECK ((jsonb_typeof(payload) = 'object'::text)),
    CONSTRAINT approval_requests_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'approved'::text, 'rejected'::text])))
);
ALTER TABLE ONLY core.approval_requests ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN approval_id SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN operation SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN payload SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN status SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN requested_by_key_id SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN requested_by_user_id SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN decided_by_key_id SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN decided_by_user_id SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN created_at SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN expires_at SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN decided_at SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN executing_in SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN key_hash SET STATISTICS 0;
ALTER TABLE ONLY core.approval_requests ALTER COLUMN key_prefix SET STATISTICS 0;

ALTER TABLE ONLY core.approval_requests FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE approval_requests; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.approval_requests IS 'Changes waiting for a second person''s approval (require_two_person_approval), and their decisions';


--
-- Name: COLUMN approval_requests.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.tenant_id IS 'Tenant whose change it is';


--
-- Name: COLUMN approval_requests.approval_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.approval_id IS 'Identity of the request';


--
-- Name: COLUMN approval_requests.operation; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.operation IS 'What it will do: create_api_key, update_tenant_config, delete_user or update_user_role';


--
-- Name: COLUMN approval_requests.payload; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.payload IS 'The change''s arguments (never a secret)';


--
-- Name: COLUMN approval_requests.status; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.status IS 'pending, approved or rejected (a pending request past expires_at is expired)';


--
-- Name: COLUMN approval_requests.requested_by_key_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.requested_by_key_id IS 'Key that asked for the change';


--
-- Name: COLUMN approval_requests.requested_by_user_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.requested_by_user_id IS 'User that key is bound to, if any';


--
-- Name: COLUMN approval_requests.decided_by_key_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.decided_by_key_id IS 'Key that approved or rejected it';


--
-- Name: COLUMN approval_requests.decided_by_user_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.decided_by_user_id IS 'User that key is bound to';


--
-- Name: COLUMN approval_requests.created_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.created_at IS 'When it was asked for';


--
-- Name: COLUMN approval_requests.expires_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.expires_at IS 'After this it can no longer be decided';


--
-- Name: COLUMN approval_requests.decided_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.decided_at IS 'When it was approved or rejected';


--
-- Name: COLUMN approval_requests.executing_in; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.executing_in IS 'Transaction performing the approved change (core.this_transaction), while it runs';


--
-- Name: COLUMN approval_requests.key_hash; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.key_hash IS 'SHA-256 of the requested key, whose secret only the requester was shown; never shown, cleared once the request is decided';


--
-- Name: COLUMN approval_requests.key_prefix; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.approval_requests.key_prefix IS 'First characters of the requested key';


--
-- Name: approvals; Type: VIEW; Schema: api; Owner: -
--

CREATE VIEW api.approvals WITH (security_invoker='true') AS
 SELECT a.approval_id,
    a.tenant_id,
    a.operation,
    a.payload,
        CASE
            WHEN ((a.status = 'pending'::text) AND (a.expires_at <= now())) THEN 'expired'::text
            ELSE a.status
        END AS status,
    a.requested_by_key_id,
    a.requested_by_user_id,
    a.decided_by_key_id,
    a.decided_by_user_id,
    a.created_at,
    a.expires_at,
    a.decided_at
   FROM core.approval_requests a;


--
-- Name: VIEW approvals; Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON VIEW api.approvals IS 'The current tenant''s approval requests and their decisions';


--
-- Name: get_approval(uuid); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.get_approval(p_approval_id uuid) RETURNS SETOF api.approvals
    LANGUAGE plpgsql STABLE
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query select * from api.approvals a where a.tenant_id = v_tenant_id and a.approval_id = p_approval_id;
end
$$;


--
-- Name: FUNCTION get_approval(p_approval_id uuid); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.get_approval(p_approval_id uuid) IS 'One approval request of the current tenant, or none';


--
-- Name: get_document(uuid); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.get_document(p_document_id uuid) RETURNS SETOF api.documents
    LANGUAGE plpgsql STABLE
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query select * from api.documents d where d.tenant_id = v_tenant_id and d.document_id = p_document_id;
end
$$;


--
-- Name: FUNCTION get_document(p_document_id uuid); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.get_document(p_document_id uuid) IS 'One document of the current tenant, or none';


--
-- Name: get_user(uuid); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.get_user(p_user_id uuid) RETURNS SETOF api.users
    LANGUAGE plpgsql STABLE
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query select * from api.users u where u.tenant_id = v_tenant_id and u.user_id = p_user_id;
end
$$;


--
-- Name: FUNCTION get_user(p_user_id uuid); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.get_user(p_user_id uuid) IS 'One user of the current tenant, or none';


--
-- Name: lease_requests(integer); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.lease_requests(p_most integer DEFAULT NULL::integer) RETURNS TABLE(tenant_id uuid, granted integer, request_limit integer, remaining integer, resets_in_ms integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
declare
  v_tenant_id uuid := (select c.tenant_id from core.request_context c);
  v_limit integer;
  v_start timestamptz;
  v_leased integer;
  v_now timestamptz;
  v_window timestamptz;
  v_left integer;
  v_granted integer;
  v_lock_timeout text;
  v_attempt integer;
begin
  perform core.carry_context_to_workers();
  if v_tenant_id is null then
    raise exception 'a lease of requests needs a tenant''s request context (api.begin_request)' using errcode = 'PT401';
  end if;
  select p.requests_per_minute into strict v_limit
  from core.tenants t join core.plans p on p.tier = t.subscription_tier
  where t.tenant_id = v_tenant_id;
  -- Leases of the tenant take turns on its row (made with the tenant), as
  -- its writers do on its counts: a session holding it past any request's
  -- lifetime is ended first, so no session keeps a tenant's leases waiting
  -- for good. (No INSERT ... ON CONFLICT here: it would wait for whoever
  -- holds the row before anything could end them.)
  perform from core.request_windows w where w.tenant_id = v_tenant_id for update skip locked;
  if not found then
    if not exists (select from core.request_windows w where w.tenant_id = v_tenant_id) then
      -- A tenant made while this migration ran, by a transaction that
      -- began before it: its row is made here, once.
      insert into core.request_windows (tenant_id, window_start, leased) values (v_tenant_id, '-infinity', 0)
      on conflict (tenant_id) do nothing;
    else
      -- Another lease holds the row for a moment. Whoever holds it longer
      -- than that is ended, whatever the age of its transaction, so that
      -- sessions taking turns at the row cannot keep the tenant's leases
      -- waiting either.
      v_lock_timeout := current_setting('lock_timeout');
      -- (SET LOCAL, which Citus passes on to the worker that waits; set_config
      -- it does not, and there the wait lasted until the statement's timeout.)
      execute 'set local lock_timeout = ''200ms''';
      begin
        perform from core.request_windows w where w.tenant_id = v_tenant_id for update;
      exception when lock_not_available then
        null;
      end;
      execute format('set local lock_timeout = %L', v_lock_timeout);
      for v_attempt in 1..100 loop
        perform from core.request_windows w where w.tenant_id = v_tenant_id for update skip locked;
        exit when found;
        perform core.end_window_holders(v_tenant_id);
      end loop;
    end if;
  end if;
  select w.window_start, w.leased into strict v_start, v_leased
  from core.request_windows w where w.tenant_id = v_tenant_id
  for update;
  -- The minute is read once the row is locked: a lease that waited for
  -- another never takes its window back to an earlier minute.
  v_now := clock_timestamp();
  v_window := greatest(date_bin('1 minute', v_now, timestamptz '2000-01-01 00:00:00+00'), v_start);
  if v_start < v_window then
    v_leased := 0;
  end if;
  -- A limit lowered within the minute leaves nothing to lease.
  v_left := greatest(v_limit - v_leased, 0);
  v_granted := least(ceil(v_limit / 20.0), ceil(v_left / 4.0), greatest(coalesce(p_most, v_limit), 0))::integer;
  update core.request_windows w
  set window_start = v_window, leased = v_leased + v_granted
  where w.tenant_id = v_tenant_id;
  return query select v_tenant_id, v_granted, v_limit, v_left - v_granted,
    greatest(ceil(extract(epoch from v_window + interval '1 minute' - v_now) * 1000), 1)::integer;
end
$$;


--
-- Name: FUNCTION lease_requests(p_most integer); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.lease_requests(p_most integer) IS 'Leases a slice of the current tenant''s requests-per-minute budget to the calling service process (at most p_most requests; NULL: a slice): how many it may serve, the limit, what is left to lease, and when the minute ends';


--
-- Name: api_key_usage; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.api_key_usage (
    tenant_id uuid NOT NULL,
    key_id uuid NOT NULL,
    last_used_at timestamp with time zone
);
ALTER TABLE ONLY core.api_key_usage ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE ONLY core.api_key_usage ALTER COLUMN key_id SET STATISTICS 0;
ALTER TABLE ONLY core.api_key_usage ALTER COLUMN last_used_at SET STATISTICS 0;

ALTER TABLE ONLY core.api_key_usage FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE api_key_usage; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.api_key_usage IS 'When each API key was last used; apart from the key so that recording a use never blocks its revocation';


--
-- Name: COLUMN api_key_usage.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.api_key_usage.tenant_id IS 'Tenant of the key';


--
-- Name: COLUMN api_key_usage.key_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.api_key_usage.key_id IS 'The key';


--
-- Name: COLUMN api_key_usage.last_used_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.api_key_usage.last_used_at IS 'Last successful use, recorded at most once a minute';


--
-- Name: tenant_api_keys; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.tenant_api_keys (
    tenant_id uuid DEFAULT core.current_tenant_id() NOT NULL,
    key_id uuid DEFAULT gen_random_uuid() NOT NULL,
    key_hash text NOT NULL,
    key_prefix text NOT NULL,
    name text NOT NULL,
    permissions text[] DEFAULT '{}'::text[] NOT NULL,
    user_id uuid,
    expires_at timestamp with time zone,
    revoked_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    issued_by_key_id uuid,
    CONSTRAINT tenant_api_keys_key_hash_check CHECK ((key_hash ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT tenant_api_keys_key_prefix_check CHECK (((char_length(key_prefix) >= 8) AND (char_length(key_prefix) <= 16))),
    CONSTRAINT tenant_api_keys_name_check CHECK (((char_length(name) >= 1) AND (char_length(name) <= 200))),
    CONSTRAINT tenant_api_keys_permissions_check CHECK (((permissions <@ ARRAY['users:read'::text, 'users:write'::text, 'documents:read'::text, 'documents:write'::text, 'keys:read'::text, 'keys:write'::text, 'audit:read'::text, 'config:read'::text, 'config:write'::text, '*'::text]) AND (array_position(permissions, NULL::text) IS NULL)))
);
ALTER TABLE ONLY core.tenant_api_keys ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_api_keys ALTER COLUMN key_id SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_api_keys ALTER COLUMN key_hash SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_api_keys ALTER COLUMN key_prefix SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_api_keys ALTER COLUMN name SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_api_keys ALTER COLUMN permissions SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_api_keys ALTER COLUMN user_id SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_api_keys ALTER COLUMN expires_at SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_api_keys ALTER COLUMN revoked_at SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_api_keys ALTER COLUMN created_at SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_api_keys ALTER COLUMN updated_at SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_api_keys ALTER COLUMN issued_by_key_id SET STATISTICS 0;

ALTER TABLE ONLY core.tenant_api_keys FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE tenant_api_keys; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.tenant_api_keys IS 'API keys of a tenant, stored as hashes only';


--
-- Name: COLUMN tenant_api_keys.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_api_keys.tenant_id IS 'Tenant the key opens';


--
-- Name: COLUMN tenant_api_keys.key_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_api_keys.key_id IS 'Identity of the key within the tenant';


--
-- Name: COLUMN tenant_api_keys.key_hash; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_api_keys.key_hash IS 'SHA-256 of the key as lower-case hex; the key itself is never stored';


--
-- Name: COLUMN tenant_api_keys.key_prefix; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_api_keys.key_prefix IS 'First characters of the key, shown to people to tell keys apart';


--
-- Name: COLUMN tenant_api_keys.name; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_api_keys.name IS 'What the key is for, 1-200 characters';


--
-- Name: COLUMN tenant_api_keys.permissions; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_api_keys.permissions IS 'Granted permissions, e.g. documents:read, or * for all';


--
-- Name: COLUMN tenant_api_keys.user_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_api_keys.user_id IS 'User the key acts as, if bound; cleared (and the key revoked) when that user is deleted';


--
-- Name: COLUMN tenant_api_keys.expires_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_api_keys.expires_at IS 'When the key stops working by itself, if ever';


--
-- Name: COLUMN tenant_api_keys.revoked_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_api_keys.revoked_at IS 'When the key was revoked; a revoked key never works again';


--
-- Name: COLUMN tenant_api_keys.created_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_api_keys.created_at IS 'When the key was issued';


--
-- Name: COLUMN tenant_api_keys.updated_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_api_keys.updated_at IS 'When the row last changed (maintained by trigger)';


--
-- Name: COLUMN tenant_api_keys.issued_by_key_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_api_keys.issued_by_key_id IS 'The key that issued this one; NULL when a platform operator issued it. Revoking a key revokes all it issued';


--
-- Name: api_keys; Type: VIEW; Schema: api; Owner: -
--

CREATE VIEW api.api_keys WITH (security_invoker='true') AS
 SELECT k.key_id,
    k.tenant_id,
    k.key_prefix,
    k.name,
    k.permissions,
    k.user_id,
    k.expires_at,
    k.revoked_at,
    u.last_used_at,
    k.created_at,
    k.updated_at,
    k.issued_by_key_id
   FROM (core.tenant_api_keys k
     LEFT JOIN core.api_key_usage u ON (((u.tenant_id = k.tenant_id) AND (u.key_id = k.key_id))));


--
-- Name: VIEW api_keys; Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON VIEW api.api_keys IS 'API keys of the current tenant, without their hashes';


--
-- Name: list_api_keys(integer, timestamp with time zone, uuid); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.list_api_keys(p_limit integer DEFAULT 20, p_after_created_at timestamp with time zone DEFAULT NULL::timestamp with time zone, p_after_key_id uuid DEFAULT NULL::uuid) RETURNS SETOF api.api_keys
    LANGUAGE plpgsql STABLE
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_sort TO 'off'
    SET enable_bitmapscan TO 'off'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_below_at timestamptz;
  v_below_id uuid;
begin
  select bound_at, bound_id into v_below_at, v_below_id
  from core.page_upper_bound(p_after_created_at, p_after_key_id, null);
  return query
    select * from api.api_keys k
    where k.tenant_id = v_tenant_id and (k.created_at, k.key_id) < (v_below_at, v_below_id)
    order by k.created_at desc, k.key_id desc
    limit least(greatest(coalesce(p_limit, 20), 1), 100);
end
$$;


--
-- Name: FUNCTION list_api_keys(p_limit integer, p_after_created_at timestamp with time zone, p_after_key_id uuid); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.list_api_keys(p_limit integer, p_after_created_at timestamp with time zone, p_after_key_id uuid) IS 'API keys of the current tenant, newest first, keyset-paginated after (created_at, key_id)';


--
-- Name: list_approvals(); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.list_approvals() RETURNS SETOF api.approvals
    LANGUAGE plpgsql STABLE
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query select * from api.approvals a where a.tenant_id = v_tenant_id
    order by a.created_at desc, a.approval_id desc limit 100;
end
$$;


--
-- Name: FUNCTION list_approvals(); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.list_approvals() IS 'The current tenant''s approval requests, newest first (at most 100)';


--
-- Name: audit_details_readable(text, text[]); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.audit_details_readable(p_resource_type text, p_permissions text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
  select p_resource_type = 'tenants'
      or case p_resource_type
           when 'users' then 'users:read'
           when 'documents' then 'documents:read'
           when 'tenant_api_keys' then 'keys:read'
           when 'tenant_configs' then 'config:read'
         end = any (coalesce(p_permissions, '{}'))
$$;


--
-- Name: FUNCTION audit_details_readable(p_resource_type text, p_permissions text[]); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.audit_details_readable(p_resource_type text, p_permissions text[]) IS 'Whether a key with these permissions sees old and new values of an entry of this resource type';


--
-- Name: current_permissions(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.current_permissions() RETURNS text[]
    LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
    AS $$
begin
  return coalesce((select c.permissions from core.request_context c), '{}');
end
$$;


--
-- Name: FUNCTION current_permissions(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.current_permissions() IS 'What the verified request context''s key may do; empty without one';


--
-- Name: transaction_time(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.transaction_time() RETURNS timestamp with time zone
    LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION transaction_time(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.transaction_time() IS 'The transaction''s time: now() on a single server, the distributed transaction''s on Citus, alike on every node';


--
-- Name: audit_logs; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.audit_logs (
    log_id uuid DEFAULT gen_random_uuid() NOT NULL,
    tenant_id uuid NOT NULL,
    user_id uuid,
    api_key_id uuid,
    action text NOT NULL,
    resource_type text NOT NULL,
    resource_id uuid NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    request_id text,
    "timestamp" timestamp with time zone DEFAULT core.transaction_time() NOT NULL,
    client_request_id text,
    operator_id uuid,
    seq bigint NOT NULL,
    recorded_at timestamp with time zone NOT NULL,
    details_salt bytea NOT NULL,
    details_sha256 bytea NOT NULL,
    prev_hash bytea NOT NULL,
    chain_hash bytea NOT NULL,
    CONSTRAINT audit_logs_action_check CHECK ((action ~ '^[a-z][a-z_.]{0,99}$'::text)),
    CONSTRAINT audit_logs_client_request_id_check CHECK ((char_length(client_request_id) <= 200)),
    CONSTRAINT audit_logs_details_check CHECK ((jsonb_typeof(details) = 'object'::text)),
    CONSTRAINT audit_logs_request_id_check CHECK ((char_length(request_id) <= 200)),
    CONSTRAINT audit_logs_resource_type_check CHECK ((resource_type ~ '^[a-z][a-z_]{0,99}$'::text))
)
PARTITION BY RANGE ("timestamp");
ALTER TABLE ONLY core.audit_logs ALTER COLUMN log_id SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN user_id SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN api_key_id SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN action SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN resource_type SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN resource_id SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN details SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN request_id SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN "timestamp" SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN client_request_id SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN operator_id SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN seq SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN recorded_at SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN details_salt SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN details_sha256 SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN prev_hash SET STATISTICS 0;
ALTER TABLE ONLY core.audit_logs ALTER COLUMN chain_hash SET STATISTICS 0;

ALTER TABLE ONLY core.audit_logs FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE audit_logs; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.audit_logs IS 'Append-only trail of every change to tenant-scoped rows, written by trigger; partitioned by month of "timestamp"';


--
-- Name: COLUMN audit_logs.log_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.log_id IS 'Identity of the entry';


--
-- Name: COLUMN audit_logs.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.tenant_id IS 'Tenant whose row changed';


--
-- Name: COLUMN audit_logs.user_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.user_id IS 'Acting user (app.user_id), when the request was bound to one';


--
-- Name: COLUMN audit_logs.api_key_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.api_key_id IS 'API key that made the request (app.api_key_id); NULL for platform operations';


--
-- Name: COLUMN audit_logs.action; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.action IS 'What happened: insert, update or delete';


--
-- Name: COLUMN audit_logs.resource_type; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.resource_type IS 'Table the changed row belongs to, e.g. documents';


--
-- Name: COLUMN audit_logs.resource_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.resource_id IS 'Primary id of the changed row within its tenant';


--
-- Name: COLUMN audit_logs.details; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.details IS 'Changed columns with old and new values (never key_hash) and the database role';


--
-- Name: COLUMN audit_logs.request_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.request_id IS 'Request id the service assigned (a UUID), from the verified context; the one to trust';


--
-- Name: COLUMN audit_logs."timestamp"; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs."timestamp" IS 'Start of the transaction that made the change; the partition key';


--
-- Name: COLUMN audit_logs.client_request_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.client_request_id IS 'x-request-id the client sent, if any; informational, never trusted';


--
-- Name: COLUMN audit_logs.operator_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.operator_id IS 'Platform operator who made the request (platform routes); NULL for tenant API keys and DBAs';


--
-- Name: COLUMN audit_logs.seq; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.seq IS 'Position in the tenant''s chain: 1, 2, 3, ... without gaps, in commit order';


--
-- Name: COLUMN audit_logs.recorded_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.recorded_at IS 'Clock time at which the row was written (timestamp is its transaction''s start)';


--
-- Name: COLUMN audit_logs.details_salt; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.details_salt IS 'Random bytes hashed before the details, so that redacted details cannot be guessed from their hash';


--
-- Name: COLUMN audit_logs.details_sha256; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.details_sha256 IS 'SHA-256 of details_salt and details::text, which the chain covers';


--
-- Name: COLUMN audit_logs.prev_hash; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.prev_hash IS 'chain_hash of the tenant''s previous row; 32 zero bytes before the first';


--
-- Name: COLUMN audit_logs.chain_hash; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_logs.chain_hash IS 'SHA-256 of prev_hash and the row''s canonical record (see migration 20261201000900)';


--
-- Name: audit_logs; Type: VIEW; Schema: api; Owner: -
--

CREATE VIEW api.audit_logs WITH (security_invoker='false') AS
 SELECT a.log_id,
    a.tenant_id,
    a.user_id,
    a.api_key_id,
    a.action,
    a.resource_type,
    a.resource_id,
        CASE
            WHEN core.audit_details_readable(a.resource_type, ( SELECT core.current_permissions() AS current_permissions)) THEN a.details
            ELSE ((a.details - 'old'::text) - 'new'::text)
        END AS details,
    a.request_id,
    a."timestamp",
    a.client_request_id,
    a.operator_id
   FROM core.audit_logs a;


--
-- Name: VIEW audit_logs; Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON VIEW api.audit_logs IS 'Audit trail of the current tenant; old and new values only for resource types the key may read. Runs as tenancy_owner, whom forced row-level security binds';


--
-- Name: list_audit_logs(integer, timestamp with time zone, uuid, uuid, text, text, timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.list_audit_logs(p_limit integer DEFAULT 50, p_after_timestamp timestamp with time zone DEFAULT NULL::timestamp with time zone, p_after_log_id uuid DEFAULT NULL::uuid, p_user_id uuid DEFAULT NULL::uuid, p_action text DEFAULT NULL::text, p_resource_type text DEFAULT NULL::text, p_since timestamp with time zone DEFAULT NULL::timestamp with time zone, p_until timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS SETOF api.audit_logs
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_sort TO 'off'
    SET enable_bitmapscan TO 'off'
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_below_at timestamptz;
  v_below_id uuid;
  v_since timestamptz := coalesce(p_since, '-infinity');
  v_limit integer := least(greatest(coalesce(p_limit, 50), 1), 100);
begin
  select bound_at, bound_id into v_below_at, v_below_id
  from core.page_upper_bound(p_after_timestamp, p_after_log_id, p_until);
  -- action and resource_type have no index; they filter the rows the scan reads.
  if p_user_id is null then
    return query
      select * from api.audit_logs a
      where a.tenant_id = v_tenant_id
        and (a."timestamp", a.log_id) < (v_below_at, v_below_id) and a."timestamp" >= v_since
        and (p_action is null or a.action = p_action)
        and (p_resource_type is null or a.resource_type = p_resource_type)
      order by a."timestamp" desc, a.log_id desc
      limit v_limit;
  else
    return query
      select * from api.audit_logs a
      where a.tenant_id = v_tenant_id and a.user_id = p_user_id
        and (a."timestamp", a.log_id) < (v_below_at, v_below_id) and a."timestamp" >= v_since
        and (p_action is null or a.action = p_action)
        and (p_resource_type is null or a.resource_type = p_resource_type)
      order by a."timestamp" desc, a.log_id desc
      limit v_limit;
  end if;
end
$$;


--
-- Name: FUNCTION list_audit_logs(p_limit integer, p_after_timestamp timestamp with time zone, p_after_log_id uuid, p_user_id uuid, p_action text, p_resource_type text, p_since timestamp with time zone, p_until timestamp with time zone); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.list_audit_logs(p_limit integer, p_after_timestamp timestamp with time zone, p_after_log_id uuid, p_user_id uuid, p_action text, p_resource_type text, p_since timestamp with time zone, p_until timestamp with time zone) IS 'Audit entries of the current tenant, newest first, keyset-paginated after ("timestamp", log_id); since inclusive, until exclusive';


--
-- Name: list_documents(integer, timestamp with time zone, uuid, uuid, timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.list_documents(p_limit integer DEFAULT 20, p_after_created_at timestamp with time zone DEFAULT NULL::timestamp with time zone, p_after_document_id uuid DEFAULT NULL::uuid, p_user_id uuid DEFAULT NULL::uuid, p_created_after timestamp with time zone DEFAULT NULL::timestamp with time zone, p_created_before timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS SETOF api.documents
    LANGUAGE plpgsql STABLE
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_sort TO 'off'
    SET enable_bitmapscan TO 'off'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_below_at timestamptz;
  v_below_id uuid;
  v_from timestamptz := coalesce(p_created_after, '-infinity');
  v_limit integer := least(greatest(coalesce(p_limit, 20), 1), 100);
begin
  select bound_at, bound_id into v_below_at, v_below_id
  from core.page_upper_bound(p_after_created_at, p_after_document_id, p_created_before);
  if p_user_id is null then
    return query
      select * from api.documents d
      where d.tenant_id = v_tenant_id
        and (d.created_at, d.document_id) < (v_below_at, v_below_id) and d.created_at >= v_from
      order by d.created_at desc, d.document_id desc
      limit v_limit;
  else
    return query
      select * from api.documents d
      where d.tenant_id = v_tenant_id and d.user_id = p_user_id
        and (d.created_at, d.document_id) < (v_below_at, v_below_id) and d.created_at >= v_from
      order by d.created_at desc, d.document_id desc
      limit v_limit;
  end if;
end
$$;


--
-- Name: FUNCTION list_documents(p_limit integer, p_after_created_at timestamp with time zone, p_after_document_id uuid, p_user_id uuid, p_created_after timestamp with time zone, p_created_before timestamp with time zone); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.list_documents(p_limit integer, p_after_created_at timestamp with time zone, p_after_document_id uuid, p_user_id uuid, p_created_after timestamp with time zone, p_created_before timestamp with time zone) IS 'Documents of the current tenant, newest first, keyset-paginated after (created_at, document_id); created_after inclusive, created_before exclusive';


--
-- Name: list_users(integer, timestamp with time zone, uuid); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.list_users(p_limit integer DEFAULT 20, p_after_created_at timestamp with time zone DEFAULT NULL::timestamp with time zone, p_after_user_id uuid DEFAULT NULL::uuid) RETURNS SETOF api.users
    LANGUAGE plpgsql STABLE
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_sort TO 'off'
    SET enable_bitmapscan TO 'off'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_below_at timestamptz;
  v_below_id uuid;
begin
  select bound_at, bound_id into v_below_at, v_below_id
  from core.page_upper_bound(p_after_created_at, p_after_user_id, null);
  return query
    select * from api.users u
    where u.tenant_id = v_tenant_id and (u.created_at, u.user_id) < (v_below_at, v_below_id)
    order by u.created_at desc, u.user_id desc
    limit least(greatest(coalesce(p_limit, 20), 1), 100);
end
$$;


--
-- Name: FUNCTION list_users(p_limit integer, p_after_created_at timestamp with time zone, p_after_user_id uuid); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.list_users(p_limit integer, p_after_created_at timestamp with time zone, p_after_user_id uuid) IS 'Users of the current tenant, newest first, keyset-paginated after (created_at, user_id)';


--
-- Name: request_approval(text, jsonb); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.request_approval(p_operation text, p_payload jsonb) RETURNS TABLE(approval jsonb, key text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_context record;
  v_approval_id uuid;
  v_secret text;
begin
  perform core.carry_context_to_workers();
  select c.tenant_id, c.api_key_id, c.user_id into v_context from core.request_context c;
  if v_context.tenant_id is null or not core.key_is_active(v_context.tenant_id, v_context.api_key_id) then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  if p_operation not in ('create_api_key', 'update_tenant_config', 'delete_user', 'update_user_role')
     or jsonb_typeof(p_payload) is distinct from 'object' then
    raise exception 'no such operation to approve' using errcode = 'PT422';
  end if;
  if not (core.needs_second_person(p_operation, p_payload) and core.two_people_required(v_context.tenant_id)) then
    return;
  end if;
  -- The requester may make the change itself, as far as it can be told
  -- now (the approval checks again, under the approver's context): a
  -- request nobody could carry out is refused, not queued.
  perform core.check_change_request(v_context.tenant_id, v_context.api_key_id, p_operation, p_payload);
  -- A key asked for gets its secret now, shown to the requester alone: the
  -- approver, who sees only its hash's request, could otherwise act as the
  -- requester's key.
  if p_operation = 'create_api_key' then
    v_secret := 'tnk_' || rtrim(translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/', '-_'), '=');
  end if;
  insert into core.approval_requests
    (tenant_id, operation, payload, requested_by_key_id, requested_by_user_id, key_hash, key_prefix)
  values (v_context.tenant_id, p_operation, p_payload, v_context.api_key_id, v_context.user_id,
    encode(sha256(convert_to(v_secret, 'UTF8')), 'hex'), left(v_secret, 12))
  returning approval_id into v_approval_id;
  return query select to_jsonb(a), v_secret from api.approvals a
    where a.tenant_id = v_context.tenant_id and a.approval_id = v_approval_id;
end
$$;


--
-- Name: FUNCTION request_approval(p_operation text, p_payload jsonb); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.request_approval(p_operation text, p_payload jsonb) IS 'Records a pending request for a change two-person approval holds back, and returns it (with a requested key''s secret, shown only here); returns nothing when the change needs no approval';


--
-- Name: revoke_api_key(uuid); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.revoke_api_key(p_key_id uuid) RETURNS SETOF api.api_keys
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_caller record;
  v_target record;
begin
  perform core.carry_context_to_workers();
  select c.tenant_id, c.permissions, c.user_role, c.api_key_id into v_caller from core.request_context c;
  if v_caller.tenant_id is null then
    return;
  end if;
  -- The context was signed up to 30 s ago; the key may have been revoked
  -- since, and a revoked key revokes nothing.
  if not exists (select from core.tenant_api_keys k
                 where k.tenant_id = v_caller.tenant_id and k.key_id = v_caller.api_key_id
                   and k.revoked_at is null and (k.expires_at is null or k.expires_at > now())) then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  if not 'keys:write' = any (v_caller.permissions) then
    raise exception 'the API key lacks the permission keys:write' using errcode = 'PT403';
  end if;
  select k.permissions, u.role into v_target
  from core.tenant_api_keys k
  left join core.users u on u.tenant_id = k.tenant_id and u.user_id = k.user_id
  where k.tenant_id = v_caller.tenant_id and k.key_id = p_key_id;
  if not found then
    return;
  end if;
  if not core.effective_permissions(v_target.permissions, null) <@ v_caller.permissions then
    raise exception 'a key can only revoke keys whose permissions it holds itself' using errcode = 'PT403';
  end if;
  if core.role_rank(v_target.role) > core.rank_of_caller(v_caller.user_role, v_caller.permissions) then
    raise exception 'a key cannot revoke keys of a user whose role is above its own' using errcode = 'PT403';
  end if;
  perform core.revoke_keys(v_caller.tenant_id, array[p_key_id]);
  return query
    select k.key_id, k.tenant_id, k.key_prefix, k.name, k.permissions, k.user_id, k.expires_at, k.revoked_at,
           s.last_used_at, k.created_at, k.updated_at, k.issued_by_key_id
    from core.tenant_api_keys k
    left join core.api_key_usage s on s.tenant_id = k.tenant_id and s.key_id = k.key_id
    where k.tenant_id = v_caller.tenant_id and k.key_id = p_key_id;
end
$$;


--
-- Name: FUNCTION revoke_api_key(p_key_id uuid); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.revoke_api_key(p_key_id uuid) IS 'Revokes a key of the current tenant within the caller''s permissions and role, and every key it issued; no row when unknown';


--
-- Name: save_idempotent_response(text, integer, jsonb); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  perform core.carry_context_to_workers();
  update core.idempotency_keys
  set response_status = p_status, response_body = p_body
  where tenant_id = v_tenant_id and idempotency_key = p_idempotency_key;
end
$$;


--
-- Name: FUNCTION save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb) IS 'Stores the response of the request that claimed an Idempotency-Key, in the same transaction as its write';


--
-- Name: schema_version(); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.schema_version() RETURNS text
    LANGUAGE sql STABLE
    AS $$ select max(version) from public.schema_migrations $$;


--
-- Name: FUNCTION schema_version(); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.schema_version() IS 'Newest applied dbmate migration, for readiness checks';


--
-- Name: touch_api_key(text); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.touch_api_key(p_key_hash text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_claim record;
begin
  perform core.carry_context_to_workers();
  select h.tenant_id, h.key_id into v_claim from core.api_key_hashes h where h.key_hash = p_key_hash;
  if not found then
    return;
  end if;
  -- The row is taken first, if no one holds it, then changed: each
  -- statement names the tenant, so Citus sends each to its shard alone.
  perform from core.api_key_usage s
  where s.tenant_id = v_claim.tenant_id and s.key_id = v_claim.key_id
    and (s.last_used_at is null or s.last_used_at < now() - interval '1 minute')
  for update skip locked;
  if found then
    update core.api_key_usage u
    set last_used_at = now()
    where u.tenant_id = v_claim.tenant_id and u.key_id = v_claim.key_id;
  end if;
end
$$;


--
-- Name: FUNCTION touch_api_key(p_key_hash text); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.touch_api_key(p_key_hash text) IS 'Sets last_used_at of the key with this hash, at most once a minute';


--
-- Name: update_document(uuid, text, text, jsonb); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.update_document(p_document_id uuid, p_title text DEFAULT NULL::text, p_content_hash text DEFAULT NULL::text, p_metadata jsonb DEFAULT NULL::jsonb) RETURNS SETOF api.documents
    LANGUAGE plpgsql
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
begin
  return query
    update core.documents
    set title = coalesce(p_title, title),
        content_hash = coalesce(p_content_hash, content_hash),
        metadata = coalesce(p_metadata, metadata)
    where tenant_id = v_tenant_id and document_id = p_document_id
    returning document_id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at;
  if not found and exists (select 1 from core.documents d
                           where d.tenant_id = v_tenant_id and d.document_id = p_document_id) then
    raise exception 'a key of a member changes only the documents its user authors' using errcode = 'PT403';
  end if;
end
$$;


--
-- Name: FUNCTION update_document(p_document_id uuid, p_title text, p_content_hash text, p_metadata jsonb); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.update_document(p_document_id uuid, p_title text, p_content_hash text, p_metadata jsonb) IS 'Changes the given fields of a document of the current tenant (NULL keeps a field); no row when unknown';


--
-- Name: update_tenant_config(jsonb); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.update_tenant_config(p_settings_patch jsonb) RETURNS SETOF api.tenant_config
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_error text := core.settings_error(p_settings_patch);
  -- (Read first: Citus sends a statement to the tenant's shard alone only
  -- when it names the tenant as a value, not through a subquery.)
  v_tenant_id uuid := core.current_tenant_id();
begin
  perform core.carry_context_to_workers();
  if v_error is not null then
    raise exception '%', v_error using errcode = 'PT422';
  end if;
  -- A JSON merge patch of the top level: keys set to null are removed;
  -- nulls nested inside a value are kept as sent.
  return query
    update core.tenant_configs c
    set settings = (c.settings || p_settings_patch)
      - array(select e.key from jsonb_each(p_settings_patch) as e where e.value = 'null'::jsonb)
    where c.tenant_id = v_tenant_id
    returning c.tenant_id, c.template_id, c.settings, c.created_at, c.updated_at;
end
$$;


--
-- Name: FUNCTION update_tenant_config(p_settings_patch jsonb); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.update_tenant_config(p_settings_patch jsonb) IS 'Merges a JSON object into the current tenant''s settings; a key set to null is removed';


--
-- Name: update_user(uuid, text, text); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.update_user(p_user_id uuid, p_email text DEFAULT NULL::text, p_role text DEFAULT NULL::text) RETURNS SETOF api.users
    LANGUAGE plpgsql
    AS $$
declare
  v_tenant_id uuid := core.current_tenant_id();
  v_user api.users;
begin
  update core.users
  set email = coalesce(p_email, email),
      role = coalesce(p_role, role)
  where tenant_id = v_tenant_id and user_id = p_user_id
  returning user_id, tenant_id, email, role, created_at, updated_at into v_user;
  if found then
    return next v_user;
  end if;
end
$$;


--
-- Name: FUNCTION update_user(p_user_id uuid, p_email text, p_role text); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.update_user(p_user_id uuid, p_email text, p_role text) IS 'Changes the given fields of a user of the current tenant (NULL keeps a field); no row when unknown';


--
-- Name: verify_audit_chain(bigint, integer, bigint, text); Type: FUNCTION; Schema: api; Owner: -
--

CREATE FUNCTION api.verify_audit_chain(p_from_seq bigint DEFAULT 1, p_max_rows integer DEFAULT 100000, p_anchor_seq bigint DEFAULT NULL::bigint, p_anchor_hash text DEFAULT NULL::text) RETURNS TABLE(verified boolean, from_seq bigint, to_seq bigint, rows_checked bigint, complete boolean, head_seq bigint, head_hash text, broken_at_seq bigint, reason text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_context record;
begin
  select c.tenant_id, c.permissions into v_context from core.request_context c;
  if 'audit:read' = any (v_context.permissions) then
    return query select * from core.verify_audit_chain(v_context.tenant_id, p_from_seq, p_max_rows, p_anchor_seq,
      decode(p_anchor_hash, 'hex'));
  end if;
end
$$;


--
-- Name: FUNCTION verify_audit_chain(p_from_seq bigint, p_max_rows integer, p_anchor_seq bigint, p_anchor_hash text); Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON FUNCTION api.verify_audit_chain(p_from_seq bigint, p_max_rows integer, p_anchor_seq bigint, p_anchor_hash text) IS 'Verifies the current tenant''s audit chain (audit:read): its head, or the first seq where it breaks and why';


--
-- Name: advance_chain_head(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.advance_chain_head() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  -- Fired at commit for each row; only a tenant's last row moves the head.
  if not exists (select from core.audit_logs a
                 where a.tenant_id = new.tenant_id and a.seq > new.seq and a."timestamp" = core.transaction_time()) then
    update core.audit_chain_heads h set seq = new.seq, hash = new.chain_hash
      where h.tenant_id = new.tenant_id and h.seq < new.seq;
  end if;
  return null;
end
$$;


--
-- Name: FUNCTION advance_chain_head(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.advance_chain_head() IS 'Trigger, deferred to commit: moves the tenant''s head to the last row its transaction chained; runs as tenancy_auditor, whoever commits';


--
-- Name: all_permissions(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.all_permissions() RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ select array['users:read', 'users:write', 'documents:read', 'documents:write', 'keys:read', 'keys:write',
                   'audit:read', 'config:read', 'config:write'] $$;


--
-- Name: FUNCTION all_permissions(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.all_permissions() IS 'Every permission a key can hold ("*" stands for all of them)';


--
-- Name: approved_now(uuid, text); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.approved_now(p_tenant_id uuid, p_operation text) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  -- (Read first: Citus plans the statement below on the worker it runs on.)
  v_transaction text := core.this_transaction();
begin
  return exists (select 1 from core.approval_requests a
                 where a.tenant_id = p_tenant_id and a.operation = p_operation and a.status = 'approved'
                   and a.executing_in = v_transaction);
end
$$;


--
-- Name: FUNCTION approved_now(p_tenant_id uuid, p_operation text); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.approved_now(p_tenant_id uuid, p_operation text) IS 'Whether this transaction is performing an approved request of that kind for the tenant';


--
-- Name: audit_export(uuid, bigint, integer, text[]); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.audit_export(p_tenant_id uuid, p_from_seq bigint, p_limit integer, p_permissions text[]) RETURNS TABLE(seq bigint, log_id uuid, tenant_id uuid, user_id uuid, api_key_id uuid, operator_id uuid, action text, resource_type text, resource_id uuid, details jsonb, details_text text, details_salt text, details_sha256 text, request_id text, client_request_id text, "timestamp" text, recorded_at text, prev_hash text, chain_hash text)
    LANGUAGE plpgsql STABLE
    AS $$
#variable_conflict use_column
declare
  v_from_seq bigint := greatest(coalesce(p_from_seq, 1), 1);
  v_limit integer := least(greatest(coalesce(p_limit, 1000), 1), 1000);
begin
  return query
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
      where a.tenant_id = p_tenant_id and a.seq >= v_from_seq
      order by a.seq
      limit v_limit
    ) a
    where a.before < 4194304
    order by a.seq;
end
$$;


--
-- Name: FUNCTION audit_export(p_tenant_id uuid, p_from_seq bigint, p_limit integer, p_permissions text[]); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.audit_export(p_tenant_id uuid, p_from_seq bigint, p_limit integer, p_permissions text[]) IS 'A tenant''s audit rows from a seq, in chain order, at most 1,000 or 4 MB of details, with what verifying them needs (times as the chain encodes them); values redacted as for these permissions (NULL: none redacted)';


--
-- Name: audit_partition_tenants(timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.audit_partition_tenants(p_from timestamp with time zone, p_to timestamp with time zone) RETURNS TABLE(tenant_id uuid, through_seq bigint, through_hash bytea, retention_days integer, floor_seq bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
#variable_conflict use_column
begin
  return query
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
    where t.tenant_id is not null;
end
$_$;


--
-- Name: FUNCTION audit_partition_tenants(p_from timestamp with time zone, p_to timestamp with time zone); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.audit_partition_tenants(p_from timestamp with time zone, p_to timestamp with time zone) IS 'Tenants with audit rows in a time range: the last seq and chain_hash of each there, its audit_retention_days (NULL: keep for ever) and its latest checkpoint''s seq';


--
-- Name: audit_record(core.audit_logs); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.audit_record(p_row core.audit_logs) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
  select convert_to(E'tenancy-audit-v1\n' || string_agg(
           case when f.value is null then '~' else octet_length(f.value) || ':' || f.value || ',' end,
           '' order by f.n), 'UTF8')
  from unnest(array[
    p_row.tenant_id::text, p_row.seq::text, p_row.log_id::text, p_row.user_id::text, p_row.api_key_id::text,
    p_row.operator_id::text, p_row.action, p_row.resource_type, p_row.resource_id::text,
    encode(p_row.details_sha256, 'hex'), p_row.request_id, p_row.client_request_id,
    core.audit_time(p_row."timestamp"), core.audit_time(p_row.recorded_at)]) with ordinality as f (value, n)
$$;


--
-- Name: FUNCTION audit_record(p_row core.audit_logs); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.audit_record(p_row core.audit_logs) IS 'Canonical record of an audit row, which its chain_hash covers (format: migration 20261201000900)';


--
-- Name: audit_time(timestamp with time zone); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.audit_time(p_at timestamp with time zone) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
  select to_char(p_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
         || case when p_at < '0001-01-01 00:00:00+00' then ' BC' else '' end
$$;


--
-- Name: FUNCTION audit_time(p_at timestamp with time zone); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.audit_time(p_at timestamp with time zone) IS 'A time as the chain encodes it: UTC, microseconds, YYYY-MM-DDTHH:MM:SS.ffffffZ, and " BC" before year 1';


--
-- Name: capped_expiry(uuid, timestamp with time zone); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.capped_expiry(p_tenant_id uuid, p_expires_at timestamp with time zone) RETURNS timestamp with time zone
    LANGUAGE plpgsql STABLE
    AS $_$
declare
  v_setting jsonb;
  v_cap timestamptz;
begin
  select c.settings -> 'api_key_max_lifetime_days' into v_setting
  from core.tenant_configs c where c.tenant_id = p_tenant_id;
  if v_setting is null or v_setting = 'null'::jsonb then
    return p_expires_at;
  end if;
  if jsonb_typeof(v_setting) <> 'number' or v_setting::text !~ '^[1-9][0-9]{0,4}$' or v_setting::text::int > 36500 then
    raise exception 'the tenant''s api_key_max_lifetime_days is not a whole number of days from 1 to 36,500; no key is issued until it is'
      using errcode = 'PT422';
  end if;
  v_cap := now() + make_interval(days => v_setting::text::int);
  if p_expires_at > v_cap then
    raise exception 'the key would outlive the tenant''s api_key_max_lifetime_days of % days; the latest expiry allowed is %',
      v_setting, to_char(v_cap at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
      using errcode = 'PT422';
  end if;
  return coalesce(p_expires_at, v_cap);
end
$_$;


--
-- Name: FUNCTION capped_expiry(p_tenant_id uuid, p_expires_at timestamp with time zone); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.capped_expiry(p_tenant_id uuid, p_expires_at timestamp with time zone) IS 'The expiry a new key of this tenant gets: the one asked for, or the cap of api_key_max_lifetime_days when none was asked; refuses one beyond the cap';


--
-- Name: carry_context_to_workers(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.carry_context_to_workers() RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  -- Without Citus loaded there is no other node (and no such setting).
  if current_setting('citus.propagate_set_commands', true) is null or not core.on_citus() then
    return;
  end if;
  perform set_config('citus.propagate_set_commands', 'local', true);
  execute format('set local app.context = %L', coalesce(current_setting('app.context', true), ''));
end
$$;


--
-- Name: FUNCTION carry_context_to_workers(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.carry_context_to_workers() IS 'On Citus, passes the coordinator''s request context on to every node of the transaction; on one server, nothing';


--
-- Name: chain_audit_row(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.chain_audit_row() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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
$$;


--
-- Name: FUNCTION chain_audit_row(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.chain_audit_row() IS 'Trigger: gives a new audit row its tenant''s next seq and its chain hash, holding the tenant''s head locked until commit';


--
-- Name: check_change_request(uuid, uuid, text, jsonb); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.check_change_request(p_tenant_id uuid, p_key_id uuid, p_operation text, p_payload jsonb) RETURNS void
    LANGUAGE plpgsql STABLE
    AS $$
declare
  v_key record;
  v_rank integer;
  v_target text;
begin
  select k.user_id, u.role, core.effective_permissions(k.permissions, u.role) as permissions into v_key
  from core.tenant_api_keys k left join core.users u on u.tenant_id = k.tenant_id and u.user_id = k.user_id
  where k.tenant_id = p_tenant_id and k.key_id = p_key_id;
  v_rank := core.rank_of_caller(v_key.role, v_key.permissions);
  if p_operation = 'update_tenant_config' then
    if not 'config:write' = any (v_key.permissions) then
      raise exception 'the API key lacks the permission config:write' using errcode = 'PT403';
    end if;
    if jsonb_typeof(p_payload -> 'settings') is distinct from 'object' then
      raise exception 'a configuration change names its settings' using errcode = 'PT422';
    end if;
    if core.settings_error(p_payload -> 'settings') is not null then
      raise exception '%', core.settings_error(p_payload -> 'settings') using errcode = 'PT422';
    end if;
  elsif p_operation = 'create_api_key' then
    if coalesce(char_length(p_payload ->> 'name'), 0) not between 1 and 200 then
      raise exception 'a key has a name of 1 to 200 characters' using errcode = 'PT422';
    end if;
    if jsonb_typeof(p_payload -> 'permissions') is distinct from 'array'
       or exists (select from jsonb_array_elements(p_payload -> 'permissions') e
                  where jsonb_typeof(e) <> 'string' or not (e #>> '{}') = any (core.all_permissions() || '*'::text)) then
      raise exception 'a key''s permissions are a list of known permissions' using errcode = 'PT422';
    end if;
    perform core.check_key_issue(p_tenant_id, p_key_id,
      array(select jsonb_array_elements_text(p_payload -> 'permissions')),
      (p_payload ->> 'user_id')::uuid, (p_payload ->> 'expires_at')::timestamptz);
    if p_payload ? 'user_id' and not exists (select from core.users u
                                             where u.tenant_id = p_tenant_id and u.user_id::text = p_payload ->> 'user_id') then
      raise exception 'a referenced user does not exist in this tenant' using errcode = 'P0002';
    end if;
  else
    if not 'users:write' = any (v_key.permissions) then
      raise exception 'the API key lacks the permission users:write' using errcode = 'PT403';
    end if;
    if p_operation = 'update_user_role'
       and not coalesce((p_payload ->> 'role') = any (array['tenant_admin', 'member', 'viewer']), false) then
      raise exception 'a role is tenant_admin, member or viewer' using errcode = 'PT422';
    end if;
    select u.role into v_target from core.users u where u.tenant_id = p_tenant_id and u.user_id::text = p_payload ->> 'user_id';
    if not found then
      raise exception 'no user with that id' using errcode = 'P0002';
    end if;
    if core.role_rank(v_target) > v_rank
       or (p_operation = 'update_user_role'
           and (v_rank < core.role_rank('tenant_admin') or core.role_rank(p_payload ->> 'role') > v_rank)) then
      raise exception 'a key cannot change or remove a user above its own role, and only an administrator changes roles'
        using errcode = 'PT403';
    end if;
  end if;
end
$$;


--
-- Name: FUNCTION check_change_request(p_tenant_id uuid, p_key_id uuid, p_operation text, p_payload jsonb); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.check_change_request(p_tenant_id uuid, p_key_id uuid, p_operation text, p_payload jsonb) IS 'Refuses a request for a change the requesting key could not make itself';


--
-- Name: check_domain_claim(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.check_domain_claim() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  if tg_op in ('UPDATE', 'DELETE') and old.domain is not null
     and old.domain is distinct from (case when tg_op = 'UPDATE' then new.domain end)
     and exists (select from core.tenant_domains d where d.domain = old.domain and d.tenant_id = old.tenant_id) then
    raise exception 'the domain % is still claimed by its tenant', old.domain
      using errcode = 'integrity_constraint_violation',
            hint = 'delete its row in core.tenant_domains in the same transaction';
  end if;
  if tg_op in ('INSERT', 'UPDATE') and new.domain is not null
     and not exists (select from core.tenant_domains d where d.domain = new.domain and d.tenant_id = new.tenant_id) then
    raise exception 'the domain % is not claimed by its tenant', new.domain
      using errcode = 'integrity_constraint_violation',
            hint = 'insert (domain, tenant_id) into core.tenant_domains first, in the same transaction';
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end
$$;


--
-- Name: FUNCTION check_domain_claim(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.check_domain_claim() IS 'Trigger: a tenant''s domain is the one it claimed in core.tenant_domains, and a domain it gives up is claimed no more';


--
-- Name: check_key_issue(uuid, uuid, text[], uuid, timestamp with time zone); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.check_key_issue(p_tenant_id uuid, p_issuer_key_id uuid, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone) RETURNS TABLE(key_id uuid, user_id uuid, expires_at timestamp with time zone)
    LANGUAGE plpgsql STABLE
    AS $$
#variable_conflict use_column
declare
  v_issuer record;
begin
  select k.key_id, k.user_id, k.expires_at, core.effective_permissions(k.permissions, u.role) as permissions
  into v_issuer
  from core.tenant_api_keys k
  left join core.users u on u.tenant_id = k.tenant_id and u.user_id = k.user_id
  where k.tenant_id = p_tenant_id and k.key_id = p_issuer_key_id
    and k.revoked_at is null and (k.expires_at is null or k.expires_at > now());
  if not found then
    raise exception 'unknown, revoked or expired API key' using errcode = 'PT401';
  end if;
  if not 'keys:write' = any (v_issuer.permissions) then
    raise exception 'the API key lacks the permission keys:write' using errcode = 'PT403';
  end if;
  if not core.effective_permissions(coalesce(p_permissions, '{}'), null) <@ v_issuer.permissions then
    raise exception 'a key can only grant permissions it holds itself' using errcode = 'PT403';
  end if;
  if v_issuer.user_id is not null and coalesce(p_user_id, v_issuer.user_id) <> v_issuer.user_id then
    raise exception 'a key bound to a user can only issue keys bound to that user' using errcode = 'PT403';
  end if;
  if v_issuer.user_id is null and p_user_id is not null and core.role_rank(
       (select u.role from core.users u where u.tenant_id = p_tenant_id and u.user_id = p_user_id))
     > core.rank_of_caller(null, v_issuer.permissions) then
    raise exception 'a key cannot issue keys for a user whose role is above its own' using errcode = 'PT403';
  end if;
  if v_issuer.expires_at is not null and coalesce(p_expires_at, v_issuer.expires_at) > v_issuer.expires_at then
    raise exception 'a key that expires can only issue keys that expire no later' using errcode = 'PT403';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = 'check_violation';
  end if;
  return query select v_issuer.key_id, v_issuer.user_id, v_issuer.expires_at;
end
$$;


--
-- Name: FUNCTION check_key_issue(p_tenant_id uuid, p_issuer_key_id uuid, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.check_key_issue(p_tenant_id uuid, p_issuer_key_id uuid, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone) IS 'Refuses a key the issuing key may not issue (its permissions, user, role and expiry); returns the issuer';


--
-- Name: context_mac(text, bytea); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.context_mac(p_payload text, p_secret bytea) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL RESTRICTED
    AS $$
  select extensions.hmac(
    pg_catalog.convert_to(p_payload, 'UTF8')
      operator(pg_catalog.||) coalesce(pg_catalog.convert_to(core.distributed_transaction(), 'UTF8'),
        pg_catalog.int4send(pg_catalog.pg_backend_pid())
          operator(pg_catalog.||) pg_catalog.timestamptz_send(pg_catalog.transaction_timestamp())),
    p_secret, 'sha256')
$$;


--
-- Name: FUNCTION context_mac(p_payload text, p_secret bytea); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.context_mac(p_payload text, p_secret bytea) IS 'HMAC-SHA256 of a context payload bound to the current backend and transaction start';


--
-- Name: context_tenant_id(text); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.context_tenant_id(p_permission text) RETURNS uuid
    LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  return (select c.tenant_id from core.request_context c where p_permission = any (c.permissions));
end
$$;


--
-- Name: FUNCTION context_tenant_id(p_permission text); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.context_tenant_id(p_permission text) IS 'The verified context''s tenant when its key holds the permission; a policy''s read on Citus, which takes no sublink';


--
-- Name: context_user_id(text); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.context_user_id(p_role text) RETURNS uuid
    LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  return (select c.user_id from core.request_context c where p_role is null or c.user_role = p_role);
end
$$;


--
-- Name: FUNCTION context_user_id(p_role text); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.context_user_id(p_role text) IS 'The verified context''s user, when of the role given (NULL: any); a policy''s read on Citus, which takes no sublink';


--
-- Name: context_verifies(text); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.context_verifies(p_signed text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
      -- A Citus worker has no such sequence: outside a distributed
      -- transaction (a session of its own there) nothing verifies.
      when undefined_table then
        return false;
    end;
  end if;
  return encode(core.context_mac(left(p_signed, -65) || '|' || v_nonce,
                                 (select k.secret from core.context_signing_key k)), 'hex') = right(p_signed, 64);
end
$$;


--
-- Name: FUNCTION context_verifies(p_signed text); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.context_verifies(p_signed text) IS 'Whether a context carries the MAC of this backend, transaction and the number this session signed last; only yes or no';


--
-- Name: create_audit_partition(timestamp with time zone); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.create_audit_partition(p_month timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET "TimeZone" TO 'UTC'
    SET "DateStyle" TO 'ISO, MDY'
    SET default_tablespace TO ''
    SET default_table_access_method TO 'heap'
    SET "citus.enable_unsafe_triggers" TO 'on'
    SET "citus.enable_ddl_propagation" TO 'on'
    SET "citus.enable_metadata_sync" TO 'on'
    SET "citus.create_object_propagation" TO 'immediate'
    SET "citus.propagate_set_commands" TO 'none'
    SET row_security TO 'on'
    AS $$
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


--
-- Name: FUNCTION create_audit_partition(p_month timestamp with time zone); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.create_audit_partition(p_month timestamp with time zone) IS 'Creates the partition of core.audit_logs for the month (UTC) of a time, unless it exists; returns its name, or NULL';


--
-- Name: create_key_usage(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.create_key_usage() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
begin
  insert into core.api_key_usage (tenant_id, key_id) values (new.tenant_id, new.key_id);
  return null;
end
$$;


--
-- Name: FUNCTION create_key_usage(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.create_key_usage() IS 'Trigger: creates the usage row of a new API key';


--
-- Name: create_tenant_usage(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.create_tenant_usage() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  insert into core.tenant_usage (tenant_id) values (new.tenant_id) on conflict (tenant_id) do nothing;
  insert into core.request_windows (tenant_id, window_start, leased) values (new.tenant_id, '-infinity', 0)
  on conflict (tenant_id) do nothing;
  return null;
end
$$;


--
-- Name: FUNCTION create_tenant_usage(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.create_tenant_usage() IS 'Trigger: gives a new tenant its usage counts, all zero, and its row of leased requests';


--
-- Name: current_api_key_id(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.current_api_key_id() RETURNS uuid
    LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
    AS $$
begin
  return (select c.api_key_id from core.request_context c);
end
$$;


--
-- Name: FUNCTION current_api_key_id(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.current_api_key_id() IS 'API key of the verified request context; NULL without one';


--
-- Name: current_operator_id(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.current_operator_id() RETURNS uuid
    LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
    AS $$
begin
  -- The context was signed up to 30 s ago; an operator revoked since is no
  -- operator any more.
  return (select c.operator_id from core.request_context c
          where exists (select from core.platform_operators o
                        where o.operator_id = c.operator_id and o.revoked_at is null));
end
$$;


--
-- Name: FUNCTION current_operator_id(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.current_operator_id() IS 'Platform operator of the verified request context; NULL outside platform requests';


--
-- Name: decide_as_writer(uuid, uuid, boolean, uuid, uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.decide_as_writer(p_tenant_id uuid, p_approval_id uuid, p_approve boolean, p_decided_by_key_id uuid, p_decided_by_user_id uuid) RETURNS TABLE(approval jsonb, result jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  perform core.carry_context_to_workers();
  return query select d.approval, d.result
    from core.decide_request(p_tenant_id, p_approval_id, p_approve, p_decided_by_key_id, p_decided_by_user_id) d;
end
$$;


--
-- Name: FUNCTION decide_as_writer(p_tenant_id uuid, p_approval_id uuid, p_approve boolean, p_decided_by_key_id uuid, p_decided_by_user_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.decide_as_writer(p_tenant_id uuid, p_approval_id uuid, p_approve boolean, p_decided_by_key_id uuid, p_decided_by_user_id uuid) IS 'core.decide_request as tenancy_writer, the role that changes the configuration and deletes users (api.decide_approval''s alone)';


--
-- Name: decide_request(uuid, uuid, boolean, uuid, uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.decide_request(p_tenant_id uuid, p_approval_id uuid, p_approve boolean, p_decided_by_key_id uuid, p_decided_by_user_id uuid) RETURNS TABLE(approval jsonb, result jsonb)
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  -- The clock, not the transaction's start: a request expires while a
  -- transaction waits to decide it.
  v_now timestamptz := clock_timestamp();
  v_executing_in text := case when p_approve then core.this_transaction() end;
  v_request core.approval_requests;
  v_user core.users;
  v_result jsonb;
begin
  -- Only a pending request is decided: the update waits for a concurrent
  -- decision of it and then finds it decided.
  update core.approval_requests a
  set status = case when p_approve then 'approved' else 'rejected' end,
      decided_by_key_id = p_decided_by_key_id, decided_by_user_id = p_decided_by_user_id, decided_at = v_now,
      executing_in = v_executing_in,
      -- Decided, the request needs the key's hash no more (once it is issued).
      key_hash = case when p_approve then a.key_hash end
  where a.tenant_id = p_tenant_id and a.approval_id = p_approval_id and a.status = 'pending' and a.expires_at > v_now
  returning a.* into v_request;
  if not found then
    raise exception 'the request was decided meanwhile, or has expired' using errcode = 'PT409';
  end if;
  if p_approve then
    if v_request.operation = 'create_api_key' then
      select to_jsonb(k) - 'key' into v_result from core.issue_key_as(v_request.tenant_id, v_request.requested_by_key_id,
        v_request.payload ->> 'name',
        array(select jsonb_array_elements_text(v_request.payload -> 'permissions')),
        (v_request.payload ->> 'user_id')::uuid, (v_request.payload ->> 'expires_at')::timestamptz,
        v_request.key_hash, v_request.key_prefix) k;
    elsif v_request.operation = 'update_tenant_config' then
      select to_jsonb(c) into v_result from api.update_tenant_config(v_request.payload -> 'settings') c;
    elsif v_request.operation = 'delete_user' then
      select to_jsonb(u) into v_result from api.delete_user((v_request.payload ->> 'user_id')::uuid) u;
    else
      -- (The row made JSON after the update: Citus takes only immutable
      -- functions in its RETURNING.)
      update core.users u set role = v_request.payload ->> 'role', email = coalesce(v_request.payload ->> 'email', u.email)
      where u.tenant_id = v_request.tenant_id and u.user_id = (v_request.payload ->> 'user_id')::uuid
      returning u.* into v_user;
      if found then
        v_result := jsonb_build_object('user_id', v_user.user_id, 'tenant_id', v_user.tenant_id, 'email', v_user.email,
          'role', v_user.role, 'created_at', v_user.created_at, 'updated_at', v_user.updated_at);
      end if;
    end if;
    if v_result is null then
      raise exception 'the change can no longer be made: its user is gone' using errcode = 'P0002';
    end if;
    update core.approval_requests a set executing_in = null, key_hash = null
    where a.tenant_id = v_request.tenant_id and a.approval_id = v_request.approval_id;
    -- (Its policies read the context: one that ended during the change
    -- would leave the mark, were it not refused.)
    if not found then
      raise exception 'the request context ended during the decision' using errcode = 'PT401';
    end if;
  end if;
  return query
    select to_jsonb(a), v_result from api.approvals a
    where a.tenant_id = v_request.tenant_id and a.approval_id = v_request.approval_id;
end
$$;


--
-- Name: FUNCTION decide_request(p_tenant_id uuid, p_approval_id uuid, p_approve boolean, p_decided_by_key_id uuid, p_decided_by_user_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.decide_request(p_tenant_id uuid, p_approval_id uuid, p_approve boolean, p_decided_by_key_id uuid, p_decided_by_user_id uuid) IS 'Approves (making the change) or rejects a pending request as its caller, once api.decide_approval has checked the decider; PT409 when no longer pending';


--
-- Name: distribute_on_citus(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.distribute_on_citus() RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_result text := core.distribute_tables_on_citus();
  v_function regprocedure;
begin
  if not core.on_citus() then
    return v_result;
  end if;
  perform core.separate_idempotency_keys_on_citus();
  for v_function in
    select p.oid::regprocedure from pg_proc p
    where 'plan_cache_mode=force_generic_plan' = any (p.proconfig)
  loop
    execute format('alter function %s set plan_cache_mode = force_custom_plan', v_function);
  end loop;
  -- Citus hides its shards from every read of pg_class, on the coordinator
  -- too, with a filter that calls relation_is_a_known_shard: a role that
  -- may not run it may not read pg_class (the service's /ready check
  -- could not). It says only whether a table is a shard.
  grant execute on function pg_catalog.relation_is_a_known_shard(regclass) to public;
  perform core.let_owner_make_shards_on_workers();
  perform core.let_reaper_see_transactions();
  perform core.keep_insert_columns_on_coordinator();
  perform core.hide_runtime_commands_on_workers();
  perform core.keep_intermediate_results_from_runtime_roles();
  return v_result;
end
$$;


--
-- Name: FUNCTION distribute_on_citus(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.distribute_on_citus() IS 'Distributes every table on Citus and plans the functions planned once for each call instead (run as a superuser on the coordinator once the workers have joined); does nothing without the citus extension';


--
-- Name: distribute_tables_on_citus(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.distribute_tables_on_citus() RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION distribute_tables_on_citus(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.distribute_tables_on_citus() IS 'The tables distributed on Citus, the first step of core.distribute_on_citus()';


--
-- Name: distributed_transaction(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.distributed_transaction() RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION distributed_transaction(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.distributed_transaction() IS 'On Citus, the distributed transaction every node taking part in it reads alike; NULL on a single server or before the transaction reaches another node';


--
-- Name: effective_permissions(text[], text); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.effective_permissions(p_permissions text[], p_role text) RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $$
declare
  v_granted text[] := case when '*' = any (p_permissions) then core.all_permissions() else p_permissions end;
  v_permission text;
  v_effective text[] := '{}';
begin
  foreach v_permission in array core.all_permissions() loop
    if (v_permission = any (v_granted) or replace(v_permission, ':read', ':write') = any (v_granted))
       and (p_role is null or v_permission = any (core.role_permissions(p_role))) then
      v_effective := v_effective || v_permission;
    end if;
  end loop;
  return v_effective;
end
$$;


--
-- Name: FUNCTION effective_permissions(p_permissions text[], p_role text); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.effective_permissions(p_permissions text[], p_role text) IS 'What a key may do: its permissions with * spelled out, X:write bringing X:read, and, when bound to a user of p_role, only what that role allows';


--
-- Name: end_audit_lock_holders(text[]); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.end_audit_lock_holders(p_modes text[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION end_audit_lock_holders(p_modes text[]); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.end_audit_lock_holders(p_modes text[]) IS 'Ends the app_user and uber_admin sessions holding core.audit_logs locked in one of these modes; returns how many';


--
-- Name: end_chain_holders(uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.end_chain_holders(p_tenant_id uuid) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_ended integer;
  v_holders bigint[];
begin
  -- On Citus the row and its lock are on a worker, which the coordinator's
  -- pgrowlocks cannot see into: the holders' transactions are found there
  -- (the row read through the tenant's context, the call pushed down with
  -- it), then their sessions ended here. (Two statements: as one, Citus
  -- pushed the ending down too.)
  if core.on_citus() then
    v_holders := array(
      select g from core.audit_chain_heads t cross join lateral unnest(core.row_lock_holders(t.tableoid, t.ctid)) g
      where t.tenant_id = p_tenant_id);
    return core.end_distributed_holders(v_holders);
  end if;
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


--
-- Name: FUNCTION end_chain_holders(p_tenant_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.end_chain_holders(p_tenant_id uuid) IS 'Ends the app_user or uber_admin sessions that hold this tenant''s audit chain head locked; returns how many';


--
-- Name: end_distributed_holders(bigint[]); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.end_distributed_holders(p_transactions bigint[]) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_ended integer;
begin
  perform pg_stat_clear_snapshot();
  -- The coordinator's sessions are ended on the coordinator alone.
  -- (Nested: on one server there is no pg_dist_node to plan a query on.)
  if to_regclass('pg_catalog.pg_dist_node') is null or not core.on_coordinator() then
    return 0;
  end if;
  select count(*) filter (where pg_terminate_backend(a.pid)) into v_ended
  from pg_catalog.get_all_active_transactions() t
  join pg_stat_activity a on a.pid = t.process_id
  where t.transaction_number = any (p_transactions)
    and t.initiator_node_identifier = (select n.nodeid from pg_dist_node n where n.groupid = 0)
    and a.usename in ('app_user', 'uber_admin') and a.pid <> pg_backend_pid() and a.datname = current_database();
  return v_ended;
end
$$;


--
-- Name: FUNCTION end_distributed_holders(p_transactions bigint[]); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.end_distributed_holders(p_transactions bigint[]) IS 'On Citus: ends the coordinator''s app_user and uber_admin sessions in the distributed transactions row_lock_holders names; returns how many';


--
-- Name: end_stale_transactions(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.end_stale_transactions() RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION end_stale_transactions(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.end_stale_transactions() IS 'Ends the sessions of app_user and uber_admin in this database whose transaction began more than 30 s ago (no request lives that long); returns how many';


--
-- Name: end_usage_holders(uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.end_usage_holders(p_tenant_id uuid) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_ended integer;
  v_holders bigint[];
begin
  -- On Citus the row and its lock are on a worker, which the coordinator's
  -- pgrowlocks cannot see into: the holders' transactions are found there
  -- (the row read through the tenant's context, the call pushed down with
  -- it), then their sessions ended here. (Two statements: as one, Citus
  -- pushed the ending down too.)
  if core.on_citus() then
    v_holders := array(
      select g from core.tenant_usage t cross join lateral unnest(core.row_lock_holders(t.tableoid, t.ctid)) g
      where t.tenant_id = p_tenant_id);
    return core.end_distributed_holders(v_holders);
  end if;
  perform pg_stat_clear_snapshot();
  -- pgrowlocks names the sessions holding the row's lock, except one taken
  -- inside a savepoint (released or not): its subtransaction's id maps to
  -- no session SQL can see (pid 0). Then every session that could hold it
  -- is ended: those of the service's roles that hold core.tenant_usage
  -- itself and began their transaction before that id. The service never
  -- uses savepoints, so this happens only when someone does, and a request
  -- caught with it is retried.
  select count(*) filter (where pg_terminate_backend(a.pid)) into v_ended
  from (
    select r.pids[i] as pid
    from core.tenant_usage u
    join extensions.pgrowlocks('core.tenant_usage') r on r.locked_row = u.ctid
    cross join lateral generate_subscripts(r.xids, 1) as i
    where u.tenant_id = p_tenant_id and r.pids[i] <> 0
    union
    select l.pid
    from core.tenant_usage u
    join extensions.pgrowlocks('core.tenant_usage') r on r.locked_row = u.ctid
    cross join lateral generate_subscripts(r.xids, 1) as i
    join pg_locks l on l.locktype = 'relation' and l.relation = 'core.tenant_usage'::regclass
      and l.database = (select d.oid from pg_database d where d.datname = current_database())
    join pg_stat_activity s on s.pid = l.pid
    where u.tenant_id = p_tenant_id and r.pids[i] = 0
      and s.backend_xid::text::bigint <= r.xids[i]::text::bigint
  ) holder
  join pg_stat_activity a on a.pid = holder.pid
  where a.usename in ('app_user', 'uber_admin') and a.pid <> pg_backend_pid() and a.datname = current_database();
  return v_ended;
end
$$;


--
-- Name: FUNCTION end_usage_holders(p_tenant_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.end_usage_holders(p_tenant_id uuid) IS 'Ends the app_user or uber_admin sessions that hold this tenant''s usage counts locked; returns how many';


--
-- Name: end_window_holders(uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.end_window_holders(p_tenant_id uuid) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_ended integer;
  v_holders bigint[];
begin
  -- On Citus the row and its lock are on a worker, which the coordinator's
  -- pgrowlocks cannot see into: the holders' transactions are found there
  -- (the row read through the tenant's context, the call pushed down with
  -- it), then their sessions ended here. (Two statements: as one, Citus
  -- pushed the ending down too.)
  if core.on_citus() then
    v_holders := array(
      select g from core.request_windows t cross join lateral unnest(core.row_lock_holders(t.tableoid, t.ctid)) g
      where t.tenant_id = p_tenant_id);
    return core.end_distributed_holders(v_holders);
  end if;
  perform pg_stat_clear_snapshot();
  select count(*) filter (where pg_terminate_backend(a.pid)) into v_ended
  from (
    select r.pids[i] as pid
    from core.request_windows w
    join extensions.pgrowlocks('core.request_windows') r on r.locked_row = w.ctid
    cross join lateral generate_subscripts(r.xids, 1) as i
    where w.tenant_id = p_tenant_id and r.pids[i] <> 0
    union
    select l.pid
    from core.request_windows w
    join extensions.pgrowlocks('core.request_windows') r on r.locked_row = w.ctid
    cross join lateral generate_subscripts(r.xids, 1) as i
    join pg_locks l on l.locktype = 'relation' and l.relation = 'core.request_windows'::regclass
      and l.database = (select d.oid from pg_database d where d.datname = current_database())
    join pg_stat_activity s on s.pid = l.pid
    where w.tenant_id = p_tenant_id and r.pids[i] = 0
      and s.backend_xid::text::bigint <= r.xids[i]::text::bigint
  ) holder
  join pg_stat_activity a on a.pid = holder.pid
  where a.usename in ('app_user', 'uber_admin') and a.pid <> pg_backend_pid() and a.datname = current_database();
  return v_ended;
end
$$;


--
-- Name: FUNCTION end_window_holders(p_tenant_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.end_window_holders(p_tenant_id uuid) IS 'Ends the app_user or uber_admin sessions that hold this tenant''s row of leased requests locked; returns how many';


--
-- Name: expired_audit_partitions(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.expired_audit_partitions() RETURNS TABLE(rel regclass, name text, from_time timestamp with time zone, to_time timestamp with time zone)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET "TimeZone" TO 'UTC'
    SET "DateStyle" TO 'ISO, MDY'
    AS $_$
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
$_$;


--
-- Name: FUNCTION expired_audit_partitions(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.expired_audit_partitions() IS 'The oldest audit partitions whose every row is past its tenant''s audit_retention_days, up to the first that must stay';


--
-- Name: guard_user_roles(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.guard_user_roles() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
declare
  v_context record;
  v_rank integer;
begin
  select c.tenant_id, c.user_role, c.permissions into v_context from core.request_context c;
  -- Platform operations and migrations carry no tenant context; the
  -- service's role always does.
  if v_context.tenant_id is null then
    if session_user = 'app_user' then
      raise exception 'a change to users needs a verified request context' using errcode = 'insufficient_privilege';
    end if;
    -- Nor does another role acting for a request (on a Citus worker, the
    -- role Citus connects as for a definer), but for an active operator.
    if session_user <> 'app_user' and core.session_acts_for_a_request() and not core.request_has_actor(null) then
      raise exception 'a change to users needs a verified request context' using errcode = 'insufficient_privilege';
    end if;
    return coalesce(new, old);
  end if;
  v_rank := core.rank_of_caller(v_context.user_role, v_context.permissions);
  if tg_op in ('UPDATE', 'DELETE') and core.role_rank(old.role) > v_rank then
    raise exception 'a key cannot change or remove a user whose role is above its own' using errcode = 'PT403';
  end if;
  if tg_op = 'INSERT' and core.role_rank(new.role) > v_rank then
    raise exception 'a key cannot add a user with a role above its own' using errcode = 'PT403';
  end if;
  if tg_op = 'UPDATE' and new.role is distinct from old.role then
    -- "is not distinct from": for a key bound to no user the role is NULL,
    -- and NULL = 'tenant_admin' would make the whole condition NULL.
    if not (v_context.user_role is not distinct from 'tenant_admin'
            or (v_context.user_role is null and v_context.permissions @> core.all_permissions())) then
      raise exception 'a key changes roles only when bound to a tenant_admin or holding every permission'
        using errcode = 'PT403';
    end if;
    if core.role_rank(new.role) > v_rank then
      raise exception 'a key cannot raise a user above its own role' using errcode = 'PT403';
    end if;
  end if;
  return coalesce(new, old);
end
$$;


--
-- Name: FUNCTION guard_user_roles(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.guard_user_roles() IS 'Trigger: who may add, change or remove which users, and change roles, by the role of the calling key''s user';


--
-- Name: hide_runtime_commands_on_workers(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.hide_runtime_commands_on_workers() RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  perform core.on_workers('alter role app_user set track_activities = off; '
    || 'alter role uber_admin set track_activities = off; '
    -- A session keeps what it started with: each starts again.
    || 'select pg_terminate_backend(a.pid) from pg_stat_activity a '
    || 'where a.usename in (''app_user'', ''uber_admin'') and a.pid <> pg_backend_pid()');
end
$$;


--
-- Name: FUNCTION hide_runtime_commands_on_workers(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.hide_runtime_commands_on_workers() IS 'On Citus, has the workers record no command of app_user''s and uber_admin''s sessions, where another session of the role would read the contexts Citus begins transactions with (a step of core.distribute_on_citus)';


--
-- Name: hold_for_approval(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.hold_for_approval() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_operation text;
  v_tenant_id uuid := case when tg_op = 'DELETE' then old.tenant_id else new.tenant_id end;
begin
  -- A tenant's request (a key's context) is held to the tenant's rule; an
  -- operator's, or a DBA's without a context, is not. app_user without a
  -- verified context (one that lapsed mid-statement, say) is held too.
  -- A session of another role that acts for a request (on a Citus worker,
  -- the role Citus connects as for a definer) is held too, unless it acts
  -- for an active operator.
  if not exists (select from core.request_context c where c.api_key_id is not null) then
    if not core.session_acts_for_a_request() then
      return case when tg_op = 'DELETE' then old else new end;
    end if;
    if session_user <> 'app_user' and core.request_has_actor(null) then
      return case when tg_op = 'DELETE' then old else new end;
    end if;
  end if;
  -- (Nested: PL/pgSQL would look for each field on every table's row.)
  if tg_argv[0] = 'tenant_api_keys' then
    if 'keys:write' = any (core.effective_permissions(new.permissions, null)) then
      v_operation := 'create_api_key';
    end if;
  elsif tg_argv[0] = 'tenant_configs' then
    v_operation := 'update_tenant_config';
  elsif tg_op = 'DELETE' then
    v_operation := 'delete_user';
  elsif new.role is distinct from old.role then
    v_operation := 'update_user_role';
  end if;
  if v_operation is not null and core.two_people_required(v_tenant_id)
     and not core.approved_now(v_tenant_id, v_operation) then
    raise exception 'this change needs a second person''s approval (require_two_person_approval)'
      using errcode = 'PT428';
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end
$$;


--
-- Name: FUNCTION hold_for_approval(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.hold_for_approval() IS 'Trigger: refuses a change two-person approval holds back unless it runs inside an approval (PT428)';


--
-- Name: issue_api_key(uuid, text, text[], uuid, timestamp with time zone, uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.issue_api_key(p_tenant_id uuid, p_name text, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone, p_issued_by_key_id uuid) RETURNS TABLE(key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid, expires_at timestamp with time zone, revoked_at timestamp with time zone, last_used_at timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone, issued_by_key_id uuid)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
declare
  v_secret text := 'tnk_' || rtrim(translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/', '-_'), '=');
begin
  return query
    select v_secret, k.*
    from core.register_key(p_tenant_id, encode(sha256(convert_to(v_secret, 'UTF8')), 'hex'), left(v_secret, 12),
      p_name, p_permissions, p_user_id, core.capped_expiry(p_tenant_id, p_expires_at), p_issued_by_key_id) k;
end
$$;


--
-- Name: FUNCTION issue_api_key(p_tenant_id uuid, p_name text, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone, p_issued_by_key_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.issue_api_key(p_tenant_id uuid, p_name text, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone, p_issued_by_key_id uuid) IS 'Creates an API key and returns it once, in the column key; only its hash is stored';


--
-- Name: issue_key_as(uuid, uuid, text, text[], uuid, timestamp with time zone, text, text); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.issue_key_as(p_tenant_id uuid, p_issuer_key_id uuid, p_name text, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone, p_key_hash text, p_key_prefix text) RETURNS TABLE(key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid, expires_at timestamp with time zone, revoked_at timestamp with time zone, last_used_at timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone, issued_by_key_id uuid)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
declare
  v_issuer record;
begin
  select * into v_issuer from core.check_key_issue(p_tenant_id, p_issuer_key_id, p_permissions, p_user_id, p_expires_at);
  -- The secret was made, and shown to the requester, when the key was
  -- asked for: only its hash is stored.
  return query
    select null::text, k.*
    from core.register_key(p_tenant_id, p_key_hash, p_key_prefix, p_name, p_permissions,
      coalesce(p_user_id, v_issuer.user_id),
      core.capped_expiry(p_tenant_id,
        coalesce(p_expires_at, least(v_issuer.expires_at, core.capped_expiry(p_tenant_id, null)))),
      v_issuer.key_id) k;
end
$$;


--
-- Name: FUNCTION issue_key_as(p_tenant_id uuid, p_issuer_key_id uuid, p_name text, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone, p_key_hash text, p_key_prefix text); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.issue_key_as(p_tenant_id uuid, p_issuer_key_id uuid, p_name text, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone, p_key_hash text, p_key_prefix text) IS 'Issues a key, whose secret its requester holds, as another key of the tenant would (core.check_key_issue; the cap), naming it the issuer';


--
-- Name: keep_insert_columns_on_coordinator(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.keep_insert_columns_on_coordinator() RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET "citus.multi_shard_modify_mode" TO 'sequential'
    AS $$
declare
  v_grant record;
  v_propagating text := current_setting('citus.enable_ddl_propagation');
begin
  for v_grant in
    select c.oid::regclass as rel, a.grantee::regrole as role,
           string_agg(quote_ident(att.attname), ', ' order by att.attnum) as columns
    from pg_dist_partition d
    join pg_class c on c.oid = d.logicalrelid
    join pg_attribute att on att.attrelid = c.oid and att.attnum > 0 and not att.attisdropped
    cross join lateral aclexplode(att.attacl) a
    where a.privilege_type = 'INSERT' and a.grantee <> 0
    group by 1, 2
  loop
    -- The whole table's on every node, Citus passing it on to each shard
    -- placement in this transaction (shards made here too). Citus makes a
    -- placement (a moved or split shard's too) with the coordinator's
    -- grants of its table: running core.distribute_on_citus again after
    -- moving shards grants it here.
    perform set_config('citus.enable_ddl_propagation', 'on', true);
    execute format('grant insert on table %s to %s', v_grant.rel, v_grant.role);
    -- Then on the coordinator's table alone, the columns again.
    perform set_config('citus.enable_ddl_propagation', 'off', true);
    execute format('revoke insert on table %s from %s', v_grant.rel, v_grant.role);
    execute format('grant insert (%s) on table %s to %s', v_grant.columns, v_grant.rel, v_grant.role);
  end loop;
  perform set_config('citus.enable_ddl_propagation', v_propagating, true);
end
$$;


--
-- Name: FUNCTION keep_insert_columns_on_coordinator(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.keep_insert_columns_on_coordinator() IS 'On Citus, gives each role granted INSERT on some columns of a distributed table no INSERT on the rest on the coordinator, as on one server, and INSERT on the whole of every shard placement of it, which Citus sends every column (a step of core.distribute_on_citus)';


--
-- Name: keep_intermediate_results_from_runtime_roles(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.keep_intermediate_results_from_runtime_roles() RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  perform core.on_workers(
    'revoke execute on function pg_catalog.read_intermediate_result(text, pg_catalog.citus_copy_format) from public; '
    || 'grant execute on function pg_catalog.read_intermediate_result(text, pg_catalog.citus_copy_format) '
    || 'to tenancy_owner, tenancy_auth, tenancy_writer, tenancy_auditor, tenancy_meter, tenancy_reaper');
end
$$;


--
-- Name: FUNCTION keep_intermediate_results_from_runtime_roles(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.keep_intermediate_results_from_runtime_roles() IS 'On Citus, lets only the definers'' owners read the rows Citus keeps on a worker between the commands of a transaction (a step of core.distribute_on_citus)';


--
-- Name: keep_revocation(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.keep_revocation() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
begin
  if old.revoked_at is not null and new.revoked_at is distinct from old.revoked_at then
    raise exception 'a revoked % stays revoked', coalesce(tg_argv[0], 'API key')
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end
$$;


--
-- Name: FUNCTION keep_revocation(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.keep_revocation() IS 'Trigger: refuses to clear or move revoked_at once it is set';


--
-- Name: key_is_active(uuid, uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.key_is_active(p_tenant_id uuid, p_key_id uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE
    AS $$
begin
  return exists (select 1 from core.tenant_api_keys k
                 where k.tenant_id = p_tenant_id and k.key_id = p_key_id and k.revoked_at is null
                   and (k.expires_at is null or k.expires_at > now()));
end
$$;


--
-- Name: FUNCTION key_is_active(p_tenant_id uuid, p_key_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.key_is_active(p_tenant_id uuid, p_key_id uuid) IS 'Whether the key exists, is not revoked and has not expired';


--
-- Name: key_lineage(uuid, uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.key_lineage(p_tenant_id uuid, p_key_id uuid) RETURNS SETOF uuid
    LANGUAGE plpgsql STABLE
    AS $$
begin
  return query
    with recursive lineage (key_id, issued_by) as (
      select k.key_id, k.issued_by_key_id from core.tenant_api_keys k
      where k.tenant_id = p_tenant_id and k.key_id = p_key_id
      union
      select k.key_id, k.issued_by_key_id from core.tenant_api_keys k
      join lineage l on k.key_id = l.issued_by
      where k.tenant_id = p_tenant_id
    )
    select l.key_id from lineage l;
end
$$;


--
-- Name: FUNCTION key_lineage(p_tenant_id uuid, p_key_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.key_lineage(p_tenant_id uuid, p_key_id uuid) IS 'A key and the keys that issued it, transitively';


--
-- Name: let_owner_make_shards_on_workers(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.let_owner_make_shards_on_workers() RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  -- What Citus runs on a worker to make a new partition's shards, attach
  -- them and record them (measured with Citus 13.2: refused one by one
  -- until each was granted). The recording ones by both their names:
  -- citus_internal.add_*, and citus_internal_add_* in pg_catalog, which
  -- Citus 12 calls.
  perform core.on_workers((
    select string_agg(format('grant execute on function %s to tenancy_owner', p.oid::regprocedure), '; ')
    from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
    join pg_depend d on d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
    join pg_extension e on e.oid = d.refobjid and e.extname = 'citus'
    where (n.nspname = 'pg_catalog'
           and p.proname in ('worker_apply_shard_ddl_command', 'worker_apply_inter_shard_ddl_command',
                             'worker_create_truncate_trigger', 'worker_fix_partition_shard_index_names',
                             'citus_run_local_command', 'citus_internal_add_partition_metadata',
                             'citus_internal_add_shard_metadata', 'citus_internal_add_placement_metadata',
                             'citus_internal_add_object_metadata'))
       or (n.nspname = 'citus_internal'
           and p.proname in ('add_partition_metadata', 'add_shard_metadata', 'add_placement_metadata',
                             'add_object_metadata'))));
end
$$;


--
-- Name: FUNCTION let_owner_make_shards_on_workers(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.let_owner_make_shards_on_workers() IS 'On Citus, lets tenancy_owner run on the workers the Citus functions that make a new audit partition''s shards (a step of core.distribute_on_citus)';


--
-- Name: let_reaper_see_transactions(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.let_reaper_see_transactions() RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  grant execute on function pg_catalog.get_all_active_transactions() to tenancy_reaper;
  perform core.on_workers('grant execute on function pg_catalog.get_all_active_transactions() to tenancy_reaper');
end
$$;


--
-- Name: FUNCTION let_reaper_see_transactions(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.let_reaper_see_transactions() IS 'On Citus, lets tenancy_reaper read which distributed transaction each session of every node is in (a step of core.distribute_on_citus)';


--
-- Name: maintain_audit_partitions(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.maintain_audit_partitions() RETURNS TABLE(action text, partition_name text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET "TimeZone" TO 'UTC'
    SET "DateStyle" TO 'ISO, MDY'
    SET "IntervalStyle" TO 'postgres'
    SET default_tablespace TO ''
    SET default_table_access_method TO 'heap'
    SET row_security TO 'on'
    SET lock_timeout TO '2s'
    AS $$
#variable_conflict use_column
declare
  v_month timestamptz;
  v_name text;
begin
  -- The coordinator makes them. (Any role may have Citus run this on a
  -- worker, as a call pushed down with a query of a reference table; there
  -- it would end sessions and then fail.)
  if not core.on_coordinator() then
    raise exception 'the trail''s partitions are made on the coordinator' using errcode = 'feature_not_supported';
  end if;
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


--
-- Name: FUNCTION maintain_audit_partitions(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.maintain_audit_partitions() IS 'Creates the audit partitions of this month and the next three; returns those it created and those past retention (for core.purge_audit_partitions)';


--
-- Name: meter_usage(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.meter_usage() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_kind text := tg_argv[0];
  v_tenant_id uuid := case when tg_op = 'DELETE' then old.tenant_id else new.tenant_id end;
  v_delta integer := 0;
  v_used bigint;
  v_plan core.plans;
  v_bytes integer;
begin
  if tg_op = 'INSERT' then
    v_delta := 1;
  elsif tg_op = 'DELETE' then
    v_delta := -1;
  end if;
  if v_kind = 'api_keys' then
    -- A key counts while it is not revoked.
    v_delta := case
      when tg_op = 'INSERT' and new.revoked_at is not null then 0
      when tg_op = 'DELETE' and old.revoked_at is not null then 0
      when tg_op = 'UPDATE' and old.revoked_at is null and new.revoked_at is not null then -1
      else v_delta end;
  end if;
  if v_delta > 0 or (v_kind = 'documents' and tg_op <> 'DELETE') then
    select p.* into v_plan from core.tenants t join core.plans p on p.tier = t.subscription_tier
    where t.tenant_id = v_tenant_id;
  end if;
  -- (Nested: PL/pgSQL would look for a metadata field on every table's row.)
  if v_kind = 'documents' and tg_op <> 'DELETE' then
    if tg_op = 'INSERT' or new.metadata is distinct from old.metadata then
      v_bytes := octet_length(new.metadata::text);
      if v_bytes > v_plan.max_metadata_bytes then
        raise exception 'the plan''s limit of metadata bytes per document is reached'
          using errcode = 'PTQ13',
                detail = json_build_object('quota', 'metadata_bytes', 'limit', v_plan.max_metadata_bytes,
                                           'usage', v_bytes)::text;
      end if;
    end if;
  end if;
  if v_delta = 0 then
    return null;
  end if;
  -- Writers of the tenant take turns on its counts, as on its chain head:
  -- one holding them past any request's lifetime is ended first.
  perform from core.tenant_usage u where u.tenant_id = v_tenant_id for update skip locked;
  if not found then
    perform core.end_stale_transactions();
    perform from core.tenant_usage u where u.tenant_id = v_tenant_id for update;
  end if;
  update core.tenant_usage u
  set documents = u.documents + case when v_kind = 'documents' then v_delta else 0 end,
      users = u.users + case when v_kind = 'users' then v_delta else 0 end,
      api_keys = u.api_keys + case when v_kind = 'api_keys' then v_delta else 0 end
  where u.tenant_id = v_tenant_id
  -- (A searched CASE: Citus sends a simple one to the shard mangled.)
  returning case when v_kind = 'documents' then u.documents when v_kind = 'users' then u.users else u.api_keys end
  into v_used;
  if not found then
    raise exception 'tenant % has no usage counts', v_tenant_id using errcode = 'P0002';
  end if;
  if v_delta > 0 and v_used > (case v_kind when 'documents' then v_plan.max_documents
                                            when 'users' then v_plan.max_users
                                            else v_plan.max_api_keys end) then
    raise exception 'the plan''s limit of % is reached', v_kind
      using errcode = 'PTQ09',
            detail = json_build_object('quota', v_kind,
                                       'limit', case v_kind when 'documents' then v_plan.max_documents
                                                             when 'users' then v_plan.max_users
                                                             else v_plan.max_api_keys end,
                                       'usage', v_used - 1)::text;
  end if;
  return null;
end
$$;


--
-- Name: FUNCTION meter_usage(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.meter_usage() IS 'Trigger: moves the tenant''s usage count of documents, users or unrevoked keys, and refuses a write past its plan''s limit (PTQ09) or metadata larger than it allows (PTQ13)';


--
-- Name: needs_second_person(text, jsonb); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.needs_second_person(p_operation text, p_payload jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
  select case p_operation
    when 'create_api_key' then 'keys:write' = any (core.effective_permissions(
      array(select jsonb_array_elements_text(coalesce(p_payload -> 'permissions', '[]'))), null))
    when 'update_user_role' then p_payload ? 'role'
    else p_operation in ('update_tenant_config', 'delete_user') end
$$;


--
-- Name: FUNCTION needs_second_person(p_operation text, p_payload jsonb); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.needs_second_person(p_operation text, p_payload jsonb) IS 'Whether a change is one two-person approval holds back: a key that may issue keys, a configuration change, a user''s deletion or new role';


--
-- Name: on_citus(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.on_citus() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
  select exists (
    select from pg_catalog.pg_depend d join pg_catalog.pg_extension e on e.oid = d.refobjid
    where d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
      and d.objid = pg_catalog.to_regprocedure('pg_catalog.get_current_transaction_id()')
      and d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass and d.deptype = 'e' and e.extname = 'citus')
$$;


--
-- Name: FUNCTION on_citus(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.on_citus() IS 'Whether the citus extension is installed in this database (its get_current_transaction_id, not another of that name)';


--
-- Name: on_coordinator(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.on_coordinator() RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  if to_regclass('pg_catalog.pg_dist_local_group') is null then
    return true;
  end if;
  return (select g.groupid = 0 from pg_catalog.pg_dist_local_group g);
end
$$;


--
-- Name: FUNCTION on_coordinator(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.on_coordinator() IS 'Whether this node is the Citus coordinator, or a single server: where a reference table''s triggers that write elsewhere fire';


--
-- Name: on_workers(text); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.on_workers(p_command text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION on_workers(p_command text); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.on_workers(p_command text) IS 'Runs a command on every Citus worker as the superuser, in a transaction of its own, not passed on from there';


--
-- Name: page_upper_bound(timestamp with time zone, uuid, timestamp with time zone); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.page_upper_bound(p_after_at timestamp with time zone, p_after_id uuid, p_before timestamp with time zone, OUT bound_at timestamp with time zone, OUT bound_id uuid) RETURNS record
    LANGUAGE plpgsql IMMUTABLE
    AS $$
begin
  -- No cursor and no end time: a bound above every row.
  bound_at := 'infinity';
  bound_id := 'ffffffff-ffff-ffff-ffff-ffffffffffff';
  if p_after_at is not null then
    bound_at := p_after_at;
    -- A cursor without an id means "strictly before that time".
    bound_id := coalesce(p_after_id, '00000000-0000-0000-0000-000000000000');
  end if;
  -- "Before p_before" is the bound (p_before, nil uuid); keep the lower one.
  if (p_before, '00000000-0000-0000-0000-000000000000'::uuid) < (bound_at, bound_id) then
    bound_at := p_before;
    bound_id := '00000000-0000-0000-0000-000000000000';
  end if;
end
$$;


--
-- Name: FUNCTION page_upper_bound(p_after_at timestamp with time zone, p_after_id uuid, p_before timestamp with time zone, OUT bound_at timestamp with time zone, OUT bound_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.page_upper_bound(p_after_at timestamp with time zone, p_after_id uuid, p_before timestamp with time zone, OUT bound_at timestamp with time zone, OUT bound_id uuid) IS 'Exclusive upper (time, id) bound of a newest-first page: the keyset cursor or the end time, whichever is lower; never NULL';


--
-- Name: policy_without_sublinks(text); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.policy_without_sublinks(p_expr text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION policy_without_sublinks(p_expr text); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.policy_without_sublinks(p_expr text) IS 'A policy''s expression with its reads of core.request_context as function calls, which Citus takes';


--
-- Name: purge_audit_partitions(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.purge_audit_partitions() RETURNS TABLE(action text, partition_name text)
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET "TimeZone" TO 'UTC'
    SET "DateStyle" TO 'ISO, MDY'
    SET lock_timeout TO '2s'
    AS $$
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


--
-- Name: FUNCTION purge_audit_partitions(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.purge_audit_partitions() IS 'Drops the oldest audit partitions whose every row is past its tenant''s audit_retention_days, leaving a checkpoint in each tenant''s chain; for the owner''s members only';


--
-- Name: rank_of_caller(text, text[]); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.rank_of_caller(p_user_role text, p_permissions text[]) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
  select case when p_user_role is not null then core.role_rank(p_user_role)
              when p_permissions @> core.all_permissions() then core.role_rank('tenant_admin')
              else core.role_rank('member') end
$$;


--
-- Name: FUNCTION rank_of_caller(p_user_role text, p_permissions text[]); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.rank_of_caller(p_user_role text, p_permissions text[]) IS 'Rank of the highest role a key may act on: its user''s, or for an unbound key tenant_admin with every permission, else member';


--
-- Name: record_audit(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.record_audit() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_old jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  v_new jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  v_row jsonb := coalesce(v_new, v_old);
  v_not_audited constant text[] := array['key_hash', 'token_hash', 'created_at', 'updated_at', 'last_used_at'];
  v_changed text[];
  v_context record;
  v_operator_id uuid;
  v_details jsonb;
begin
  select coalesce(array_agg(column_name order by column_name), '{}')
  into v_changed
  from jsonb_object_keys(v_row) as column_name
  where column_name <> all (v_not_audited)
    and (tg_op <> 'UPDATE' or v_old -> column_name is distinct from v_new -> column_name);

  -- No verified context (a migration, a DBA): the actor columns stay NULL.
  select c.tenant_id, c.user_id, c.api_key_id, c.request_id, c.client_request_id, c.operator_id
  into v_context
  from core.request_context c;

  -- The service's role changes a tenant's rows only under that tenant's
  -- context, so every change it makes has an actor.
  if session_user = 'app_user' and v_context.tenant_id is distinct from (v_row ->> 'tenant_id')::uuid then
    raise exception 'a change through app_user needs the verified request context of the row''s tenant'
      using errcode = 'insufficient_privilege';
  end if;

  -- The bootstrap operator, the one that created itself, is its own actor.
  v_operator_id := coalesce(v_context.operator_id,
    case when tg_argv[1] = 'platform_operators' and tg_op = 'INSERT'
              and v_new ->> 'created_by' = v_new ->> 'operator_id'
         then (v_new ->> 'operator_id')::uuid end);
  -- The platform role changes nothing, not even nothing, without a named
  -- operator who is still active now (an operator revoking itself is
  -- active until that change).
  if session_user = 'uber_admin' and not exists (
       select from core.platform_operators o
       where o.operator_id = v_operator_id
         and (o.revoked_at is null
              or (tg_argv[1] = 'platform_operators' and tg_op = 'UPDATE'
                  and (v_new ->> 'operator_id')::uuid = v_operator_id and v_old ->> 'revoked_at' is null))) then
    raise exception 'a platform change needs a named, active operator (platform.begin_request)'
      using errcode = 'PT401';
  end if;
  -- A session of another role that acts for a request (on a Citus worker,
  -- the role Citus connects as for a definer) changes rows with an actor
  -- too: the row's tenant's key, or an active operator.
  if session_user <> 'app_user' and core.session_acts_for_a_request()
     and not core.request_has_actor((v_row ->> 'tenant_id')::uuid) then
    raise exception 'a change in a session of % needs the verified context of the row''s tenant or of an active operator',
      session_user using errcode = 'insufficient_privilege';
  end if;

  -- An update that changed nothing an auditor cares about leaves no entry.
  if tg_op = 'UPDATE' and cardinality(v_changed) = 0 then
    return null;
  end if;

  -- Computed before the INSERT: Citus takes no subquery in an INSERT's VALUES.
  v_details := jsonb_build_object('changed', to_jsonb(v_changed), 'db_role', session_user)
    || case when v_old is null then '{}' else jsonb_build_object('old', (
         select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_old) where key = any (v_changed))) end
    || case when v_new is null then '{}' else jsonb_build_object('new', (
         select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(v_new) where key = any (v_changed))) end;

  insert into core.audit_logs
    (tenant_id, user_id, api_key_id, operator_id, action, resource_type, resource_id, details, request_id,
     client_request_id)
  values (
    coalesce((v_row ->> 'tenant_id')::uuid, '00000000-0000-0000-0000-000000000000'),
    v_context.user_id,
    v_context.api_key_id,
    v_operator_id,
    lower(tg_op),
    tg_argv[1],
    (v_row ->> tg_argv[0])::uuid,
    v_details,
    v_context.request_id::text,
    v_context.client_request_id
  );
  return null;
end
$$;


--
-- Name: FUNCTION record_audit(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.record_audit() IS 'Trigger: writes one audit_logs row per changed row, actor and request taken from the verified request context';


--
-- Name: record_audit_purge(uuid, bigint, bytea, text, integer); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.record_audit_purge(p_tenant_id uuid, p_through_seq bigint, p_through_hash bytea, p_partition text, p_retention_days integer) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_operator_id uuid := core.current_operator_id();
  v_details jsonb := jsonb_build_object('through_seq', p_through_seq, 'through_hash', encode(p_through_hash, 'hex'),
    'partition', p_partition, 'retention_days', p_retention_days, 'db_role', session_user);
  v_seq bigint;
begin
  insert into core.audit_logs (tenant_id, operator_id, action, resource_type, resource_id, details)
  values (p_tenant_id, v_operator_id, 'audit.purged', 'audit_logs', p_tenant_id, v_details)
  returning seq into v_seq;
  return v_seq;
end
$$;


--
-- Name: FUNCTION record_audit_purge(p_tenant_id uuid, p_through_seq bigint, p_through_hash bytea, p_partition text, p_retention_days integer); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.record_audit_purge(p_tenant_id uuid, p_through_seq bigint, p_through_hash bytea, p_partition text, p_retention_days integer) IS 'Appends the "audit.purged" row that records the last seq and hash of a tenant''s rows in a dropped partition';


--
-- Name: register_key(uuid, text, text, text, text[], uuid, timestamp with time zone, uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.register_key(p_tenant_id uuid, p_key_hash text, p_key_prefix text, p_name text, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone, p_issued_by_key_id uuid) RETURNS TABLE(key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid, expires_at timestamp with time zone, revoked_at timestamp with time zone, last_used_at timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone, issued_by_key_id uuid)
    LANGUAGE plpgsql
    AS $$
declare
  v_key_id uuid;
begin
  insert into core.tenant_api_keys
    (tenant_id, key_hash, key_prefix, name, permissions, user_id, expires_at, issued_by_key_id)
  values (p_tenant_id, p_key_hash, p_key_prefix, p_name, coalesce(p_permissions, '{}'), p_user_id, p_expires_at,
    p_issued_by_key_id)
  returning core.tenant_api_keys.key_id into v_key_id;
  -- A hash another key holds fails here, as a unique violation.
  insert into core.api_key_hashes (key_hash, tenant_id, key_id) values (p_key_hash, p_tenant_id, v_key_id);
  return query
    select k.key_id, k.tenant_id, k.key_prefix, k.name, k.permissions, k.user_id, k.expires_at, k.revoked_at,
           null::timestamptz, k.created_at, k.updated_at, k.issued_by_key_id
    from core.tenant_api_keys k
    where k.tenant_id = p_tenant_id and k.key_id = v_key_id;
end
$$;


--
-- Name: FUNCTION register_key(p_tenant_id uuid, p_key_hash text, p_key_prefix text, p_name text, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone, p_issued_by_key_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.register_key(p_tenant_id uuid, p_key_hash text, p_key_prefix text, p_name text, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone, p_issued_by_key_id uuid) IS 'Writes a key and claims its hash in core.api_key_hashes; used by core.issue_api_key and core.issue_key_as';


--
-- Name: reject_audit_change(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.reject_audit_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
begin
  raise exception 'audit_logs is append-only: % is not allowed', tg_op
    using errcode = 'insufficient_privilege';
end
$$;


--
-- Name: FUNCTION reject_audit_change(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.reject_audit_change() IS 'Trigger: refuses UPDATE, DELETE and TRUNCATE on the audit trail';


--
-- Name: request_has_actor(uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.request_has_actor(p_tenant_id uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  return exists (select from core.request_context c
                 where c.tenant_id = p_tenant_id
                    or exists (select from core.platform_operators o
                               where o.operator_id = c.operator_id and o.revoked_at is null));
end
$$;


--
-- Name: FUNCTION request_has_actor(p_tenant_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.request_has_actor(p_tenant_id uuid) IS 'Whether the verified context names an actor for a change of this tenant''s rows: its key, or an active operator';


--
-- Name: require_active_operator(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.require_active_operator() RETURNS void
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  -- The platform role changes nothing without a named operator who is still
  -- active (core.record_audit holds every audited change to it too, but on
  -- a Citus worker it reads the operators over the platform role's own
  -- connection, which does not see an operator revoked earlier in the
  -- transaction through the registry's; this reads them as the registry).
  if session_user = 'uber_admin' and not exists (
       select from core.request_context c join core.platform_operators o on o.operator_id = c.operator_id
       where o.revoked_at is null) then
    raise exception 'a platform change needs a named, active operator (platform.begin_request)' using errcode = 'PT401';
  end if;
end
$$;


--
-- Name: FUNCTION require_active_operator(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.require_active_operator() IS 'Raises PT401 unless a platform session (uber_admin) holds the context of a named operator still active';


--
-- Name: revoke_keys(uuid, uuid[]); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.revoke_keys(p_tenant_id uuid, p_key_ids uuid[]) RETURNS TABLE(key_id uuid)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
begin
  -- A session holding these rows, the tenant's counts or its chain head
  -- locked would otherwise keep the keys from being revoked. The counts
  -- first, then the head: the order every metered writer takes them in.
  -- On Citus they are left to the update's triggers, which take them in
  -- that order on the tenant's worker: seized here, they would be held over
  -- the connections of the seizing functions' owners, which the triggers
  -- would wait for (see above).
  perform core.end_stale_transactions();
  if not core.on_citus() then
    perform core.seize_usage_row(p_tenant_id);
    perform core.seize_chain_head(p_tenant_id);
  else
    -- Their holders are ended all the same, before the update waits for them.
    perform core.end_usage_holders(p_tenant_id);
    perform core.end_chain_holders(p_tenant_id);
  end if;
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


--
-- Name: FUNCTION revoke_keys(p_tenant_id uuid, p_key_ids uuid[]); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.revoke_keys(p_tenant_id uuid, p_key_ids uuid[]) IS 'Revokes keys of a tenant and, transitively, every key they issued; returns those it revoked';


--
-- Name: revoke_keys_of_deleted_user(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.revoke_keys_of_deleted_user() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  perform core.revoke_keys(old.tenant_id,
    array(select k.key_id from core.tenant_api_keys k where k.tenant_id = old.tenant_id and k.user_id = old.user_id));
  -- The keys stay, bound to nobody: what ON DELETE SET NULL (user_id) did,
  -- which Citus takes on no foreign key that holds the distribution column.
  update core.tenant_api_keys k set user_id = null where k.tenant_id = old.tenant_id and k.user_id = old.user_id;
  return old;
end
$$;


--
-- Name: FUNCTION revoke_keys_of_deleted_user(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.revoke_keys_of_deleted_user() IS 'Trigger: revokes the keys bound to a user being deleted, and every key they issued';


--
-- Name: role_permissions(text); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.role_permissions(p_role text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
  select case p_role
    when 'tenant_admin' then core.all_permissions()
    when 'member' then array['users:read', 'documents:read', 'documents:write', 'config:read']
    when 'viewer' then array['users:read', 'documents:read', 'config:read']
    else '{}'::text[]
  end
$$;


--
-- Name: FUNCTION role_permissions(p_role text); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.role_permissions(p_role text) IS 'What a user of this role may do, whatever the permissions of a key bound to them';


--
-- Name: role_rank(text); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.role_rank(p_role text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ select case p_role when 'viewer' then 1 when 'member' then 2 when 'tenant_admin' then 3 else 0 end $$;


--
-- Name: FUNCTION role_rank(p_role text); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.role_rank(p_role text) IS 'Order of the roles: viewer 1, member 2, tenant_admin 3; anything else 0';


--
-- Name: row_lock_holders(oid, tid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.row_lock_holders(p_shard oid, p_row tid) RETURNS bigint[]
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  perform pg_stat_clear_snapshot();
  -- As the enders on one server: the sessions pgrowlocks names, and for a
  -- lock taken inside a savepoint (pid 0) every session holding the table
  -- whose transaction began before it. Of each, the distributed transaction
  -- Citus assigned it, begun on the coordinator (which no runtime role can
  -- set: assign_distributed_transaction_id is revoked from them there).
  return array(
    select distinct t.transaction_number
    from (
      select r.pids[i] as pid
      from extensions.pgrowlocks(p_shard::regclass::text) r
      cross join lateral generate_subscripts(r.xids, 1) as i
      where r.locked_row = p_row and r.pids[i] <> 0
      union
      select l.pid
      from extensions.pgrowlocks(p_shard::regclass::text) r
      cross join lateral generate_subscripts(r.xids, 1) as i
      join pg_locks l on l.locktype = 'relation' and l.relation = p_shard
        and l.database = (select d.oid from pg_database d where d.datname = current_database())
      join pg_stat_activity s on s.pid = l.pid
      where r.locked_row = p_row and r.pids[i] = 0
        and s.backend_xid::text::bigint <= r.xids[i]::text::bigint
    ) holder
    join pg_catalog.get_all_active_transactions() t on t.process_id = holder.pid
    where holder.pid <> pg_backend_pid() and t.transaction_number <> 0
      and t.initiator_node_identifier = (select n.nodeid from pg_dist_node n where n.groupid = 0));
end
$$;


--
-- Name: FUNCTION row_lock_holders(p_shard oid, p_row tid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.row_lock_holders(p_shard oid, p_row tid) IS 'On a Citus worker: the distributed transactions (begun on the coordinator) of the sessions holding a row of a shard locked (run pushed down from the enders)';


--
-- Name: seize_chain_head(uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.seize_chain_head(p_tenant_id uuid) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION seize_chain_head(p_tenant_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.seize_chain_head(p_tenant_id uuid) IS 'Locks the tenant''s audit chain head for this transaction, ending the app_user and uber_admin sessions that hold it';


--
-- Name: seize_usage_row(uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.seize_usage_row(p_tenant_id uuid) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  for attempt in 1..100 loop
    perform from core.tenant_usage u where u.tenant_id = p_tenant_id for update skip locked;
    if found or not exists (select from core.tenant_usage u where u.tenant_id = p_tenant_id) then
      return;
    end if;
    perform core.end_usage_holders(p_tenant_id);
  end loop;
  perform from core.tenant_usage u where u.tenant_id = p_tenant_id for update;
end
$$;


--
-- Name: FUNCTION seize_usage_row(p_tenant_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.seize_usage_row(p_tenant_id uuid) IS 'Locks the tenant''s usage counts for this transaction, ending the app_user and uber_admin sessions that hold them';


--
-- Name: separate_idempotency_keys_on_citus(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.separate_idempotency_keys_on_citus() RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_foreign_key record;
begin
  if (select p.colocationid from pg_dist_partition p where p.logicalrelid = 'core.idempotency_keys'::regclass)
     = (select p.colocationid from pg_dist_partition p where p.logicalrelid = 'core.tenants'::regclass) then
    for v_foreign_key in
      select c.conname from pg_constraint c where c.conrelid = 'core.idempotency_keys'::regclass and c.contype = 'f'
    loop
      execute format('alter table core.idempotency_keys drop constraint %I', v_foreign_key.conname);
    end loop;
    perform update_distributed_table_colocation('core.idempotency_keys', colocate_with => 'none');
  end if;
  if exists (select from pg_dist_partition p
             where p.logicalrelid = 'core.platform_idempotency_keys'::regclass and p.partmethod = 'n') then
    perform set_config('citus.enable_unsafe_triggers', 'on', true);
    alter table core.platform_idempotency_keys drop constraint platform_idempotency_keys_operator_id_fkey;
    perform undistribute_table('core.platform_idempotency_keys');
    perform create_distributed_table('core.platform_idempotency_keys', 'operator_id', colocate_with => 'none');
    -- A distributed table may refer to a reference table.
    alter table core.platform_idempotency_keys add constraint platform_idempotency_keys_operator_id_fkey
      foreign key (operator_id) references core.platform_operators (operator_id);
  end if;
end
$$;


--
-- Name: FUNCTION separate_idempotency_keys_on_citus(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.separate_idempotency_keys_on_citus() IS 'On Citus, puts the two tables of Idempotency-Keys in shard groups of their own (a step of core.distribute_on_citus)';


--
-- Name: session_acts_for_a_request(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.session_acts_for_a_request() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
  select session_user <> 'uber_admin'
     and not coalesce((select r.rolsuper from pg_catalog.pg_roles r where r.rolname = session_user), false)
$$;


--
-- Name: FUNCTION session_acts_for_a_request(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.session_acts_for_a_request() IS 'Whether this session acts for the service''s requests: app_user''s, or on a Citus worker a definer''s owner''s; not the platform role''s, not a superuser''s';


--
-- Name: set_tenant_domain(uuid, text); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.set_tenant_domain(p_tenant_id uuid, p_domain text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_old text;
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  -- The Platform tenant, which no listing shows, holds no domain: one there
  -- would be taken from every tenant, out of sight.
  if p_tenant_id = '00000000-0000-0000-0000-000000000000' and p_domain is not null then
    raise exception 'the Platform tenant has no domain' using errcode = 'check_violation';
  end if;
  select t.domain into v_old from core.tenants t where t.tenant_id = p_tenant_id for update;
  if not found or v_old is not distinct from p_domain then
    return;
  end if;
  delete from core.tenant_domains d where d.domain = v_old and d.tenant_id = p_tenant_id;
  -- A taken domain fails here, as a unique violation.
  if p_domain is not null then
    insert into core.tenant_domains (domain, tenant_id) values (p_domain, p_tenant_id);
  end if;
  update core.tenants t set domain = p_domain where t.tenant_id = p_tenant_id;
end
$$;


--
-- Name: FUNCTION set_tenant_domain(p_tenant_id uuid, p_domain text); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.set_tenant_domain(p_tenant_id uuid, p_domain text) IS 'Gives a tenant a domain (NULL: none): releases its old claim, claims the new one, writes its row; under an operator''s context';


--
-- Name: set_updated_at(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.set_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
begin
  new.updated_at := now();
  return new;
end
$$;


--
-- Name: FUNCTION set_updated_at(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.set_updated_at() IS 'Trigger: keeps updated_at equal to the time of the last change';


--
-- Name: sign_context(uuid, uuid, uuid, text, text[], uuid, text, uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.sign_context(p_tenant_id uuid, p_api_key_id uuid, p_user_id uuid, p_user_role text, p_permissions text[], p_request_id uuid, p_client_request_id text, p_operator_id uuid DEFAULT NULL::uuid) RETURNS void
    LANGUAGE plpgsql
    AS $_$
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
$_$;


--
-- Name: FUNCTION sign_context(p_tenant_id uuid, p_api_key_id uuid, p_user_id uuid, p_user_role text, p_permissions text[], p_request_id uuid, p_client_request_id text, p_operator_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.sign_context(p_tenant_id uuid, p_api_key_id uuid, p_user_id uuid, p_user_role text, p_permissions text[], p_request_id uuid, p_client_request_id text, p_operator_id uuid) IS 'Sets app.context, signed for this transaction and for the session''s next number; usable only by tenancy_auth, which may read the signing key and advance the numbers';


--
-- Name: this_transaction(); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.this_transaction() RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  return coalesce(core.distributed_transaction(), 'xid:' || pg_current_xact_id()::text);
end
$$;


--
-- Name: FUNCTION this_transaction(); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.this_transaction() IS 'The current transaction, as every node taking part in it reads it: the distributed transaction on Citus, else the transaction id';


--
-- Name: two_people_required(uuid); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.two_people_required(p_tenant_id uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  return coalesce((select c.settings -> 'require_two_person_approval' = 'true'::jsonb
                   from core.tenant_configs c where c.tenant_id = p_tenant_id), false);
end
$$;


--
-- Name: FUNCTION two_people_required(p_tenant_id uuid); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.two_people_required(p_tenant_id uuid) IS 'Whether the tenant''s settings say require_two_person_approval: true';


--
-- Name: verify_audit_chain(uuid, bigint, integer, bigint, bytea); Type: FUNCTION; Schema: core; Owner: -
--

CREATE FUNCTION core.verify_audit_chain(p_tenant_id uuid, p_from_seq bigint DEFAULT 1, p_max_rows integer DEFAULT 100000, p_anchor_seq bigint DEFAULT NULL::bigint, p_anchor_hash bytea DEFAULT NULL::bytea) RETURNS TABLE(verified boolean, from_seq bigint, to_seq bigint, rows_checked bigint, complete boolean, head_seq bigint, head_hash text, broken_at_seq bigint, reason text)
    LANGUAGE plpgsql STABLE
    AS $_$
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
$_$;


--
-- Name: FUNCTION verify_audit_chain(p_tenant_id uuid, p_from_seq bigint, p_max_rows integer, p_anchor_seq bigint, p_anchor_hash bytea); Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON FUNCTION core.verify_audit_chain(p_tenant_id uuid, p_from_seq bigint, p_max_rows integer, p_anchor_seq bigint, p_anchor_hash bytea) IS 'Walks a tenant''s audit chain from a seq (at most 100,000 rows a call) and returns the head, or the first seq where it breaks and why';


--
-- Name: begin_request(text, uuid, text, boolean); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.begin_request(p_token_hash text, p_request_id uuid, p_client_request_id text DEFAULT NULL::text, p_read_only boolean DEFAULT false) RETURNS TABLE(operator_id uuid, name text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
declare
  v_operator record;
begin
  select o.operator_id, o.name into v_operator
  from core.platform_operators o
  where o.token_hash = p_token_hash and o.revoked_at is null;
  if not found then
    raise exception 'unknown or revoked operator credential' using errcode = 'PT401';
  end if;
  perform core.sign_context(null, null, null, null, '{}', p_request_id, p_client_request_id,
    v_operator.operator_id);
  if p_read_only then
    perform set_config('transaction_read_only', 'on', true);
  end if;
  return query select v_operator.operator_id, v_operator.name;
end
$$;


--
-- Name: FUNCTION begin_request(p_token_hash text, p_request_id uuid, p_client_request_id text, p_read_only boolean); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.begin_request(p_token_hash text, p_request_id uuid, p_client_request_id text, p_read_only boolean) IS 'Authenticates an operator credential by its hash and signs the platform request''s context: operator and request ids, no tenant; read-only from here if asked';


--
-- Name: bootstrap_operator(text); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.bootstrap_operator(p_token_hash text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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


--
-- Name: FUNCTION bootstrap_operator(p_token_hash text); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.bootstrap_operator(p_token_hash text) IS 'While no operator is active, creates the operator "bootstrap" whose credential has this hash (PLATFORM_ADMIN_TOKEN); true when it did';


--
-- Name: claim_idempotency_key(text, text); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.claim_idempotency_key(p_idempotency_key text, p_request_hash text) RETURNS TABLE(claimed boolean, request_hash text, response_status integer, response_body jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_operator_id uuid := core.current_operator_id();
  v_now timestamptz := now();
  -- timestamptz + interval is stable, not immutable (time zones).
  v_expires_at timestamptz := now() + interval '24 hours';
begin
  perform core.carry_context_to_workers();
  if v_operator_id is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  -- Keep the table small: drop a few of this operator's expired claims.
  delete from core.platform_idempotency_keys k
  where k.operator_id = v_operator_id and k.expires_at < v_now and k.idempotency_key in (
      select e.idempotency_key from core.platform_idempotency_keys e
      where e.operator_id = v_operator_id and e.expires_at < v_now and e.idempotency_key <> p_idempotency_key
      limit 10);
  return query
    insert into core.platform_idempotency_keys as k (operator_id, idempotency_key, request_hash)
    values (v_operator_id, p_idempotency_key, p_request_hash)
    on conflict (operator_id, idempotency_key) do update
      set request_hash = excluded.request_hash, response_status = null, response_body = null,
          created_at = v_now, expires_at = v_expires_at
      where k.expires_at < v_now
    returning true, k.request_hash, k.response_status, k.response_body;
  if not found then
    return query
      select false, k.request_hash, k.response_status, k.response_body
      from core.platform_idempotency_keys k
      where k.operator_id = v_operator_id and k.idempotency_key = p_idempotency_key;
  end if;
end
$$;


--
-- Name: FUNCTION claim_idempotency_key(p_idempotency_key text, p_request_hash text); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.claim_idempotency_key(p_idempotency_key text, p_request_hash text) IS 'Claims an Idempotency-Key for the operator''s platform request (claimed = true), or returns the stored request hash and response';


--
-- Name: create_api_key(uuid, text, text[], uuid, timestamp with time zone); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.create_api_key(p_tenant_id uuid, p_name text, p_permissions text[], p_user_id uuid DEFAULT NULL::uuid, p_expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(key text, key_id uuid, tenant_id uuid, key_prefix text, name text, permissions text[], user_id uuid, expires_at timestamp with time zone, revoked_at timestamp with time zone, last_used_at timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone, issued_by_key_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  if not exists (select from core.tenants t where t.tenant_id = p_tenant_id and t.deactivated_at is null) then
    raise exception 'no active tenant %', p_tenant_id using errcode = 'no_data_found';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = 'check_violation';
  end if;
  return query select * from core.issue_api_key(p_tenant_id, p_name, p_permissions, p_user_id, p_expires_at, null);
end
$$;


--
-- Name: FUNCTION create_api_key(p_tenant_id uuid, p_name text, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.create_api_key(p_tenant_id uuid, p_name text, p_permissions text[], p_user_id uuid, p_expires_at timestamp with time zone) IS 'Issues a key for any active tenant (platform operators); returns the key once';


--
-- Name: create_operator(text); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.create_operator(p_name text) RETURNS TABLE(operator_id uuid, name text, token text, token_prefix text, created_by uuid, created_at timestamp with time zone, revoked_at timestamp with time zone, revoked_by uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
declare
  v_caller uuid := core.current_operator_id();
  v_token text := 'tnop_' || rtrim(translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/', '-_'), '=');
begin
  perform core.carry_context_to_workers();
  if v_caller is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  perform core.require_active_operator();
  return query
    insert into core.platform_operators as o (name, token_hash, token_prefix, created_by)
    values (p_name, encode(sha256(convert_to(v_token, 'UTF8')), 'hex'), left(v_token, 12), v_caller)
    returning o.operator_id, o.name, v_token, o.token_prefix, o.created_by, o.created_at, o.revoked_at, o.revoked_by;
end
$$;


--
-- Name: FUNCTION create_operator(p_name text); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.create_operator(p_name text) IS 'Creates a named operator, by the operator of the context; returns its credential once, in the column token';


--
-- Name: tenants; Type: VIEW; Schema: platform; Owner: -
--

CREATE VIEW platform.tenants WITH (security_invoker='true') AS
 SELECT tenants.tenant_id,
    tenants.name,
    tenants.domain,
    tenants.subscription_tier,
    tenants.deactivated_at,
    tenants.created_at,
    tenants.updated_at
   FROM core.tenants
  WHERE (tenants.tenant_id <> '00000000-0000-0000-0000-000000000000'::uuid);


--
-- Name: VIEW tenants; Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON VIEW platform.tenants IS 'Every tenant, for platform operators';


--
-- Name: create_tenant(text, text, text, text); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.create_tenant(p_name text, p_domain text DEFAULT NULL::text, p_subscription_tier text DEFAULT 'free'::text, p_template_name text DEFAULT NULL::text) RETURNS SETOF platform.tenants
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_tenant_id uuid;
  v_template core.templates;
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  if p_template_name is not null then
    select * into v_template from core.templates t where t.name = p_template_name;
    if not found then
      raise exception 'unknown template "%"', p_template_name
        using errcode = 'no_data_found', hint = 'list templates with GET /v1/templates';
    end if;
  end if;

  insert into core.tenants (name, subscription_tier)
  values (p_name, coalesce(p_subscription_tier, 'free'))
  returning tenant_id into v_tenant_id;
  -- A taken domain fails here, as a unique violation.
  if p_domain is not null then
    perform core.set_tenant_domain(v_tenant_id, p_domain);
  end if;

  insert into core.tenant_configs (tenant_id, template_id, settings)
  values (v_tenant_id, v_template.template_id, coalesce(v_template.default_config, '{}'));

  return query
    select t.tenant_id, t.name, t.domain, t.subscription_tier, t.deactivated_at, t.created_at, t.updated_at
    from core.tenants t where t.tenant_id = v_tenant_id;
end
$$;


--
-- Name: FUNCTION create_tenant(p_name text, p_domain text, p_subscription_tier text, p_template_name text); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.create_tenant(p_name text, p_domain text, p_subscription_tier text, p_template_name text) IS 'Provisions a tenant and its configuration, seeded from the named template when given';


--
-- Name: deactivate_tenant(uuid); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.deactivate_tenant(p_tenant_id uuid) RETURNS SETOF platform.tenants
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := now();
  v_tenant platform.tenants;
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  update core.tenants
  set deactivated_at = coalesce(deactivated_at, v_now)
  where tenant_id = p_tenant_id
  returning tenant_id, name, domain, subscription_tier, deactivated_at, created_at, updated_at into v_tenant;
  if found then
    return next v_tenant;
  end if;
end
$$;


--
-- Name: FUNCTION deactivate_tenant(p_tenant_id uuid); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.deactivate_tenant(p_tenant_id uuid) IS 'Deactivates a tenant: its API keys stop working at once; its data and audit trail are kept';


--
-- Name: export_audit_logs(uuid, bigint, integer); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.export_audit_logs(p_tenant_id uuid, p_from_seq bigint DEFAULT 1, p_limit integer DEFAULT 1000) RETURNS TABLE(seq bigint, log_id uuid, tenant_id uuid, user_id uuid, api_key_id uuid, operator_id uuid, action text, resource_type text, resource_id uuid, details jsonb, details_text text, details_salt text, details_sha256 text, request_id text, client_request_id text, "timestamp" text, recorded_at text, prev_hash text, chain_hash text)
    LANGUAGE plpgsql STABLE
    AS $$
begin
  if not exists (select from core.tenants t where t.tenant_id = p_tenant_id) then
    raise exception 'no tenant with that id' using errcode = 'no_data_found';
  end if;
  return query select * from core.audit_export(p_tenant_id, p_from_seq, p_limit, null);
end
$$;


--
-- Name: FUNCTION export_audit_logs(p_tenant_id uuid, p_from_seq bigint, p_limit integer); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.export_audit_logs(p_tenant_id uuid, p_from_seq bigint, p_limit integer) IS 'Any tenant''s audit chain from a seq, at most 1,000 rows, with hashes and values';


--
-- Name: audit_logs; Type: VIEW; Schema: platform; Owner: -
--

CREATE VIEW platform.audit_logs WITH (security_invoker='true') AS
 SELECT audit_logs.log_id,
    audit_logs.tenant_id,
    audit_logs.user_id,
    audit_logs.api_key_id,
    audit_logs.action,
    audit_logs.resource_type,
    audit_logs.resource_id,
    audit_logs.details,
    audit_logs.request_id,
    audit_logs."timestamp",
    audit_logs.client_request_id,
    audit_logs.operator_id
   FROM core.audit_logs;


--
-- Name: VIEW audit_logs; Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON VIEW platform.audit_logs IS 'Audit trail of every tenant, for platform operators';


--
-- Name: list_audit_logs(integer, timestamp with time zone, uuid, uuid); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.list_audit_logs(p_limit integer DEFAULT 50, p_after_timestamp timestamp with time zone DEFAULT NULL::timestamp with time zone, p_after_log_id uuid DEFAULT NULL::uuid, p_tenant_id uuid DEFAULT NULL::uuid) RETURNS SETOF platform.audit_logs
    LANGUAGE plpgsql STABLE
    AS $$
begin
  return query
    select *
    from platform.audit_logs a
    where (p_after_timestamp is null or (a."timestamp", a.log_id) < (p_after_timestamp, p_after_log_id))
      and (p_tenant_id is null or a.tenant_id = p_tenant_id)
    order by a."timestamp" desc, a.log_id desc
    limit least(greatest(coalesce(p_limit, 50), 1), 100);
end
$$;


--
-- Name: FUNCTION list_audit_logs(p_limit integer, p_after_timestamp timestamp with time zone, p_after_log_id uuid, p_tenant_id uuid); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.list_audit_logs(p_limit integer, p_after_timestamp timestamp with time zone, p_after_log_id uuid, p_tenant_id uuid) IS 'Audit entries across tenants (optionally one), newest first, keyset-paginated';


--
-- Name: list_tenants(integer, timestamp with time zone, uuid); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.list_tenants(p_limit integer DEFAULT 20, p_after_created_at timestamp with time zone DEFAULT NULL::timestamp with time zone, p_after_tenant_id uuid DEFAULT NULL::uuid) RETURNS SETOF platform.tenants
    LANGUAGE plpgsql STABLE
    AS $$
begin
  return query
    select *
    from platform.tenants t
    where p_after_created_at is null
       or (t.created_at, t.tenant_id) < (p_after_created_at, p_after_tenant_id)
    order by t.created_at desc, t.tenant_id desc
    limit least(greatest(coalesce(p_limit, 20), 1), 100);
end
$$;


--
-- Name: FUNCTION list_tenants(p_limit integer, p_after_created_at timestamp with time zone, p_after_tenant_id uuid); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.list_tenants(p_limit integer, p_after_created_at timestamp with time zone, p_after_tenant_id uuid) IS 'Tenants newest first, keyset-paginated after (created_at, tenant_id)';


--
-- Name: revoke_api_key(uuid, uuid); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.revoke_api_key(p_tenant_id uuid, p_key_id uuid) RETURNS TABLE(tenant_id uuid, key_id uuid, revoked_at timestamp with time zone)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  perform core.revoke_keys(p_tenant_id, array[p_key_id]);
  return query
    select k.tenant_id, k.key_id, k.revoked_at from core.tenant_api_keys k
    where k.tenant_id = p_tenant_id and k.key_id = p_key_id;
end
$$;


--
-- Name: FUNCTION revoke_api_key(p_tenant_id uuid, p_key_id uuid); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.revoke_api_key(p_tenant_id uuid, p_key_id uuid) IS 'Revokes one API key of a tenant and every key it issued (platform operators); no row when unknown';


--
-- Name: revoke_operator(uuid); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.revoke_operator(p_operator_id uuid) RETURNS TABLE(operator_id uuid, revoked_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
declare
  v_caller uuid := core.current_operator_id();
  v_now timestamptz := now();
begin
  perform core.carry_context_to_workers();
  if v_caller is null then
    raise exception 'a platform change needs a named operator' using errcode = 'PT401';
  end if;
  perform core.require_active_operator();
  -- Serialises revocations, so two operators cannot revoke each other as
  -- the last two: each locks every active operator's row first. (Row locks
  -- only tenancy_auth can take, where an advisory lock anyone can hold.)
  perform core.end_stale_transactions();
  perform from core.platform_operators o where o.revoked_at is null for update;
  -- The operators' rows first, then the chain head, in the order every
  -- writer of operators takes them.
  perform core.seize_chain_head('00000000-0000-0000-0000-000000000000');
  if exists (select 1 from core.platform_operators o where o.operator_id = p_operator_id and o.revoked_at is null)
     and not exists (select 1 from core.platform_operators o
                     where o.revoked_at is null and o.operator_id <> p_operator_id) then
    raise exception 'the last active operator cannot be revoked; create another first' using errcode = 'PT409';
  end if;
  return query
    update core.platform_operators o
    set revoked_at = coalesce(o.revoked_at, v_now), revoked_by = coalesce(o.revoked_by, v_caller)
    where o.operator_id = p_operator_id
    returning o.operator_id, o.revoked_at;
end
$$;


--
-- Name: FUNCTION revoke_operator(p_operator_id uuid); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.revoke_operator(p_operator_id uuid) IS 'Revokes an operator''s credential at once; revoking twice keeps the first time; no row when unknown';


--
-- Name: save_idempotent_response(text, integer, jsonb); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
declare
  v_operator_id uuid := core.current_operator_id();
begin
  perform core.carry_context_to_workers();
  update core.platform_idempotency_keys
  set response_status = p_status, response_body = p_body
  where operator_id = v_operator_id and idempotency_key = p_idempotency_key;
end
$$;


--
-- Name: FUNCTION save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb) IS 'Stores the response of the platform request that claimed an Idempotency-Key, in the same transaction as its write';


--
-- Name: plans; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.plans (
    plan_id uuid DEFAULT gen_random_uuid() NOT NULL,
    tier text NOT NULL,
    max_documents integer NOT NULL,
    max_users integer NOT NULL,
    max_api_keys integer NOT NULL,
    max_metadata_bytes integer NOT NULL,
    requests_per_minute integer NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT plans_max_api_keys_check CHECK ((max_api_keys >= 0)),
    CONSTRAINT plans_max_documents_check CHECK ((max_documents >= 0)),
    CONSTRAINT plans_max_metadata_bytes_check CHECK (((max_metadata_bytes >= 2) AND (max_metadata_bytes <= 1048576))),
    CONSTRAINT plans_max_users_check CHECK ((max_users >= 0)),
    CONSTRAINT plans_requests_per_minute_check CHECK (((requests_per_minute >= 1) AND (requests_per_minute <= 10000000))),
    CONSTRAINT plans_tier_check CHECK ((tier = ANY (ARRAY['free'::text, 'pro'::text, 'enterprise'::text])))
);


--
-- Name: TABLE plans; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.plans IS 'One plan per subscription tier: the limits of every tenant on that tier';


--
-- Name: COLUMN plans.plan_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.plans.plan_id IS 'Identity of the plan';


--
-- Name: COLUMN plans.tier; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.plans.tier IS 'The subscription_tier this plan applies to';


--
-- Name: COLUMN plans.max_documents; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.plans.max_documents IS 'Documents a tenant may hold';


--
-- Name: COLUMN plans.max_users; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.plans.max_users IS 'Users a tenant may have';


--
-- Name: COLUMN plans.max_api_keys; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.plans.max_api_keys IS 'API keys a tenant may hold that are not revoked (expired ones count until revoked)';


--
-- Name: COLUMN plans.max_metadata_bytes; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.plans.max_metadata_bytes IS 'Largest metadata of one document, in bytes of its JSON text';


--
-- Name: COLUMN plans.requests_per_minute; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.plans.requests_per_minute IS 'Requests per minute a tenant may make';


--
-- Name: COLUMN plans.created_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.plans.created_at IS 'When the plan was created';


--
-- Name: COLUMN plans.updated_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.plans.updated_at IS 'When the plan last changed';


--
-- Name: plans; Type: VIEW; Schema: platform; Owner: -
--

CREATE VIEW platform.plans WITH (security_invoker='true') AS
 SELECT plans.plan_id,
    plans.tier,
    plans.max_documents,
    plans.max_users,
    plans.max_api_keys,
    plans.max_metadata_bytes,
    plans.requests_per_minute,
    plans.created_at,
    plans.updated_at
   FROM core.plans;


--
-- Name: VIEW plans; Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON VIEW platform.plans IS 'The plans, one per tier, for platform operators';


--
-- Name: update_plan(uuid, integer, integer, integer, integer, integer); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.update_plan(p_plan_id uuid, p_max_documents integer DEFAULT NULL::integer, p_max_users integer DEFAULT NULL::integer, p_max_api_keys integer DEFAULT NULL::integer, p_max_metadata_bytes integer DEFAULT NULL::integer, p_requests_per_minute integer DEFAULT NULL::integer) RETURNS SETOF platform.plans
    LANGUAGE plpgsql
    AS $$
declare
  v_plan platform.plans;
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  update core.plans p
  set max_documents = coalesce(p_max_documents, p.max_documents),
      max_users = coalesce(p_max_users, p.max_users),
      max_api_keys = coalesce(p_max_api_keys, p.max_api_keys),
      max_metadata_bytes = coalesce(p_max_metadata_bytes, p.max_metadata_bytes),
      requests_per_minute = coalesce(p_requests_per_minute, p.requests_per_minute)
  where p.plan_id = p_plan_id
  returning p.plan_id, p.tier, p.max_documents, p.max_users, p.max_api_keys, p.max_metadata_bytes,
    p.requests_per_minute, p.created_at, p.updated_at into v_plan;
  if found then
    return next v_plan;
  end if;
end
$$;


--
-- Name: FUNCTION update_plan(p_plan_id uuid, p_max_documents integer, p_max_users integer, p_max_api_keys integer, p_max_metadata_bytes integer, p_requests_per_minute integer); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.update_plan(p_plan_id uuid, p_max_documents integer, p_max_users integer, p_max_api_keys integer, p_max_metadata_bytes integer, p_requests_per_minute integer) IS 'Changes the limits of a plan (NULL keeps a limit); every tenant on its tier has them from its next request';


--
-- Name: update_tenant(uuid, text, text, boolean, text); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.update_tenant(p_tenant_id uuid, p_name text DEFAULT NULL::text, p_domain text DEFAULT NULL::text, p_clear_domain boolean DEFAULT false, p_subscription_tier text DEFAULT NULL::text) RETURNS SETOF platform.tenants
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
begin
  perform core.carry_context_to_workers();
  perform core.require_active_operator();
  if p_clear_domain or p_domain is not null then
    perform core.set_tenant_domain(p_tenant_id, case when p_clear_domain then null else p_domain end);
  end if;
  return query
    update core.tenants t
    set name = coalesce(p_name, t.name),
        subscription_tier = coalesce(p_subscription_tier, t.subscription_tier)
    where t.tenant_id = p_tenant_id
    returning t.tenant_id, t.name, t.domain, t.subscription_tier, t.deactivated_at, t.created_at, t.updated_at;
end
$$;


--
-- Name: FUNCTION update_tenant(p_tenant_id uuid, p_name text, p_domain text, p_clear_domain boolean, p_subscription_tier text); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.update_tenant(p_tenant_id uuid, p_name text, p_domain text, p_clear_domain boolean, p_subscription_tier text) IS 'Changes the given fields of a tenant (NULL keeps a field); p_clear_domain removes the domain';


--
-- Name: verify_audit_chain(uuid, bigint, integer, bigint, text); Type: FUNCTION; Schema: platform; Owner: -
--

CREATE FUNCTION platform.verify_audit_chain(p_tenant_id uuid, p_from_seq bigint DEFAULT 1, p_max_rows integer DEFAULT 100000, p_anchor_seq bigint DEFAULT NULL::bigint, p_anchor_hash text DEFAULT NULL::text) RETURNS TABLE(verified boolean, from_seq bigint, to_seq bigint, rows_checked bigint, complete boolean, head_seq bigint, head_hash text, broken_at_seq bigint, reason text)
    LANGUAGE plpgsql STABLE
    AS $$
begin
  if not exists (select from core.tenants t where t.tenant_id = p_tenant_id) then
    raise exception 'no tenant with that id' using errcode = 'no_data_found';
  end if;
  return query
    select * from core.verify_audit_chain(p_tenant_id, p_from_seq, p_max_rows, p_anchor_seq, decode(p_anchor_hash, 'hex'));
end
$$;


--
-- Name: FUNCTION verify_audit_chain(p_tenant_id uuid, p_from_seq bigint, p_max_rows integer, p_anchor_seq bigint, p_anchor_hash text); Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON FUNCTION platform.verify_audit_chain(p_tenant_id uuid, p_from_seq bigint, p_max_rows integer, p_anchor_seq bigint, p_anchor_hash text) IS 'Verifies any tenant''s audit chain: its head, or the first seq where it breaks and why';


--
-- Name: templates; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.templates (
    template_id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    industry text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    default_config jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT templates_default_config_check CHECK ((jsonb_typeof(default_config) = 'object'::text)),
    CONSTRAINT templates_description_check CHECK ((char_length(description) <= 2000)),
    CONSTRAINT templates_industry_check CHECK (((char_length(industry) >= 1) AND (char_length(industry) <= 100))),
    CONSTRAINT templates_name_check CHECK (((char_length(name) >= 1) AND (char_length(name) <= 200)))
);


--
-- Name: TABLE templates; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.templates IS 'Platform-wide catalog of starting configurations; not tenant-scoped';


--
-- Name: COLUMN templates.template_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.templates.template_id IS 'Identity of the template';


--
-- Name: COLUMN templates.name; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.templates.name IS 'Unique display name, e.g. Fintech Template';


--
-- Name: COLUMN templates.industry; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.templates.industry IS 'Industry the template is made for';


--
-- Name: COLUMN templates.description; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.templates.description IS 'What the template sets up, for people choosing one';


--
-- Name: COLUMN templates.default_config; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.templates.default_config IS 'Settings copied into a tenant configuration created from this template';


--
-- Name: COLUMN templates.created_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.templates.created_at IS 'When the template was added';


--
-- Name: COLUMN templates.updated_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.templates.updated_at IS 'When the row last changed (maintained by trigger)';


--
-- Name: templates; Type: VIEW; Schema: api; Owner: -
--

CREATE VIEW api.templates WITH (security_invoker='true') AS
 SELECT templates.template_id,
    templates.name,
    templates.industry,
    templates.description,
    templates.default_config,
    templates.created_at,
    templates.updated_at
   FROM core.templates;


--
-- Name: VIEW templates; Type: COMMENT; Schema: api; Owner: -
--

COMMENT ON VIEW api.templates IS 'The template catalog, readable by every tenant';


--
-- Name: api_key_hashes; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.api_key_hashes (
    key_hash text NOT NULL,
    tenant_id uuid NOT NULL,
    key_id uuid NOT NULL,
    CONSTRAINT api_key_hashes_key_hash_check CHECK ((key_hash ~ '^[0-9a-f]{64}$'::text))
);
ALTER TABLE ONLY core.api_key_hashes ALTER COLUMN key_hash SET STATISTICS 0;
ALTER TABLE ONLY core.api_key_hashes ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE ONLY core.api_key_hashes ALTER COLUMN key_id SET STATISTICS 0;

ALTER TABLE ONLY core.api_key_hashes FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE api_key_hashes; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.api_key_hashes IS 'Which key each key hash names: the registry that keeps hashes unique across tenants and finds a key''s tenant from its hash';


--
-- Name: COLUMN api_key_hashes.key_hash; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.api_key_hashes.key_hash IS 'SHA-256 of the key, as in core.tenant_api_keys.key_hash';


--
-- Name: COLUMN api_key_hashes.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.api_key_hashes.tenant_id IS 'The key''s tenant';


--
-- Name: COLUMN api_key_hashes.key_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.api_key_hashes.key_id IS 'The key';


--
-- Name: audit_chain_heads; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.audit_chain_heads (
    tenant_id uuid NOT NULL,
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    CONSTRAINT audit_chain_heads_hash_check CHECK ((octet_length(hash) = 32)),
    CONSTRAINT audit_chain_heads_seq_check CHECK ((seq >= 0))
);
ALTER TABLE ONLY core.audit_chain_heads ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE ONLY core.audit_chain_heads ALTER COLUMN seq SET STATISTICS 0;
ALTER TABLE ONLY core.audit_chain_heads ALTER COLUMN hash SET STATISTICS 0;

ALTER TABLE ONLY core.audit_chain_heads FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE audit_chain_heads; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.audit_chain_heads IS 'Last (seq, chain_hash) of each tenant''s audit chain; its row lock orders the tenant''s audit writers';


--
-- Name: COLUMN audit_chain_heads.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_chain_heads.tenant_id IS 'Tenant whose chain this is';


--
-- Name: COLUMN audit_chain_heads.seq; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_chain_heads.seq IS 'seq of the tenant''s last audit row; 0 before the first';


--
-- Name: COLUMN audit_chain_heads.hash; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.audit_chain_heads.hash IS 'chain_hash of that row';


--
-- Name: context_nonce; Type: SEQUENCE; Schema: core; Owner: -
--

CREATE SEQUENCE core.context_nonce
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: SEQUENCE context_nonce; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON SEQUENCE core.context_nonce IS 'Numbers each signed context; only the one numbered currval() in its session verifies';


--
-- Name: context_signing_key; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.context_signing_key (
    only_row boolean DEFAULT true NOT NULL,
    secret bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT context_signing_key_only_row_check CHECK (only_row),
    CONSTRAINT context_signing_key_secret_check CHECK ((octet_length(secret) = 32))
);


--
-- Name: TABLE context_signing_key; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.context_signing_key IS 'The one HMAC key request contexts are signed with; readable by tenancy_owner and tenancy_auth only';


--
-- Name: COLUMN context_signing_key.only_row; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.context_signing_key.only_row IS 'Always true: the table holds one row';


--
-- Name: COLUMN context_signing_key.secret; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.context_signing_key.secret IS '256 random bits; replacing them invalidates only the contexts of transactions in flight';


--
-- Name: COLUMN context_signing_key.created_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.context_signing_key.created_at IS 'When the key was generated';


--
-- Name: idempotency_keys; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.idempotency_keys (
    tenant_id uuid DEFAULT core.current_tenant_id() NOT NULL,
    idempotency_key text NOT NULL,
    request_hash text NOT NULL,
    response_status integer,
    response_body jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone DEFAULT (now() + '24:00:00'::interval) NOT NULL,
    api_key_id uuid DEFAULT core.current_api_key_id() NOT NULL,
    CONSTRAINT idempotency_keys_idempotency_key_check CHECK (((char_length(idempotency_key) >= 1) AND (char_length(idempotency_key) <= 255))),
    CONSTRAINT idempotency_keys_request_hash_check CHECK ((request_hash ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT idempotency_keys_response_status_check CHECK (((response_status >= 100) AND (response_status <= 599)))
);
ALTER TABLE ONLY core.idempotency_keys ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE ONLY core.idempotency_keys ALTER COLUMN idempotency_key SET STATISTICS 0;
ALTER TABLE ONLY core.idempotency_keys ALTER COLUMN request_hash SET STATISTICS 0;
ALTER TABLE ONLY core.idempotency_keys ALTER COLUMN response_status SET STATISTICS 0;
ALTER TABLE ONLY core.idempotency_keys ALTER COLUMN response_body SET STATISTICS 0;
ALTER TABLE ONLY core.idempotency_keys ALTER COLUMN created_at SET STATISTICS 0;
ALTER TABLE ONLY core.idempotency_keys ALTER COLUMN updated_at SET STATISTICS 0;
ALTER TABLE ONLY core.idempotency_keys ALTER COLUMN expires_at SET STATISTICS 0;
ALTER TABLE ONLY core.idempotency_keys ALTER COLUMN api_key_id SET STATISTICS 0;

ALTER TABLE ONLY core.idempotency_keys FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE idempotency_keys; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.idempotency_keys IS 'Responses of POST requests sent with an Idempotency-Key, replayed to retries';


--
-- Name: COLUMN idempotency_keys.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.idempotency_keys.tenant_id IS 'Tenant that sent the request';


--
-- Name: COLUMN idempotency_keys.idempotency_key; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.idempotency_keys.idempotency_key IS 'The client''s Idempotency-Key header';


--
-- Name: COLUMN idempotency_keys.request_hash; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.idempotency_keys.request_hash IS 'SHA-256 of method, path and body; a retry must match it';


--
-- Name: COLUMN idempotency_keys.response_status; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.idempotency_keys.response_status IS 'HTTP status of the original response';


--
-- Name: COLUMN idempotency_keys.response_body; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.idempotency_keys.response_body IS 'JSON body of the original response';


--
-- Name: COLUMN idempotency_keys.created_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.idempotency_keys.created_at IS 'When the key was first used';


--
-- Name: COLUMN idempotency_keys.updated_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.idempotency_keys.updated_at IS 'When the row last changed (maintained by trigger)';


--
-- Name: COLUMN idempotency_keys.expires_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.idempotency_keys.expires_at IS 'After this the key may be reused for a new request';


--
-- Name: COLUMN idempotency_keys.api_key_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.idempotency_keys.api_key_id IS 'API key that sent the request: the Idempotency-Key is that key''s';


--
-- Name: platform_idempotency_keys; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.platform_idempotency_keys (
    idempotency_key text NOT NULL,
    request_hash text NOT NULL,
    response_status integer,
    response_body jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone DEFAULT (now() + '24:00:00'::interval) NOT NULL,
    operator_id uuid NOT NULL,
    CONSTRAINT platform_idempotency_keys_idempotency_key_check CHECK (((char_length(idempotency_key) >= 1) AND (char_length(idempotency_key) <= 255))),
    CONSTRAINT platform_idempotency_keys_request_hash_check CHECK ((request_hash ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT platform_idempotency_keys_response_status_check CHECK (((response_status >= 100) AND (response_status <= 599)))
);


--
-- Name: TABLE platform_idempotency_keys; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.platform_idempotency_keys IS 'Responses of platform POST requests sent with an Idempotency-Key, so a retried tenant creation creates one tenant';


--
-- Name: COLUMN platform_idempotency_keys.idempotency_key; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_idempotency_keys.idempotency_key IS 'The operator''s Idempotency-Key header';


--
-- Name: COLUMN platform_idempotency_keys.request_hash; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_idempotency_keys.request_hash IS 'SHA-256 of method, path and body; a retry must match it';


--
-- Name: COLUMN platform_idempotency_keys.response_status; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_idempotency_keys.response_status IS 'HTTP status of the original response';


--
-- Name: COLUMN platform_idempotency_keys.response_body; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_idempotency_keys.response_body IS 'JSON body of the original response (never a key)';


--
-- Name: COLUMN platform_idempotency_keys.created_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_idempotency_keys.created_at IS 'When the key was first used';


--
-- Name: COLUMN platform_idempotency_keys.expires_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_idempotency_keys.expires_at IS 'After this the key may be reused for a new request';


--
-- Name: COLUMN platform_idempotency_keys.operator_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_idempotency_keys.operator_id IS 'Operator who sent the request; keys are per operator';


--
-- Name: platform_operators; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.platform_operators (
    operator_id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    token_hash text NOT NULL,
    token_prefix text NOT NULL,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone,
    revoked_by uuid,
    CONSTRAINT platform_operators_name_check CHECK ((name ~ '^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,99}$'::text)),
    CONSTRAINT platform_operators_token_hash_check CHECK ((token_hash ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT platform_operators_token_prefix_check CHECK ((char_length(token_prefix) <= 16))
);


--
-- Name: TABLE platform_operators; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.platform_operators IS 'Named platform operators and the hashes of their credentials; every platform action is attributed to one';


--
-- Name: COLUMN platform_operators.operator_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_operators.operator_id IS 'Identity of the operator, recorded in audit_logs.operator_id';


--
-- Name: COLUMN platform_operators.name; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_operators.name IS 'Who the operator is, e.g. an e-mail address; unique among active operators';


--
-- Name: COLUMN platform_operators.token_hash; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_operators.token_hash IS 'Hex SHA-256 of the credential; the credential itself is never stored';


--
-- Name: COLUMN platform_operators.token_prefix; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_operators.token_prefix IS 'First characters of the credential, to recognise it';


--
-- Name: COLUMN platform_operators.created_by; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_operators.created_by IS 'Operator who created this one (the bootstrap operator created itself)';


--
-- Name: COLUMN platform_operators.created_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_operators.created_at IS 'When the operator was created';


--
-- Name: COLUMN platform_operators.revoked_at; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_operators.revoked_at IS 'When the credential stopped working, for good';


--
-- Name: COLUMN platform_operators.revoked_by; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.platform_operators.revoked_by IS 'Operator who revoked it';


--
-- Name: request_context; Type: VIEW; Schema: core; Owner: -
--

CREATE VIEW core.request_context WITH (security_barrier='true') AS
 SELECT (NULLIF(split_part(c.signed, '|'::text, 2), ''::text))::uuid AS tenant_id,
    (NULLIF(split_part(c.signed, '|'::text, 3), ''::text))::uuid AS api_key_id,
    (NULLIF(split_part(c.signed, '|'::text, 4), ''::text))::uuid AS user_id,
    NULLIF(split_part(c.signed, '|'::text, 5), ''::text) AS user_role,
    string_to_array(split_part(c.signed, '|'::text, 6), ','::text) AS permissions,
    (split_part(c.signed, '|'::text, 7))::uuid AS request_id,
    NULLIF(split_part(c.signed, '|'::text, 8), ''::text) AS client_request_id,
    (NULLIF(split_part(c.signed, '|'::text, 10), ''::text))::uuid AS operator_id
   FROM ( SELECT current_setting('app.context'::text, true) AS signed) c
  WHERE (
        CASE
            WHEN ((c.signed IS NULL) OR (split_part(c.signed, '|'::text, 1) <> 'v4'::text)) THEN false
            WHEN (NOT core.context_verifies(c.signed)) THEN false
            ELSE (((split_part(c.signed, '|'::text, 9))::bigint < ((EXTRACT(epoch FROM statement_timestamp()) * (1000000)::numeric))::bigint) AND ((split_part(c.signed, '|'::text, 9))::bigint > ((EXTRACT(epoch FROM (clock_timestamp() - '00:00:30'::interval)) * (1000000)::numeric))::bigint))
        END AND (current_setting('transaction_isolation'::text) = 'read committed'::text) AND (clock_timestamp() < (transaction_timestamp() + '00:00:30'::interval)));


--
-- Name: VIEW request_context; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON VIEW core.request_context IS 'The verified context: one row when app.context carries a valid signature of this transaction and of the number this session signed last, was signed before the current statement and less than 30 s ago, the transaction began less than 30 s ago and is READ COMMITTED; else none';


--
-- Name: request_windows; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.request_windows (
    tenant_id uuid NOT NULL,
    window_start timestamp with time zone NOT NULL,
    leased integer NOT NULL,
    CONSTRAINT request_windows_leased_check CHECK ((leased >= 0))
);
ALTER TABLE ONLY core.request_windows ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE ONLY core.request_windows ALTER COLUMN window_start SET STATISTICS 0;
ALTER TABLE ONLY core.request_windows ALTER COLUMN leased SET STATISTICS 0;

ALTER TABLE ONLY core.request_windows FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE request_windows; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.request_windows IS 'How much of each tenant''s requests-per-minute budget has been leased to service processes in the current minute';


--
-- Name: COLUMN request_windows.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.request_windows.tenant_id IS 'The tenant';


--
-- Name: COLUMN request_windows.window_start; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.request_windows.window_start IS 'The minute (of the database''s clock) the lease count is for';


--
-- Name: COLUMN request_windows.leased; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.request_windows.leased IS 'Requests leased to service processes in that minute';


--
-- Name: tenant_domains; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.tenant_domains (
    domain text NOT NULL,
    tenant_id uuid NOT NULL
);
ALTER TABLE ONLY core.tenant_domains ALTER COLUMN domain SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_domains ALTER COLUMN tenant_id SET STATISTICS 0;

ALTER TABLE ONLY core.tenant_domains FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE tenant_domains; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.tenant_domains IS 'Which tenant each domain belongs to: the registry that keeps domains unique across tenants (core.tenants.domain repeats it)';


--
-- Name: COLUMN tenant_domains.domain; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_domains.domain IS 'The domain, as in core.tenants.domain';


--
-- Name: COLUMN tenant_domains.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_domains.tenant_id IS 'The tenant that claimed it; a tenant claims at most one';


--
-- Name: tenant_usage; Type: TABLE; Schema: core; Owner: -
--

CREATE TABLE core.tenant_usage (
    tenant_id uuid NOT NULL,
    documents bigint DEFAULT 0 NOT NULL,
    users bigint DEFAULT 0 NOT NULL,
    api_keys bigint DEFAULT 0 NOT NULL,
    CONSTRAINT tenant_usage_api_keys_check CHECK ((api_keys >= 0)),
    CONSTRAINT tenant_usage_documents_check CHECK ((documents >= 0)),
    CONSTRAINT tenant_usage_users_check CHECK ((users >= 0))
);
ALTER TABLE ONLY core.tenant_usage ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_usage ALTER COLUMN documents SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_usage ALTER COLUMN users SET STATISTICS 0;
ALTER TABLE ONLY core.tenant_usage ALTER COLUMN api_keys SET STATISTICS 0;

ALTER TABLE ONLY core.tenant_usage FORCE ROW LEVEL SECURITY;


--
-- Name: TABLE tenant_usage; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON TABLE core.tenant_usage IS 'What each tenant holds of what its plan limits, kept by core.meter_usage in the writing transaction';


--
-- Name: COLUMN tenant_usage.tenant_id; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_usage.tenant_id IS 'The tenant';


--
-- Name: COLUMN tenant_usage.documents; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_usage.documents IS 'Its documents';


--
-- Name: COLUMN tenant_usage.users; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_usage.users IS 'Its users';


--
-- Name: COLUMN tenant_usage.api_keys; Type: COMMENT; Schema: core; Owner: -
--

COMMENT ON COLUMN core.tenant_usage.api_keys IS 'Its API keys that are not revoked';


--
-- Name: operators; Type: VIEW; Schema: platform; Owner: -
--

CREATE VIEW platform.operators WITH (security_invoker='true') AS
 SELECT platform_operators.operator_id,
    platform_operators.name,
    platform_operators.token_prefix,
    platform_operators.created_by,
    platform_operators.created_at,
    platform_operators.revoked_at,
    platform_operators.revoked_by
   FROM core.platform_operators;


--
-- Name: VIEW operators; Type: COMMENT; Schema: platform; Owner: -
--

COMMENT ON VIEW platform.operators IS 'Platform operators, without their credentials'' hashes';


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version character varying NOT NULL
);


--
-- Name: api_key_hashes api_key_hashes_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.api_key_hashes
    ADD CONSTRAINT api_key_hashes_pkey PRIMARY KEY (key_hash);


--
-- Name: api_key_hashes api_key_hashes_tenant_id_key_id_key; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.api_key_hashes
    ADD CONSTRAINT api_key_hashes_tenant_id_key_id_key UNIQUE (tenant_id, key_id);


--
-- Name: api_key_usage api_key_usage_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.api_key_usage
    ADD CONSTRAINT api_key_usage_pkey PRIMARY KEY (tenant_id, key_id);


--
-- Name: approval_requests approval_requests_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.approval_requests
    ADD CONSTRAINT approval_requests_pkey PRIMARY KEY (tenant_id, approval_id);


--
-- Name: audit_chain_heads audit_chain_heads_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.audit_chain_heads
    ADD CONSTRAINT audit_chain_heads_pkey PRIMARY KEY (tenant_id);


--
-- Name: audit_logs audit_logs_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.audit_logs
    ADD CONSTRAINT audit_logs_pkey PRIMARY KEY (tenant_id, log_id, "timestamp");


--
-- Name: context_signing_key context_signing_key_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.context_signing_key
    ADD CONSTRAINT context_signing_key_pkey PRIMARY KEY (only_row);


--
-- Name: documents documents_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.documents
    ADD CONSTRAINT documents_pkey PRIMARY KEY (tenant_id, document_id);


--
-- Name: idempotency_keys idempotency_keys_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.idempotency_keys
    ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (tenant_id, api_key_id, idempotency_key);


--
-- Name: plans plans_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.plans
    ADD CONSTRAINT plans_pkey PRIMARY KEY (plan_id);


--
-- Name: plans plans_tier_key; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.plans
    ADD CONSTRAINT plans_tier_key UNIQUE (tier);


--
-- Name: platform_idempotency_keys platform_idempotency_keys_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.platform_idempotency_keys
    ADD CONSTRAINT platform_idempotency_keys_pkey PRIMARY KEY (operator_id, idempotency_key);


--
-- Name: platform_operators platform_operators_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.platform_operators
    ADD CONSTRAINT platform_operators_pkey PRIMARY KEY (operator_id);


--
-- Name: platform_operators platform_operators_token_hash_key; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.platform_operators
    ADD CONSTRAINT platform_operators_token_hash_key UNIQUE (token_hash);


--
-- Name: request_windows request_windows_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.request_windows
    ADD CONSTRAINT request_windows_pkey PRIMARY KEY (tenant_id);


--
-- Name: templates templates_name_key; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.templates
    ADD CONSTRAINT templates_name_key UNIQUE (name);


--
-- Name: templates templates_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.templates
    ADD CONSTRAINT templates_pkey PRIMARY KEY (template_id);


--
-- Name: tenant_api_keys tenant_api_keys_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.tenant_api_keys
    ADD CONSTRAINT tenant_api_keys_pkey PRIMARY KEY (tenant_id, key_id);


--
-- Name: tenant_configs tenant_configs_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.tenant_configs
    ADD CONSTRAINT tenant_configs_pkey PRIMARY KEY (tenant_id);


--
-- Name: tenant_domains tenant_domains_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.tenant_domains
    ADD CONSTRAINT tenant_domains_pkey PRIMARY KEY (domain);


--
-- Name: tenant_domains tenant_domains_tenant_id_key; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.tenant_domains
    ADD CONSTRAINT tenant_domains_tenant_id_key UNIQUE (tenant_id);


--
-- Name: tenant_usage tenant_usage_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.tenant_usage
    ADD CONSTRAINT tenant_usage_pkey PRIMARY KEY (tenant_id);


--
-- Name: tenants tenants_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.tenants
    ADD CONSTRAINT tenants_pkey PRIMARY KEY (tenant_id);


--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (tenant_id, user_id);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: audit_logs_tenant_purge_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX audit_logs_tenant_purge_idx ON ONLY core.audit_logs USING btree (tenant_id, seq) WHERE (action = 'audit.purged'::text);


--
-- Name: audit_logs_tenant_seq_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX audit_logs_tenant_seq_idx ON ONLY core.audit_logs USING btree (tenant_id, seq);


--
-- Name: audit_logs_tenant_timestamp_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX audit_logs_tenant_timestamp_idx ON ONLY core.audit_logs USING btree (tenant_id, "timestamp" DESC, log_id DESC);


--
-- Name: audit_logs_tenant_user_timestamp_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX audit_logs_tenant_user_timestamp_idx ON ONLY core.audit_logs USING btree (tenant_id, user_id, "timestamp" DESC, log_id DESC);


--
-- Name: audit_logs_timestamp_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX audit_logs_timestamp_idx ON ONLY core.audit_logs USING btree ("timestamp" DESC, log_id DESC);


--
-- Name: documents_tenant_created_at_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX documents_tenant_created_at_idx ON core.documents USING btree (tenant_id, created_at DESC, document_id DESC);


--
-- Name: documents_tenant_user_created_at_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX documents_tenant_user_created_at_idx ON core.documents USING btree (tenant_id, user_id, created_at DESC, document_id DESC);


--
-- Name: idempotency_keys_tenant_expires_at_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX idempotency_keys_tenant_expires_at_idx ON core.idempotency_keys USING btree (tenant_id, expires_at);


--
-- Name: platform_idempotency_keys_expires_at_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX platform_idempotency_keys_expires_at_idx ON core.platform_idempotency_keys USING btree (expires_at);


--
-- Name: platform_operators_active_name_key; Type: INDEX; Schema: core; Owner: -
--

CREATE UNIQUE INDEX platform_operators_active_name_key ON core.platform_operators USING btree (lower(name)) WHERE (revoked_at IS NULL);


--
-- Name: platform_operators_created_by_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX platform_operators_created_by_idx ON core.platform_operators USING btree (created_by);


--
-- Name: platform_operators_revoked_by_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX platform_operators_revoked_by_idx ON core.platform_operators USING btree (revoked_by);


--
-- Name: tenant_api_keys_tenant_created_at_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX tenant_api_keys_tenant_created_at_idx ON core.tenant_api_keys USING btree (tenant_id, created_at DESC, key_id DESC);


--
-- Name: tenant_api_keys_tenant_issued_by_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX tenant_api_keys_tenant_issued_by_idx ON core.tenant_api_keys USING btree (tenant_id, issued_by_key_id);


--
-- Name: tenant_api_keys_tenant_user_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX tenant_api_keys_tenant_user_idx ON core.tenant_api_keys USING btree (tenant_id, user_id);


--
-- Name: tenant_configs_template_id_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX tenant_configs_template_id_idx ON core.tenant_configs USING btree (template_id);


--
-- Name: tenants_created_at_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX tenants_created_at_idx ON core.tenants USING btree (created_at DESC, tenant_id DESC);


--
-- Name: users_tenant_created_at_idx; Type: INDEX; Schema: core; Owner: -
--

CREATE INDEX users_tenant_created_at_idx ON core.users USING btree (tenant_id, created_at DESC, user_id DESC);


--
-- Name: users_tenant_email_key; Type: INDEX; Schema: core; Owner: -
--

CREATE UNIQUE INDEX users_tenant_email_key ON core.users USING btree (tenant_id, lower(email));
ALTER INDEX core.users_tenant_email_key ALTER COLUMN 2 SET STATISTICS 0;


--
-- Name: audit_logs advance_chain_head; Type: TRIGGER; Schema: core; Owner: -
--

CREATE CONSTRAINT TRIGGER advance_chain_head AFTER INSERT ON core.audit_logs DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION core.advance_chain_head();

ALTER TABLE core.audit_logs ENABLE ALWAYS TRIGGER advance_chain_head;


--
-- Name: audit_logs chain_audit_row; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER chain_audit_row BEFORE INSERT ON core.audit_logs FOR EACH ROW EXECUTE FUNCTION core.chain_audit_row();

ALTER TABLE core.audit_logs ENABLE ALWAYS TRIGGER chain_audit_row;


--
-- Name: tenants check_domain_claim; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER check_domain_claim BEFORE INSERT OR DELETE OR UPDATE OF domain ON core.tenants FOR EACH ROW EXECUTE FUNCTION core.check_domain_claim();

ALTER TABLE core.tenants ENABLE ALWAYS TRIGGER check_domain_claim;


--
-- Name: documents count_usage; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER count_usage AFTER INSERT OR DELETE OR UPDATE OF metadata ON core.documents FOR EACH ROW EXECUTE FUNCTION core.meter_usage('documents');

ALTER TABLE core.documents ENABLE ALWAYS TRIGGER count_usage;


--
-- Name: tenant_api_keys count_usage; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER count_usage AFTER INSERT OR DELETE OR UPDATE OF revoked_at ON core.tenant_api_keys FOR EACH ROW EXECUTE FUNCTION core.meter_usage('api_keys');

ALTER TABLE core.tenant_api_keys ENABLE ALWAYS TRIGGER count_usage;


--
-- Name: users count_usage; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER count_usage AFTER INSERT OR DELETE ON core.users FOR EACH ROW EXECUTE FUNCTION core.meter_usage('users');

ALTER TABLE core.users ENABLE ALWAYS TRIGGER count_usage;


--
-- Name: tenant_api_keys create_key_usage; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER create_key_usage AFTER INSERT ON core.tenant_api_keys FOR EACH ROW EXECUTE FUNCTION core.create_key_usage();

ALTER TABLE core.tenant_api_keys ENABLE ALWAYS TRIGGER create_key_usage;


--
-- Name: tenants create_usage; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER create_usage AFTER INSERT ON core.tenants FOR EACH ROW EXECUTE FUNCTION core.create_tenant_usage();

ALTER TABLE core.tenants ENABLE ALWAYS TRIGGER create_usage;


--
-- Name: users guard_user_roles; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER guard_user_roles BEFORE INSERT OR DELETE OR UPDATE ON core.users FOR EACH ROW EXECUTE FUNCTION core.guard_user_roles();

ALTER TABLE core.users ENABLE ALWAYS TRIGGER guard_user_roles;


--
-- Name: tenant_api_keys hold_for_approval; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER hold_for_approval BEFORE INSERT ON core.tenant_api_keys FOR EACH ROW EXECUTE FUNCTION core.hold_for_approval('tenant_api_keys');

ALTER TABLE core.tenant_api_keys ENABLE ALWAYS TRIGGER hold_for_approval;


--
-- Name: tenant_configs hold_for_approval; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER hold_for_approval BEFORE UPDATE ON core.tenant_configs FOR EACH ROW EXECUTE FUNCTION core.hold_for_approval('tenant_configs');

ALTER TABLE core.tenant_configs ENABLE ALWAYS TRIGGER hold_for_approval;


--
-- Name: users hold_for_approval; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER hold_for_approval BEFORE DELETE OR UPDATE OF role ON core.users FOR EACH ROW EXECUTE FUNCTION core.hold_for_approval('users');

ALTER TABLE core.users ENABLE ALWAYS TRIGGER hold_for_approval;


--
-- Name: platform_operators keep_revocation; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER keep_revocation BEFORE UPDATE OF revoked_at ON core.platform_operators FOR EACH ROW EXECUTE FUNCTION core.keep_revocation('operator');

ALTER TABLE core.platform_operators ENABLE ALWAYS TRIGGER keep_revocation;


--
-- Name: tenant_api_keys keep_revocation; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER keep_revocation BEFORE UPDATE OF revoked_at ON core.tenant_api_keys FOR EACH ROW EXECUTE FUNCTION core.keep_revocation();

ALTER TABLE core.tenant_api_keys ENABLE ALWAYS TRIGGER keep_revocation;


--
-- Name: approval_requests record_audit; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER record_audit AFTER INSERT OR DELETE OR UPDATE ON core.approval_requests FOR EACH ROW EXECUTE FUNCTION core.record_audit('approval_id', 'approval_requests');

ALTER TABLE core.approval_requests ENABLE ALWAYS TRIGGER record_audit;


--
-- Name: documents record_audit; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER record_audit AFTER INSERT OR DELETE OR UPDATE ON core.documents FOR EACH ROW EXECUTE FUNCTION core.record_audit('document_id', 'documents');

ALTER TABLE core.documents ENABLE ALWAYS TRIGGER record_audit;


--
-- Name: plans record_audit; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER record_audit AFTER INSERT OR DELETE OR UPDATE ON core.plans FOR EACH ROW EXECUTE FUNCTION core.record_audit('plan_id', 'plans');

ALTER TABLE core.plans ENABLE ALWAYS TRIGGER record_audit;


--
-- Name: platform_operators record_audit; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER record_audit AFTER INSERT OR DELETE OR UPDATE ON core.platform_operators FOR EACH ROW EXECUTE FUNCTION core.record_audit('operator_id', 'platform_operators');

ALTER TABLE core.platform_operators ENABLE ALWAYS TRIGGER record_audit;


--
-- Name: tenant_api_keys record_audit; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER record_audit AFTER INSERT OR DELETE OR UPDATE ON core.tenant_api_keys FOR EACH ROW EXECUTE FUNCTION core.record_audit('key_id', 'tenant_api_keys');

ALTER TABLE core.tenant_api_keys ENABLE ALWAYS TRIGGER record_audit;


--
-- Name: tenant_configs record_audit; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER record_audit AFTER INSERT OR DELETE OR UPDATE ON core.tenant_configs FOR EACH ROW EXECUTE FUNCTION core.record_audit('tenant_id', 'tenant_configs');

ALTER TABLE core.tenant_configs ENABLE ALWAYS TRIGGER record_audit;


--
-- Name: tenants record_audit; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER record_audit AFTER INSERT OR DELETE OR UPDATE ON core.tenants FOR EACH ROW EXECUTE FUNCTION core.record_audit('tenant_id', 'tenants');

ALTER TABLE core.tenants ENABLE ALWAYS TRIGGER record_audit;


--
-- Name: users record_audit; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER record_audit AFTER INSERT OR DELETE OR UPDATE ON core.users FOR EACH ROW EXECUTE FUNCTION core.record_audit('user_id', 'users');

ALTER TABLE core.users ENABLE ALWAYS TRIGGER record_audit;


--
-- Name: audit_logs reject_truncate; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER reject_truncate BEFORE TRUNCATE ON core.audit_logs FOR EACH STATEMENT EXECUTE FUNCTION core.reject_audit_change();

ALTER TABLE core.audit_logs ENABLE ALWAYS TRIGGER reject_truncate;


--
-- Name: audit_logs reject_update_delete; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER reject_update_delete BEFORE DELETE OR UPDATE ON core.audit_logs FOR EACH ROW EXECUTE FUNCTION core.reject_audit_change();

ALTER TABLE core.audit_logs ENABLE ALWAYS TRIGGER reject_update_delete;


--
-- Name: users revoke_keys_of_deleted_user; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER revoke_keys_of_deleted_user BEFORE DELETE ON core.users FOR EACH ROW EXECUTE FUNCTION core.revoke_keys_of_deleted_user();

ALTER TABLE core.users ENABLE ALWAYS TRIGGER revoke_keys_of_deleted_user;


--
-- Name: documents set_updated_at; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER set_updated_at BEFORE UPDATE ON core.documents FOR EACH ROW EXECUTE FUNCTION core.set_updated_at();

ALTER TABLE core.documents ENABLE ALWAYS TRIGGER set_updated_at;


--
-- Name: idempotency_keys set_updated_at; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER set_updated_at BEFORE UPDATE ON core.idempotency_keys FOR EACH ROW EXECUTE FUNCTION core.set_updated_at();

ALTER TABLE core.idempotency_keys ENABLE ALWAYS TRIGGER set_updated_at;


--
-- Name: plans set_updated_at; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER set_updated_at BEFORE UPDATE ON core.plans FOR EACH ROW EXECUTE FUNCTION core.set_updated_at();

ALTER TABLE core.plans ENABLE ALWAYS TRIGGER set_updated_at;


--
-- Name: templates set_updated_at; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER set_updated_at BEFORE UPDATE ON core.templates FOR EACH ROW EXECUTE FUNCTION core.set_updated_at();

ALTER TABLE core.templates ENABLE ALWAYS TRIGGER set_updated_at;


--
-- Name: tenant_api_keys set_updated_at; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER set_updated_at BEFORE UPDATE ON core.tenant_api_keys FOR EACH ROW EXECUTE FUNCTION core.set_updated_at();

ALTER TABLE core.tenant_api_keys ENABLE ALWAYS TRIGGER set_updated_at;


--
-- Name: tenant_configs set_updated_at; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER set_updated_at BEFORE UPDATE ON core.tenant_configs FOR EACH ROW EXECUTE FUNCTION core.set_updated_at();

ALTER TABLE core.tenant_configs ENABLE ALWAYS TRIGGER set_updated_at;


--
-- Name: tenants set_updated_at; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER set_updated_at BEFORE UPDATE ON core.tenants FOR EACH ROW EXECUTE FUNCTION core.set_updated_at();

ALTER TABLE core.tenants ENABLE ALWAYS TRIGGER set_updated_at;


--
-- Name: users set_updated_at; Type: TRIGGER; Schema: core; Owner: -
--

CREATE TRIGGER set_updated_at BEFORE UPDATE ON core.users FOR EACH ROW EXECUTE FUNCTION core.set_updated_at();

ALTER TABLE core.users ENABLE ALWAYS TRIGGER set_updated_at;


--
-- Name: api_key_usage api_key_usage_tenant_id_key_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.api_key_usage
    ADD CONSTRAINT api_key_usage_tenant_id_key_id_fkey FOREIGN KEY (tenant_id, key_id) REFERENCES core.tenant_api_keys(tenant_id, key_id) ON DELETE CASCADE;


--
-- Name: approval_requests approval_requests_tenant_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.approval_requests
    ADD CONSTRAINT approval_requests_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES core.tenants(tenant_id);


--
-- Name: audit_chain_heads audit_chain_heads_tenant_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.audit_chain_heads
    ADD CONSTRAINT audit_chain_heads_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES core.tenants(tenant_id);


--
-- Name: audit_logs audit_logs_tenant_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE core.audit_logs
    ADD CONSTRAINT audit_logs_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES core.tenants(tenant_id);


--
-- Name: documents documents_tenant_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.documents
    ADD CONSTRAINT documents_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES core.tenants(tenant_id);


--
-- Name: documents documents_tenant_id_user_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.documents
    ADD CONSTRAINT documents_tenant_id_user_id_fkey FOREIGN KEY (tenant_id, user_id) REFERENCES core.users(tenant_id, user_id);


--
-- Name: idempotency_keys idempotency_keys_tenant_id_api_key_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.idempotency_keys
    ADD CONSTRAINT idempotency_keys_tenant_id_api_key_id_fkey FOREIGN KEY (tenant_id, api_key_id) REFERENCES core.tenant_api_keys(tenant_id, key_id);


--
-- Name: idempotency_keys idempotency_keys_tenant_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.idempotency_keys
    ADD CONSTRAINT idempotency_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES core.tenants(tenant_id);


--
-- Name: platform_idempotency_keys platform_idempotency_keys_operator_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.platform_idempotency_keys
    ADD CONSTRAINT platform_idempotency_keys_operator_id_fkey FOREIGN KEY (operator_id) REFERENCES core.platform_operators(operator_id);


--
-- Name: platform_operators platform_operators_created_by_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.platform_operators
    ADD CONSTRAINT platform_operators_created_by_fkey FOREIGN KEY (created_by) REFERENCES core.platform_operators(operator_id);


--
-- Name: platform_operators platform_operators_revoked_by_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.platform_operators
    ADD CONSTRAINT platform_operators_revoked_by_fkey FOREIGN KEY (revoked_by) REFERENCES core.platform_operators(operator_id);


--
-- Name: request_windows request_windows_tenant_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.request_windows
    ADD CONSTRAINT request_windows_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES core.tenants(tenant_id);


--
-- Name: tenant_api_keys tenant_api_keys_issued_by_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.tenant_api_keys
    ADD CONSTRAINT tenant_api_keys_issued_by_fkey FOREIGN KEY (tenant_id, issued_by_key_id) REFERENCES core.tenant_api_keys(tenant_id, key_id);


--
-- Name: tenant_api_keys tenant_api_keys_tenant_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.tenant_api_keys
    ADD CONSTRAINT tenant_api_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES core.tenants(tenant_id);


--
-- Name: tenant_api_keys tenant_api_keys_tenant_id_user_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.tenant_api_keys
    ADD CONSTRAINT tenant_api_keys_tenant_id_user_id_fkey FOREIGN KEY (tenant_id, user_id) REFERENCES core.users(tenant_id, user_id);


--
-- Name: tenant_configs tenant_configs_template_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.tenant_configs
    ADD CONSTRAINT tenant_configs_template_id_fkey FOREIGN KEY (template_id) REFERENCES core.templates(template_id);


--
-- Name: tenant_configs tenant_configs_tenant_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.tenant_configs
    ADD CONSTRAINT tenant_configs_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES core.tenants(tenant_id);


--
-- Name: tenant_usage tenant_usage_tenant_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.tenant_usage
    ADD CONSTRAINT tenant_usage_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES core.tenants(tenant_id);


--
-- Name: users users_tenant_id_fkey; Type: FK CONSTRAINT; Schema: core; Owner: -
--

ALTER TABLE ONLY core.users
    ADD CONSTRAINT users_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES core.tenants(tenant_id);


--
-- Name: api_key_hashes; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.api_key_hashes ENABLE ROW LEVEL SECURITY;

--
-- Name: api_key_usage; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.api_key_usage ENABLE ROW LEVEL SECURITY;

--
-- Name: approval_requests; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.approval_requests ENABLE ROW LEVEL SECURITY;

--
-- Name: audit_chain_heads; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.audit_chain_heads ENABLE ROW LEVEL SECURITY;

--
-- Name: audit_logs; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.audit_logs ENABLE ROW LEVEL SECURITY;

--
-- Name: api_key_hashes delete_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY delete_own_tenant ON core.api_key_hashes FOR DELETE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:write'::text = ANY (c.permissions)))));


--
-- Name: api_key_usage delete_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY delete_own_tenant ON core.api_key_usage FOR DELETE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:write'::text = ANY (c.permissions)))));


--
-- Name: approval_requests delete_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY delete_own_tenant ON core.approval_requests FOR DELETE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: audit_chain_heads delete_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY delete_own_tenant ON core.audit_chain_heads FOR DELETE USING (false);


--
-- Name: documents delete_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY delete_own_tenant ON core.documents FOR DELETE USING (((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('documents:write'::text = ANY (c.permissions)))) AND (user_id = COALESCE(( SELECT c.user_id
   FROM core.request_context c
  WHERE (c.user_role = 'member'::text)), user_id))));


--
-- Name: idempotency_keys delete_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY delete_own_tenant ON core.idempotency_keys FOR DELETE USING (((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)) AND (api_key_id = ( SELECT c.api_key_id
   FROM core.request_context c))));


--
-- Name: request_windows delete_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY delete_own_tenant ON core.request_windows FOR DELETE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: tenant_api_keys delete_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY delete_own_tenant ON core.tenant_api_keys FOR DELETE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:write'::text = ANY (c.permissions)))));


--
-- Name: tenant_configs delete_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY delete_own_tenant ON core.tenant_configs FOR DELETE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('config:write'::text = ANY (c.permissions)))));


--
-- Name: tenant_domains delete_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY delete_own_tenant ON core.tenant_domains FOR DELETE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: tenant_usage delete_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY delete_own_tenant ON core.tenant_usage FOR DELETE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: tenants delete_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY delete_own_tenant ON core.tenants FOR DELETE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: users delete_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY delete_own_tenant ON core.users FOR DELETE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('users:write'::text = ANY (c.permissions)))));


--
-- Name: documents; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.documents ENABLE ROW LEVEL SECURITY;

--
-- Name: idempotency_keys; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.idempotency_keys ENABLE ROW LEVEL SECURITY;

--
-- Name: api_key_hashes insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.api_key_hashes FOR INSERT WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:write'::text = ANY (c.permissions)))));


--
-- Name: api_key_usage insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.api_key_usage FOR INSERT WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:write'::text = ANY (c.permissions)))));


--
-- Name: approval_requests insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.approval_requests FOR INSERT WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: audit_chain_heads insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.audit_chain_heads FOR INSERT WITH CHECK (false);


--
-- Name: audit_logs insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.audit_logs FOR INSERT WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: documents insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.documents FOR INSERT WITH CHECK (((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('documents:write'::text = ANY (c.permissions)))) AND (user_id = COALESCE(( SELECT c.user_id
   FROM core.request_context c), user_id))));


--
-- Name: idempotency_keys insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.idempotency_keys FOR INSERT WITH CHECK (((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)) AND (api_key_id = ( SELECT c.api_key_id
   FROM core.request_context c))));


--
-- Name: request_windows insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.request_windows FOR INSERT WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: tenant_api_keys insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.tenant_api_keys FOR INSERT WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:write'::text = ANY (c.permissions)))));


--
-- Name: tenant_configs insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.tenant_configs FOR INSERT WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('config:write'::text = ANY (c.permissions)))));


--
-- Name: tenant_domains insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.tenant_domains FOR INSERT WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: tenant_usage insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.tenant_usage FOR INSERT WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: tenants insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.tenants FOR INSERT WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: users insert_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY insert_own_tenant ON core.users FOR INSERT WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('users:write'::text = ANY (c.permissions)))));


--
-- Name: request_windows; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.request_windows ENABLE ROW LEVEL SECURITY;

--
-- Name: api_key_hashes select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.api_key_hashes FOR SELECT USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:read'::text = ANY (c.permissions)))));


--
-- Name: api_key_usage select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.api_key_usage FOR SELECT USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:read'::text = ANY (c.permissions)))));


--
-- Name: approval_requests select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.approval_requests FOR SELECT USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: audit_chain_heads select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.audit_chain_heads FOR SELECT USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('audit:read'::text = ANY (c.permissions)))));


--
-- Name: audit_logs select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.audit_logs FOR SELECT USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('audit:read'::text = ANY (c.permissions)))));


--
-- Name: documents select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.documents FOR SELECT USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('documents:read'::text = ANY (c.permissions)))));


--
-- Name: idempotency_keys select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.idempotency_keys FOR SELECT USING (((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)) AND (api_key_id = ( SELECT c.api_key_id
   FROM core.request_context c))));


--
-- Name: request_windows select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.request_windows FOR SELECT USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: tenant_api_keys select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.tenant_api_keys FOR SELECT USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:read'::text = ANY (c.permissions)))));


--
-- Name: tenant_configs select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.tenant_configs FOR SELECT USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('config:read'::text = ANY (c.permissions)))));


--
-- Name: tenant_domains select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.tenant_domains FOR SELECT USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: tenant_usage select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.tenant_usage FOR SELECT USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: tenants select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.tenants FOR SELECT USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: users select_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY select_own_tenant ON core.users FOR SELECT USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('users:read'::text = ANY (c.permissions)))));


--
-- Name: tenant_api_keys; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.tenant_api_keys ENABLE ROW LEVEL SECURITY;

--
-- Name: tenant_configs; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.tenant_configs ENABLE ROW LEVEL SECURITY;

--
-- Name: tenant_domains; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.tenant_domains ENABLE ROW LEVEL SECURITY;

--
-- Name: tenant_usage; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.tenant_usage ENABLE ROW LEVEL SECURITY;

--
-- Name: tenants; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.tenants ENABLE ROW LEVEL SECURITY;

--
-- Name: api_key_hashes update_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY update_own_tenant ON core.api_key_hashes FOR UPDATE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:write'::text = ANY (c.permissions))))) WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:write'::text = ANY (c.permissions)))));


--
-- Name: api_key_usage update_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY update_own_tenant ON core.api_key_usage FOR UPDATE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:write'::text = ANY (c.permissions))))) WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:write'::text = ANY (c.permissions)))));


--
-- Name: approval_requests update_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY update_own_tenant ON core.approval_requests FOR UPDATE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c))) WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: audit_chain_heads update_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY update_own_tenant ON core.audit_chain_heads FOR UPDATE USING (false) WITH CHECK (false);


--
-- Name: documents update_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY update_own_tenant ON core.documents FOR UPDATE USING (((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('documents:write'::text = ANY (c.permissions)))) AND (user_id = COALESCE(( SELECT c.user_id
   FROM core.request_context c
  WHERE (c.user_role = 'member'::text)), user_id)))) WITH CHECK (((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('documents:write'::text = ANY (c.permissions)))) AND (user_id = COALESCE(( SELECT c.user_id
   FROM core.request_context c
  WHERE (c.user_role = 'member'::text)), user_id))));


--
-- Name: idempotency_keys update_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY update_own_tenant ON core.idempotency_keys FOR UPDATE USING (((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)) AND (api_key_id = ( SELECT c.api_key_id
   FROM core.request_context c)))) WITH CHECK (((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)) AND (api_key_id = ( SELECT c.api_key_id
   FROM core.request_context c))));


--
-- Name: request_windows update_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY update_own_tenant ON core.request_windows FOR UPDATE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c))) WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: tenant_api_keys update_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY update_own_tenant ON core.tenant_api_keys FOR UPDATE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:write'::text = ANY (c.permissions))))) WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('keys:write'::text = ANY (c.permissions)))));


--
-- Name: tenant_configs update_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY update_own_tenant ON core.tenant_configs FOR UPDATE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('config:write'::text = ANY (c.permissions))))) WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('config:write'::text = ANY (c.permissions)))));


--
-- Name: tenant_domains update_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY update_own_tenant ON core.tenant_domains FOR UPDATE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c))) WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: tenant_usage update_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY update_own_tenant ON core.tenant_usage FOR UPDATE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c))) WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: tenants update_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY update_own_tenant ON core.tenants FOR UPDATE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c))) WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c)));


--
-- Name: users update_own_tenant; Type: POLICY; Schema: core; Owner: -
--

CREATE POLICY update_own_tenant ON core.users FOR UPDATE USING ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('users:write'::text = ANY (c.permissions))))) WITH CHECK ((tenant_id = ( SELECT c.tenant_id
   FROM core.request_context c
  WHERE ('users:write'::text = ANY (c.permissions)))));


--
-- Name: users; Type: ROW SECURITY; Schema: core; Owner: -
--

ALTER TABLE core.users ENABLE ROW LEVEL SECURITY;

--
-- PostgreSQL database dump complete
--

\unrestrict dbmate


--
-- Dbmate schema migrations
--

INSERT INTO public.schema_migrations (version) VALUES
    ('20261124000100'),
    ('20261124000200'),
    ('20261124000300'),
    ('20261124000400'),
    ('20261124000500'),
    ('20261124000600'),
    ('20261124000700'),
    ('20261124000800'),
    ('20261124000900'),
    ('20261201000100'),
    ('20261201000200'),
    ('20261201000300'),
    ('20261201000400'),
    ('20261201000500'),
    ('20261201000600'),
    ('20261201000700'),
    ('20261201000800'),
    ('20261201000900'),
    ('20261201001000'),
    ('20261201001100'),
    ('20261201001200'),
    ('20261201001300'),
    ('20261201001400'),
    ('20261201001500'),
    ('20261201001600'),
    ('20261202000100'),
    ('20261202000200'),
    ('20261202000300'),
    ('20261203000100'),
    ('20261203000200'),
    ('20261203000300'),
    ('20261204000100'),
    ('20261204000200'),
    ('20261204000300'),
    ('20261204000400'),
    ('20261204000500'),
    ('20261204000600'),
    ('20261204000700'),
    ('20261204000800'),
    ('20261204000900');
