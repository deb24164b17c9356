-- Schema: every table, column, type, key, constraint, index and trigger the
-- migrations create, and the seeded template. Check constraints are also
-- exercised with a value just inside and just outside each rule, so a
-- constraint that exists but checks the wrong thing fails here.
begin;
select plan(457);

-- pgTAP is installed by the superuser after `alter default privileges revoke
-- execute on functions from public`, so its functions are not executable by
-- the roles the suites switch to. Granted for this transaction only.
grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;

-- Schemas, roles and the objects in them --------------------------------------

select has_schema(s, format('schema %s exists', s))
from unnest(array['core', 'api', 'platform', 'extensions']) as s;

select has_role('app_user', 'role app_user (runtime role of the HTTP layer) exists');
select has_role('uber_admin', 'role uber_admin (platform operators) exists');
select has_extension('extensions', 'pgcrypto', 'pgcrypto is installed in schema extensions');

-- The audit trail's monthly partitions come and go with the calendar
-- (pgtap/33_audit_partitions.sql checks each one); the rest is fixed.
select set_eq(
  $$ select c.relname::text from pg_class c
     where c.relnamespace = 'core'::regnamespace and c.relkind in ('r', 'p')
       and not (c.relispartition and c.relname ~ '^audit_logs_y[0-9]{4}m[0-9]{2}$'
                and exists (select from pg_inherits i
                            where i.inhrelid = c.oid and i.inhparent = 'core.audit_logs'::regclass)) $$,
  array['tenants', 'audit_logs', 'templates', 'tenant_configs', 'users', 'documents', 'tenant_api_keys',
        'idempotency_keys', 'context_signing_key', 'platform_idempotency_keys', 'api_key_usage',
        'platform_operators', 'audit_chain_heads', 'plans', 'tenant_usage', 'approval_requests', 'request_windows',
        'tenant_domains', 'api_key_hashes'],
  'core holds exactly the nineteen tables the migrations create, besides the audit trail''s monthly partitions');
-- On a single server nothing may stand in for Citus's transaction id: a
-- function of its name would bind contexts to whatever it returned.
select is(core.on_citus(), false, 'this server has no citus extension, as the suite expects');
select is(array[core.distributed_transaction(), core.transaction_time()::text],
  array[null, now()::text],
  'so a context is bound to its backend and transaction, and the audit trail''s time is now()');
select cmp_ok((select count(*)::int from pg_inherits where inhparent = 'core.audit_logs'::regclass), '>=', 4,
  'core.audit_logs has partitions: this month''s and the next three at least');
select tables_are('api', '{}'::name[], 'api holds no tables, only views and functions');
select tables_are('platform', '{}'::name[], 'platform holds no tables, only views and functions');

select views_are('api',
  array['tenant', 'audit_logs', 'templates', 'tenant_config', 'users', 'documents', 'api_keys', 'approvals'],
  'api exposes exactly the tenant-facing views');
select views_are('platform', array['tenants', 'audit_logs', 'operators', 'plans'],
  'platform exposes exactly the operator views');
select views_are('core', array['request_context'], 'core holds one view: the verified request context');

select functions_are('api',
  array['current_tenant', 'current_tenant_config', 'list_audit_logs', 'update_tenant_config', 'list_users', 'get_user', 'create_user', 'update_user', 'delete_user',
        'list_documents', 'get_document', 'create_document', 'update_document', 'delete_document', 'create_api_key',
        'list_api_keys', 'revoke_api_key', 'begin_request', 'touch_api_key', 'schema_version',
        'claim_idempotency_key', 'save_idempotent_response', 'export_audit_logs', 'verify_audit_chain',
        'current_plan', 'request_approval', 'decide_approval', 'get_approval', 'list_approvals', 'lease_requests'],
  'api holds exactly the functions the HTTP layer calls');
select functions_are('platform',
  array['list_tenants', 'update_tenant', 'deactivate_tenant', 'list_audit_logs', 'create_tenant', 'create_api_key',
        'begin_request', 'revoke_api_key', 'claim_idempotency_key', 'save_idempotent_response',
        'bootstrap_operator', 'create_operator', 'revoke_operator', 'export_audit_logs', 'verify_audit_chain',
        'update_plan'],
  'platform holds exactly the operator functions');
select functions_are('core',
  array['current_tenant_id', 'current_api_key_id', 'context_mac', 'sign_context', 'set_updated_at',
        'reject_audit_change', 'record_audit', 'issue_api_key', 'keep_revocation', 'page_upper_bound',
        'all_permissions', 'role_permissions', 'role_rank', 'effective_permissions', 'rank_of_caller',
        'guard_user_roles', 'revoke_keys', 'revoke_keys_of_deleted_user', 'current_permissions', 'create_key_usage',
        'current_operator_id', 'context_verifies', 'audit_time', 'audit_record', 'chain_audit_row',
        'verify_audit_chain', 'audit_details_readable', 'audit_export', 'advance_chain_head', 'capped_expiry',
        'end_stale_transactions', 'end_chain_holders', 'seize_chain_head', 'create_audit_partition',
        'maintain_audit_partitions', 'audit_partition_tenants', 'record_audit_purge', 'end_audit_lock_holders',
        'create_tenant_usage', 'meter_usage', 'end_usage_holders', 'seize_usage_row', 'settings_error',
        'purge_audit_partitions', 'expired_audit_partitions', 'needs_second_person', 'two_people_required',
        'approved_now', 'hold_for_approval', 'issue_key_as', 'key_lineage', 'key_is_active', 'check_change_request',
        'check_key_issue', 'end_window_holders', 'register_key', 'check_domain_claim',
        'distributed_transaction', 'context_tenant_id', 'context_user_id', 'on_coordinator', 'on_workers',
        'policy_without_sublinks', 'distribute_on_citus', 'distribute_tables_on_citus', 'transaction_time', 'on_citus',
        'set_tenant_domain', 'require_active_operator', 'separate_idempotency_keys_on_citus',
        'session_acts_for_a_request', 'request_has_actor', 'carry_context_to_workers', 'this_transaction',
        'decide_request', 'decide_as_writer', 'let_owner_make_shards_on_workers', 'row_lock_holders',
        'end_distributed_holders', 'let_reaper_see_transactions', 'keep_insert_columns_on_coordinator',
        'hide_runtime_commands_on_workers', 'keep_intermediate_results_from_runtime_roles'],
  'core holds exactly the context signer and readers, the permission model, trigger functions, key issuer and revoker, page bound and the trail''s partition maintenance');

-- Columns, types and nullability ----------------------------------------------

select columns_are('core', 'tenants',
  array['tenant_id', 'name', 'domain', 'subscription_tier', 'deactivated_at', 'created_at', 'updated_at'],
  'core.tenants has exactly the columns of the migration');
select columns_are('core', 'audit_logs',
  array['log_id', 'tenant_id', 'user_id', 'api_key_id', 'action', 'resource_type', 'resource_id', 'details',
        'request_id', 'timestamp', 'client_request_id', 'operator_id', 'seq', 'recorded_at', 'details_salt', 'details_sha256',
        'prev_hash', 'chain_hash'],
  'core.audit_logs has exactly the columns of the migration');
select columns_are('core', 'audit_chain_heads', array['tenant_id', 'seq', 'hash'],
  'core.audit_chain_heads has exactly the columns of the migration');
select columns_are('core', 'templates',
  array['template_id', 'name', 'industry', 'description', 'default_config', 'created_at', 'updated_at'],
  'core.templates has exactly the columns of the migration');
select columns_are('core', 'tenant_configs',
  array['tenant_id', 'template_id', 'settings', 'created_at', 'updated_at'],
  'core.tenant_configs has exactly the columns of the migration');
select columns_are('core', 'users',
  array['tenant_id', 'user_id', 'email', 'role', 'created_at', 'updated_at'],
  'core.users has exactly the columns of the migration');
select columns_are('core', 'documents',
  array['tenant_id', 'document_id', 'user_id', 'title', 'content_hash', 'metadata', 'created_at', 'updated_at'],
  'core.documents has exactly the columns of the migration');
select columns_are('core', 'tenant_api_keys',
  array['tenant_id', 'key_id', 'key_hash', 'key_prefix', 'name', 'permissions', 'user_id', 'expires_at',
        'revoked_at', 'created_at', 'updated_at', 'issued_by_key_id'],
  'core.tenant_api_keys has exactly the columns of the migration');
select columns_are('core', 'api_key_usage', array['tenant_id', 'key_id', 'last_used_at'],
  'core.api_key_usage has exactly the columns of the migration');
select columns_are('core', 'context_signing_key', array['only_row', 'secret', 'created_at'],
  'core.context_signing_key has exactly the columns of the migration');
select columns_are('core', 'idempotency_keys',
  array['tenant_id', 'idempotency_key', 'request_hash', 'response_status', 'response_body', 'created_at',
        'updated_at', 'expires_at', 'api_key_id'],
  'core.idempotency_keys has exactly the columns of the migration');
select columns_are('core', 'platform_idempotency_keys',
  array['idempotency_key', 'request_hash', 'response_status', 'response_body', 'created_at', 'expires_at',
        'operator_id'],
  'core.platform_idempotency_keys has exactly the columns of the migration');
select columns_are('core', 'platform_operators',
  array['operator_id', 'name', 'token_hash', 'token_prefix', 'created_by', 'created_at', 'revoked_at', 'revoked_by'],
  'core.platform_operators has exactly the columns of the migration');

create temp table expected_columns (tab name, col name, typ text, not_null boolean);
insert into expected_columns values
  ('tenants', 'tenant_id', 'uuid', true),
  ('tenants', 'name', 'text', true),
  ('tenants', 'domain', 'text', false),
  ('tenants', 'subscription_tier', 'text', true),
  ('tenants', 'deactivated_at', 'timestamp with time zone', false),
  ('tenants', 'created_at', 'timestamp with time zone', true),
  ('tenants', 'updated_at', 'timestamp with time zone', true),
  ('audit_logs', 'log_id', 'uuid', true),
  ('audit_logs', 'tenant_id', 'uuid', true),
  ('audit_logs', 'user_id', 'uuid', false),
  ('audit_logs', 'api_key_id', 'uuid', false),
  ('audit_logs', 'action', 'text', true),
  ('audit_logs', 'resource_type', 'text', true),
  ('audit_logs', 'resource_id', 'uuid', true),
  ('audit_logs', 'details', 'jsonb', true),
  ('audit_logs', 'request_id', 'text', false),
  ('audit_logs', 'timestamp', 'timestamp with time zone', true),
  ('audit_logs', 'client_request_id', 'text', false),
  ('context_signing_key', 'only_row', 'boolean', true),
  ('context_signing_key', 'secret', 'bytea', true),
  ('context_signing_key', 'created_at', 'timestamp with time zone', true),
  ('templates', 'template_id', 'uuid', true),
  ('templates', 'name', 'text', true),
  ('templates', 'industry', 'text', true),
  ('templates', 'description', 'text', true),
  ('templates', 'default_config', 'jsonb', true),
  ('templates', 'created_at', 'timestamp with time zone', true),
  ('templates', 'updated_at', 'timestamp with time zone', true),
  ('tenant_configs', 'tenant_id', 'uuid', true),
  ('tenant_configs', 'template_id', 'uuid', false),
  ('tenant_configs', 'settings', 'jsonb', true),
  ('tenant_configs', 'created_at', 'timestamp with time zone', true),
  ('tenant_configs', 'updated_at', 'timestamp with time zone', true),
  ('users', 'tenant_id', 'uuid', true),
  ('users', 'user_id', 'uuid', true),
  ('users', 'email', 'text', true),
  ('users', 'role', 'text', true),
  ('users', 'created_at', 'timestamp with time zone', true),
  ('users', 'updated_at', 'timestamp with time zone', true),
  ('documents', 'tenant_id', 'uuid', true),
  ('documents', 'document_id', 'uuid', true),
  ('documents', 'user_id', 'uuid', true),
  ('documents', 'title', 'text', true),
  ('documents', 'content_hash', 'text', true),
  ('documents', 'metadata', 'jsonb', true),
  ('documents', 'created_at', 'timestamp with time zone', true),
  ('documents', 'updated_at', 'timestamp with time zone', true),
  ('tenant_api_keys', 'tenant_id', 'uuid', true),
  ('tenant_api_keys', 'key_id', 'uuid', true),
  ('tenant_api_keys', 'key_hash', 'text', true),
  ('tenant_api_keys', 'key_prefix', 'text', true),
  ('tenant_api_keys', 'name', 'text', true),
  ('tenant_api_keys', 'permissions', 'text[]', true),
  ('tenant_api_keys', 'user_id', 'uuid', false),
  ('tenant_api_keys', 'expires_at', 'timestamp with time zone', false),
  ('tenant_api_keys', 'revoked_at', 'timestamp with time zone', false),
  ('api_key_usage', 'tenant_id', 'uuid', true),
  ('api_key_usage', 'key_id', 'uuid', true),
  ('api_key_usage', 'last_used_at', 'timestamp with time zone', false),
  ('tenant_api_keys', 'created_at', 'timestamp with time zone', true),
  ('tenant_api_keys', 'updated_at', 'timestamp with time zone', true),
  ('tenant_api_keys', 'issued_by_key_id', 'uuid', false),
  ('idempotency_keys', 'api_key_id', 'uuid', true),
  ('platform_idempotency_keys', 'idempotency_key', 'text', true),
  ('platform_idempotency_keys', 'operator_id', 'uuid', true),
  ('platform_operators', 'operator_id', 'uuid', true),
  ('platform_operators', 'name', 'text', true),
  ('platform_operators', 'token_hash', 'text', true),
  ('platform_operators', 'token_prefix', 'text', true),
  ('platform_operators', 'created_by', 'uuid', false),
  ('platform_operators', 'created_at', 'timestamp with time zone', true),
  ('platform_operators', 'revoked_at', 'timestamp with time zone', false),
  ('platform_operators', 'revoked_by', 'uuid', false),
  ('audit_logs', 'operator_id', 'uuid', false),
  ('audit_logs', 'seq', 'bigint', true),
  ('audit_logs', 'recorded_at', 'timestamp with time zone', true),
  ('audit_logs', 'details_salt', 'bytea', true),
  ('audit_logs', 'details_sha256', 'bytea', true),
  ('audit_logs', 'prev_hash', 'bytea', true),
  ('audit_logs', 'chain_hash', 'bytea', true),
  ('audit_chain_heads', 'tenant_id', 'uuid', true),
  ('audit_chain_heads', 'seq', 'bigint', true),
  ('audit_chain_heads', 'hash', 'bytea', true),
  ('platform_idempotency_keys', 'request_hash', 'text', true),
  ('platform_idempotency_keys', 'response_status', 'integer', false),
  ('platform_idempotency_keys', 'response_body', 'jsonb', false),
  ('platform_idempotency_keys', 'created_at', 'timestamp with time zone', true),
  ('platform_idempotency_keys', 'expires_at', 'timestamp with time zone', true),
  ('idempotency_keys', 'tenant_id', 'uuid', true),
  ('idempotency_keys', 'idempotency_key', 'text', true),
  ('idempotency_keys', 'request_hash', 'text', true),
  ('idempotency_keys', 'response_status', 'integer', false),
  ('idempotency_keys', 'response_body', 'jsonb', false),
  ('idempotency_keys', 'created_at', 'timestamp with time zone', true),
  ('idempotency_keys', 'updated_at', 'timestamp with time zone', true),
  ('idempotency_keys', 'expires_at', 'timestamp with time zone', true);

select col_type_is('core', tab, col, typ, format('core.%I.%I is of type %s', tab, col, typ))
from expected_columns order by tab, col;

select case when not_null
  then col_not_null('core', tab, col, format('core.%I.%I is NOT NULL', tab, col))
  else col_is_null('core', tab, col, format('core.%I.%I is nullable (optional)', tab, col)) end
from expected_columns order by tab, col;

-- The tenant of a new row comes from the transaction's context, never from
-- the client: every table app_user inserts into defaults tenant_id to it.
select col_default_is('core', t, 'tenant_id', 'core.current_tenant_id()',
  format('core.%I.tenant_id defaults to core.current_tenant_id()', t))
from unnest(array['users', 'documents', 'tenant_api_keys', 'idempotency_keys']) as t;
select col_default_is('core', 'tenants', 'subscription_tier', 'free', 'a new tenant is on the free tier');
select col_default_is('core', 'users', 'role', 'member', 'a new user is a member');
select col_default_is('core', 'tenant_api_keys', 'permissions', '{}', 'a new API key holds no permission');
select col_default_is('core', 'idempotency_keys', 'expires_at', $$(now() + '24:00:00'::interval)$$,
  'an idempotency key expires 24 hours after it is claimed');
select col_default_is('core', 'idempotency_keys', 'api_key_id', 'core.current_api_key_id()',
  'an idempotency key belongs to the API key of the transaction''s context');

-- Keys ------------------------------------------------------------------------

select has_pk('core', t, format('core.%I has a primary key', t))
from unnest(array['tenants', 'audit_logs', 'templates', 'tenant_configs', 'users', 'documents',
                  'tenant_api_keys', 'idempotency_keys', 'context_signing_key', 'platform_idempotency_keys',
                  'api_key_usage']) as t;
select col_is_pk('core', 'tenants', array['tenant_id'], 'the primary key of core.tenants is (tenant_id)');
select col_is_pk('core', 'api_key_usage', array['tenant_id', 'key_id'],
  'the primary key of core.api_key_usage is (tenant_id, key_id): one usage row per key');
select fk_ok('core', 'api_key_usage', array['tenant_id', 'key_id'], 'core', 'tenant_api_keys', array['tenant_id', 'key_id'],
  'a usage row belongs to a key of the same tenant');
select col_is_pk('core', 'audit_logs', array['tenant_id', 'log_id', 'timestamp'],
  'the primary key of core.audit_logs is (tenant_id, log_id, "timestamp"): a partitioned table''s keys hold its partition key');
select col_is_pk('core', 'templates', array['template_id'], 'the primary key of core.templates is (template_id)');
select col_is_pk('core', 'tenant_configs', array['tenant_id'],
  'the primary key of core.tenant_configs is (tenant_id): one configuration per tenant');
select col_is_pk('core', 'users', array['tenant_id', 'user_id'], 'the primary key of core.users is (tenant_id, user_id)');
select col_is_pk('core', 'documents', array['tenant_id', 'document_id'],
  'the primary key of core.documents is (tenant_id, document_id)');
select col_is_pk('core', 'tenant_api_keys', array['tenant_id', 'key_id'],
  'the primary key of core.tenant_api_keys is (tenant_id, key_id)');
select col_is_pk('core', 'idempotency_keys', array['tenant_id', 'api_key_id', 'idempotency_key'],
  'the primary key of core.idempotency_keys is (tenant_id, api_key_id, idempotency_key): a key is unique per API key');
select col_is_pk('core', 'platform_idempotency_keys', array['operator_id', 'idempotency_key'],
  'the primary key of core.platform_idempotency_keys is (operator_id, Idempotency-Key): keys are per operator');
select col_is_pk('core', 'platform_operators', array['operator_id'],
  'the primary key of core.platform_operators is (operator_id)');
select col_is_pk('core', 'audit_chain_heads', array['tenant_id'],
  'the primary key of core.audit_chain_heads is (tenant_id): one head per tenant');
select fk_ok('core', 'audit_chain_heads', 'tenant_id', 'core', 'tenants', 'tenant_id',
  'a chain head belongs to a tenant');
select index_is_type('core', 'audit_logs', 'audit_logs_tenant_seq_idx', 'btree',
  'a tenant''s chain is read in seq order through an index (unique it cannot be across partitions; the head''s lock keeps seq unique, verification reports a duplicate)');
select fk_ok('core', 'platform_idempotency_keys', 'operator_id', 'core', 'platform_operators', 'operator_id',
  'a platform idempotency key belongs to an operator');

select col_is_pk('core', 'tenant_domains', array['domain'],
  'a domain belongs to at most one tenant (core.tenant_domains is keyed by it)');
select col_is_unique('core', 'tenant_domains', array['tenant_id'], 'a tenant claims at most one domain');
select col_is_pk('core', 'api_key_hashes', array['key_hash'],
  'a key hash names at most one key, across every tenant (core.api_key_hashes is keyed by it), so a lookup finds one key');
select col_is_unique('core', 'api_key_hashes', array['tenant_id', 'key_id'], 'a key has at most one hash claimed');
select col_is_unique('core', 'templates', array['name'], 'template names are unique');
select col_is_pk('core', 'context_signing_key', array['only_row'],
  'the primary key of core.context_signing_key is the always-true only_row: one signing key');
select index_is_unique('core', 'users', 'users_tenant_email_key',
  'an email is unique within its tenant (users_tenant_email_key is a unique index)');

select fk_ok('core', 'audit_logs', array['tenant_id'], 'core', 'tenants', array['tenant_id'],
  'audit entries reference their tenant');
select fk_ok('core', 'tenant_configs', array['tenant_id'], 'core', 'tenants', array['tenant_id'],
  'a configuration references its tenant');
select fk_ok('core', 'tenant_configs', array['template_id'], 'core', 'templates', array['template_id'],
  'a configuration references the template it was seeded from');
select fk_ok('core', 'users', array['tenant_id'], 'core', 'tenants', array['tenant_id'],
  'users reference their tenant');
select fk_ok('core', 'documents', array['tenant_id'], 'core', 'tenants', array['tenant_id'],
  'documents reference their tenant');
select fk_ok('core', 'documents', array['tenant_id', 'user_id'], 'core', 'users', array['tenant_id', 'user_id'],
  'documents reference their author through (tenant_id, user_id), so the author is of the same tenant');
select fk_ok('core', 'tenant_api_keys', array['tenant_id'], 'core', 'tenants', array['tenant_id'],
  'API keys reference their tenant');
select fk_ok('core', 'tenant_api_keys', array['tenant_id', 'user_id'], 'core', 'users', array['tenant_id', 'user_id'],
  'API keys reference their user through (tenant_id, user_id), so the user is of the same tenant');
select fk_ok('core', 'idempotency_keys', array['tenant_id'], 'core', 'tenants', array['tenant_id'],
  'idempotency keys reference their tenant');
select fk_ok('core', 'tenant_api_keys', array['tenant_id', 'issued_by_key_id'], 'core', 'tenant_api_keys',
  array['tenant_id', 'key_id'], 'a key references the key of the same tenant that issued it');
select fk_ok('core', 'idempotency_keys', array['tenant_id', 'api_key_id'], 'core', 'tenant_api_keys',
  array['tenant_id', 'key_id'], 'an idempotency key references the API key of the same tenant that used it');
select results_eq(
  $$ select confdeltype::text collate "C", (select array_agg(attname::text collate "C") from pg_attribute
                                where attrelid = c.conrelid and attnum = any (c.confdelsetcols))
     from pg_constraint c where conname = 'tenant_api_keys_tenant_id_user_id_fkey'
       and conrelid = 'core.tenant_api_keys'::regclass $$,
  $$ values ('a' collate "C", null::text[]) $$,
  'a key''s user is a plain foreign key: core.revoke_keys_of_deleted_user clears it (Citus takes no ON DELETE SET NULL on a key with tenant_id; tests/api_keys_test.ts shows the key kept, revoked and bound to nobody)');

-- Indexes ---------------------------------------------------------------------

select indexes_are('core', 'tenants', array['tenants_pkey', 'tenants_created_at_idx'],
  'core.tenants has exactly its primary key and the listing index (core.tenant_domains keeps domains unique)');
select indexes_are('core', 'audit_logs',
  array['audit_logs_pkey', 'audit_logs_tenant_timestamp_idx', 'audit_logs_tenant_user_timestamp_idx',
        'audit_logs_timestamp_idx', 'audit_logs_tenant_seq_idx', 'audit_logs_tenant_purge_idx'],
  'core.audit_logs has exactly its primary key, the three listing indexes, the chain position and the checkpoints');
select indexes_are('core', 'templates', array['templates_pkey', 'templates_name_key'],
  'core.templates has exactly its primary key and the name key');
select indexes_are('core', 'tenant_configs', array['tenant_configs_pkey', 'tenant_configs_template_id_idx'],
  'core.tenant_configs has exactly its primary key and the template foreign-key index');
select indexes_are('core', 'users', array['users_pkey', 'users_tenant_email_key', 'users_tenant_created_at_idx'],
  'core.users has exactly its primary key, the email key and the listing index');
select indexes_are('core', 'documents',
  array['documents_pkey', 'documents_tenant_created_at_idx', 'documents_tenant_user_created_at_idx'],
  'core.documents has exactly its primary key and the two listing indexes');
select indexes_are('core', 'tenant_api_keys',
  array['tenant_api_keys_pkey', 'tenant_api_keys_tenant_issued_by_idx',
        'tenant_api_keys_tenant_user_idx', 'tenant_api_keys_tenant_created_at_idx'],
  'core.tenant_api_keys has exactly its primary key and the three lookup indexes (core.api_key_hashes finds a key by its hash)');
select indexes_are('core', 'platform_idempotency_keys',
  array['platform_idempotency_keys_pkey', 'platform_idempotency_keys_expires_at_idx'],
  'core.platform_idempotency_keys has exactly its primary key and the expiry index');
select indexes_are('core', 'idempotency_keys', array['idempotency_keys_pkey', 'idempotency_keys_tenant_expires_at_idx'],
  'core.idempotency_keys has exactly its primary key and the expiry index');

select has_index('core', tab, idx, cols, format('index %s is on core.%s (%s)', idx, tab, array_to_string(cols, ', ')))
from (values
  ('tenants', 'tenants_created_at_idx', array['created_at', 'tenant_id']),
  ('audit_logs', 'audit_logs_tenant_timestamp_idx', array['tenant_id', '"timestamp"', 'log_id']),
  ('audit_logs', 'audit_logs_tenant_user_timestamp_idx', array['tenant_id', 'user_id', '"timestamp"', 'log_id']),
  ('audit_logs', 'audit_logs_timestamp_idx', array['"timestamp"', 'log_id']),
  ('tenant_configs', 'tenant_configs_template_id_idx', array['template_id']),
  ('users', 'users_tenant_email_key', array['tenant_id', 'lower(email)']),
  ('users', 'users_tenant_created_at_idx', array['tenant_id', 'created_at', 'user_id']),
  ('documents', 'documents_tenant_created_at_idx', array['tenant_id', 'created_at', 'document_id']),
  ('documents', 'documents_tenant_user_created_at_idx', array['tenant_id', 'user_id', 'created_at', 'document_id']),
  ('tenant_api_keys', 'tenant_api_keys_tenant_user_idx', array['tenant_id', 'user_id']),
  ('tenant_api_keys', 'tenant_api_keys_tenant_created_at_idx', array['tenant_id', 'created_at', 'key_id']),
  ('tenant_api_keys', 'tenant_api_keys_tenant_issued_by_idx', array['tenant_id', 'issued_by_key_id']),
  ('idempotency_keys', 'idempotency_keys_tenant_expires_at_idx', array['tenant_id', 'expires_at'])
) as v(tab, idx, cols);

-- Triggers --------------------------------------------------------------------

select has_trigger('core', t, 'set_updated_at', format('core.%I keeps updated_at current by trigger', t))
from unnest(array['tenants', 'templates', 'tenant_configs', 'users', 'documents', 'tenant_api_keys',
                  'idempotency_keys']) as t;
select has_trigger('core', t, 'record_audit', format('changes to core.%I are audited by trigger', t))
from unnest(array['tenants', 'tenant_configs', 'users', 'documents', 'tenant_api_keys']) as t;
select has_trigger('core', 'audit_logs', 'reject_update_delete', 'core.audit_logs refuses UPDATE and DELETE by trigger');
select has_trigger('core', 'audit_logs', 'reject_truncate', 'core.audit_logs refuses TRUNCATE by trigger');

-- Check constraints exist on every bounded or enumerated column ---------------

select col_has_check('core', tab, col, format('core.%I.%I has a check constraint', tab, col))
from (values
  ('tenants', 'name'), ('tenants', 'domain'), ('tenants', 'subscription_tier'),
  ('audit_logs', 'action'), ('audit_logs', 'resource_type'), ('audit_logs', 'details'), ('audit_logs', 'request_id'),
  ('audit_logs', 'client_request_id'), ('context_signing_key', 'only_row'), ('context_signing_key', 'secret'),
  ('templates', 'name'), ('templates', 'industry'), ('templates', 'description'), ('templates', 'default_config'),
  ('tenant_configs', 'settings'),
  ('users', 'email'), ('users', 'role'),
  ('documents', 'title'), ('documents', 'content_hash'), ('documents', 'metadata'),
  ('tenant_api_keys', 'key_hash'), ('tenant_api_keys', 'key_prefix'), ('tenant_api_keys', 'name'),
  ('tenant_api_keys', 'permissions'),
  ('idempotency_keys', 'idempotency_key'), ('idempotency_keys', 'request_hash'), ('idempotency_keys', 'response_status'),
  ('platform_idempotency_keys', 'idempotency_key'), ('platform_idempotency_keys', 'request_hash'),
  ('platform_idempotency_keys', 'response_status')
) as v(tab, col);

-- ...and each one accepts the edge of its rule and refuses just past it, the
-- refusal naming that very constraint (a value refused by some other rule
-- proves nothing about this one). The last check finds every check
-- constraint in core from the catalog and fails for any not refused here.
-- Run as the superuser: constraints bind every role, and RLS is not the point here.

create temp table refused_constraints (conname name not null);
-- ok() when p_sql fails with check_violation on constraint p_constraint.
create function pg_temp.refused_by(p_sql text, p_constraint name, p_description text) returns text
language plpgsql volatile
as $$
declare
  v_state text;
  v_constraint text;
begin
  begin
    execute p_sql;
  exception when others then
    get stacked diagnostics v_state = returned_sqlstate, v_constraint = constraint_name;
  end;
  insert into refused_constraints values (p_constraint);
  return ok(v_state = '23514' and v_constraint = p_constraint, p_description)
    || case when v_state = '23514' and v_constraint = p_constraint then ''
            else E'\n' || diag(format('refused with %s by %s, not 23514 by %s',
                                      coalesce(v_state, 'nothing'), coalesce(v_constraint, 'no constraint'), p_constraint)) end;
end
$$;

-- A tenant with a domain, claimed first as platform.create_tenant claims it.
create function pg_temp.tenant_with_domain(p_name text, p_domain text) returns uuid
language plpgsql as $$
declare
  v_tenant_id uuid := gen_random_uuid();
begin
  insert into core.tenant_domains (domain, tenant_id) values (p_domain, v_tenant_id);
  insert into core.tenants (tenant_id, name, domain) values (v_tenant_id, p_name, p_domain);
  return v_tenant_id;
end
$$;

insert into core.tenants (name) values ('Constraint fixture') returning tenant_id as tenant_id \gset
insert into core.users (tenant_id, email) values (:'tenant_id', 'fixture@example.com') returning user_id \gset

select lives_ok(format('insert into core.tenants (name) values (%L)', repeat('n', 200)),
  'a tenant name of 200 characters is accepted');
select is((select deactivated_at is not null from core.tenants where tenant_id = '00000000-0000-0000-0000-000000000000'),
  true, 'the Platform tenant, whose trail holds the operators'' changes, exists and is deactivated');
select lives_ok($$ update core.tenants set name = 'Platform' where tenant_id = '00000000-0000-0000-0000-000000000000' $$,
  'the Platform tenant may be changed otherwise');
select pg_temp.refused_by($$ update core.tenants set deactivated_at = null
    where tenant_id = '00000000-0000-0000-0000-000000000000' $$, 'tenants_platform_stays_deactivated',
  'the Platform tenant cannot be reactivated, so no key ever works in it');
select pg_temp.refused_by(format('insert into core.tenants (name) values (%L)', repeat('n', 201)), 'tenants_name_check',
  'a tenant name of 201 characters is refused');
select pg_temp.refused_by($$ insert into core.tenants (name) values ('') $$, 'tenants_name_check',
  'an empty tenant name is refused');
select lives_ok($$ select pg_temp.tenant_with_domain('Acme', 'acme-bank.example.com') $$,
  'a lower-case hostname is accepted as a tenant domain');
select pg_temp.refused_by($$ select pg_temp.tenant_with_domain('Acme', 'Acme.example.com') $$,
  'tenants_domain_check', 'a tenant domain with upper-case letters is refused');
select pg_temp.refused_by($$ select pg_temp.tenant_with_domain('Acme', 'localhost') $$,
  'tenants_domain_check', 'a tenant domain without a dot is refused');
select pg_temp.refused_by($$ select pg_temp.tenant_with_domain('Acme', '-acme.example.com') $$,
  'tenants_domain_check', 'a tenant domain label starting with a hyphen is refused');
select lives_ok(format($$ select pg_temp.tenant_with_domain('Long', %L) $$,
    repeat(repeat('a', 63) || '.', 3) || repeat('b', 61)),
  'a tenant domain of 253 characters is accepted');
select pg_temp.refused_by(format($$ select pg_temp.tenant_with_domain('Longer', %L) $$,
    repeat(repeat('a', 63) || '.', 3) || repeat('b', 62)),
  'tenants_domain_check', 'a tenant domain of 254 characters is refused');
select throws_ok($$ select pg_temp.tenant_with_domain('Acme 2', 'acme-bank.example.com') $$, '23505', null,
  'a domain already claimed by another tenant is refused');
select throws_ok($$ insert into core.tenants (name, domain) values ('Unclaimed', 'unclaimed.example.com') $$,
  '23000', 'the domain unclaimed.example.com is not claimed by its tenant',
  'a tenant row with a domain its tenant has not claimed is refused, whoever writes it');
select throws_ok($$ insert into core.tenants (name, domain) values ('Squatter', 'acme-bank.example.com') $$,
  '23000', 'the domain acme-bank.example.com is not claimed by its tenant',
  'a tenant row with another tenant''s claimed domain is refused');
select throws_ok($$ update core.tenants set domain = null where domain = 'acme-bank.example.com' $$,
  '23000', 'the domain acme-bank.example.com is still claimed by its tenant',
  'a tenant that gives up its domain must give up the claim too');
select throws_ok($$ delete from core.tenants where domain = 'acme-bank.example.com' $$,
  '23000', 'the domain acme-bank.example.com is still claimed by its tenant',
  'a tenant whose domain is claimed cannot be deleted before the claim');
select lives_ok($$ delete from core.tenant_domains where domain = 'acme-bank.example.com';
                   update core.tenants set domain = null where domain = 'acme-bank.example.com' $$,
  'a tenant gives up its domain with its claim');
select lives_ok($$ insert into core.tenants (name, subscription_tier) values ('Big', 'enterprise') $$,
  'subscription tier enterprise is accepted');
select pg_temp.refused_by($$ insert into core.tenants (name, subscription_tier) values ('Big', 'gold') $$,
  'tenants_subscription_tier_check', 'a subscription tier other than free, pro or enterprise is refused');

select lives_ok(format($$ insert into core.users (tenant_id, email, role) values (%L, 'v@example.com', 'viewer') $$,
  :'tenant_id'), 'user role viewer is accepted');
select pg_temp.refused_by(format($$ insert into core.users (tenant_id, email, role) values (%L, 'o@example.com', 'owner') $$,
  :'tenant_id'), 'users_role_check', 'a user role other than tenant_admin, member or viewer is refused');
select throws_ok(format($$ insert into core.users (tenant_id, email) values (%L, 'FIXTURE@example.com') $$,
  :'tenant_id'), '23505', null, 'an email differing only in case from another user of the tenant is refused');
select lives_ok(format($$ insert into core.users (tenant_id, email) values (%L, 'a@b') $$, :'tenant_id'),
  'an email of 3 characters is accepted');
select pg_temp.refused_by(format($$ insert into core.users (tenant_id, email) values (%L, '@b') $$, :'tenant_id'),
  'users_email_check', 'an email of 2 characters is refused');
select lives_ok(format($$ insert into core.users (tenant_id, email) values (%L, %L) $$,
    :'tenant_id', repeat('e', 310) || '@x.example'), 'an email of 320 characters is accepted');
select pg_temp.refused_by(format($$ insert into core.users (tenant_id, email) values (%L, %L) $$,
    :'tenant_id', repeat('e', 311) || '@x.example'), 'users_email_check', 'an email of 321 characters is refused');
select pg_temp.refused_by(format($$ insert into core.users (tenant_id, email) values (%L, 'two@at@example.com') $$,
  :'tenant_id'), 'users_email_check', 'an email with two @ is refused');

select lives_ok(format($$ insert into core.documents (tenant_id, user_id, title, content_hash)
    values (%L, %L, %L, repeat('0', 64)) $$, :'tenant_id', :'user_id', repeat('t', 500)),
  'a document title of 500 characters is accepted');
select pg_temp.refused_by(format($$ insert into core.documents (tenant_id, user_id, title, content_hash)
    values (%L, %L, %L, repeat('0', 64)) $$, :'tenant_id', :'user_id', repeat('t', 501)), 'documents_title_check',
  'a document title of 501 characters is refused');
select pg_temp.refused_by(format($$ insert into core.documents (tenant_id, user_id, title, content_hash)
    values (%L, %L, '', repeat('0', 64)) $$, :'tenant_id', :'user_id'), 'documents_title_check',
  'an empty document title is refused');
select lives_ok(format($$ insert into core.documents (tenant_id, user_id, title, content_hash)
    values (%L, %L, 'Hash', repeat('af', 32)) $$, :'tenant_id', :'user_id'),
  'a content hash of 64 lower-case hex digits is accepted');
select pg_temp.refused_by(format($$ insert into core.documents (tenant_id, user_id, title, content_hash)
    values (%L, %L, 'Hash', repeat('AF', 32)) $$, :'tenant_id', :'user_id'), 'documents_content_hash_check',
  'a content hash in upper-case hex is refused');
select pg_temp.refused_by(format($$ insert into core.documents (tenant_id, user_id, title, content_hash)
    values (%L, %L, 'Hash', repeat('a', 63)) $$, :'tenant_id', :'user_id'), 'documents_content_hash_check',
  'a content hash of 63 hex digits is refused');
select pg_temp.refused_by(format($$ insert into core.documents (tenant_id, user_id, title, content_hash, metadata)
    values (%L, %L, 'Meta', repeat('0', 64), '[1]') $$, :'tenant_id', :'user_id'), 'documents_metadata_check',
  'document metadata that is a JSON array, not an object, is refused');

select pg_temp.refused_by(format($$ insert into core.tenant_configs (tenant_id, settings) values (%L, '"on"') $$,
  :'tenant_id'), 'tenant_configs_settings_check', 'tenant settings that are a JSON string, not an object, are refused');
select lives_ok(format($$ insert into core.tenant_configs (tenant_id, settings) values (%L, '{"on": true}') $$,
  :'tenant_id'), 'tenant settings that are a JSON object are accepted');
select lives_ok($$ insert into core.templates (name, industry, default_config) values ('Good', 'x', '{}') $$,
  'a template default_config that is a JSON object is accepted');
select pg_temp.refused_by($$ insert into core.templates (name, industry, default_config) values ('Bad', 'x', '[]') $$,
  'templates_default_config_check', 'a template default_config that is a JSON array, not an object, is refused');
select lives_ok(format($$ insert into core.templates (name, industry) values (%L, 'x') $$, repeat('n', 200)),
  'a template name of 200 characters is accepted');
select pg_temp.refused_by(format($$ insert into core.templates (name, industry) values (%L, 'x') $$, repeat('n', 201)),
  'templates_name_check', 'a template name of 201 characters is refused');
select lives_ok(format($$ insert into core.templates (name, industry) values ('Industrious', %L) $$, repeat('i', 100)),
  'a template industry of 100 characters is accepted');
select pg_temp.refused_by(format($$ insert into core.templates (name, industry) values ('Too industrious', %L) $$,
  repeat('i', 101)), 'templates_industry_check', 'a template industry of 101 characters is refused');
select pg_temp.refused_by($$ insert into core.templates (name, industry) values ('No industry', '') $$,
  'templates_industry_check', 'an empty template industry is refused');
select lives_ok(format($$ insert into core.templates (name, industry, description) values ('Wordy', 'x', %L) $$,
  repeat('d', 2000)), 'a template description of 2000 characters is accepted');
select pg_temp.refused_by(format($$ insert into core.templates (name, industry, description) values ('Wordier', 'x', %L) $$,
  repeat('d', 2001)), 'templates_description_check', 'a template description of 2001 characters is refused');

select lives_ok(format($$ insert into core.audit_logs (tenant_id, action, resource_type, resource_id, details)
    values (%L, 'insert', 'documents', gen_random_uuid(), '{}') $$, :'tenant_id'),
  'an audit entry whose details are a JSON object is accepted');
select pg_temp.refused_by(format($$ insert into core.audit_logs (tenant_id, action, resource_type, resource_id, details)
    values (%L, 'insert', 'documents', gen_random_uuid(), '[]') $$, :'tenant_id'), 'audit_logs_details_check',
  'an audit entry whose details are a JSON array is refused');
select lives_ok(format($$ insert into core.audit_logs (tenant_id, action, resource_type, resource_id)
    values (%L, %L, %L, gen_random_uuid()) $$, :'tenant_id', 'a' || repeat('.', 99), 'r' || repeat('_', 99)),
  'an audit action and resource type of 100 characters each are accepted');
select pg_temp.refused_by(format($$ insert into core.audit_logs (tenant_id, action, resource_type, resource_id)
    values (%L, %L, 'documents', gen_random_uuid()) $$, :'tenant_id', 'a' || repeat('.', 100)), 'audit_logs_action_check',
  'an audit action of 101 characters is refused');
select pg_temp.refused_by(format($$ insert into core.audit_logs (tenant_id, action, resource_type, resource_id)
    values (%L, 'Insert', 'documents', gen_random_uuid()) $$, :'tenant_id'), 'audit_logs_action_check',
  'an audit action with an upper-case letter is refused');
select pg_temp.refused_by(format($$ insert into core.audit_logs (tenant_id, action, resource_type, resource_id)
    values (%L, 'insert', 'documents.v2', gen_random_uuid()) $$, :'tenant_id'), 'audit_logs_resource_type_check',
  'an audit resource type with a dot is refused');
select pg_temp.refused_by(format($$ insert into core.audit_logs (tenant_id, action, resource_type, resource_id)
    values (%L, 'insert', %L, gen_random_uuid()) $$, :'tenant_id', 'r' || repeat('_', 100)), 'audit_logs_resource_type_check',
  'an audit resource type of 101 characters is refused');
select lives_ok(format($$ insert into core.audit_logs (tenant_id, action, resource_type, resource_id, request_id, client_request_id)
    values (%L, 'insert', 'documents', gen_random_uuid(), %L, %L) $$, :'tenant_id', repeat('r', 200), repeat('r', 200)),
  'an audit entry whose request id and client request id have 200 characters each is accepted');
select pg_temp.refused_by(format($$ insert into core.audit_logs (tenant_id, action, resource_type, resource_id, request_id)
    values (%L, 'insert', 'documents', gen_random_uuid(), %L) $$, :'tenant_id', repeat('r', 201)), 'audit_logs_request_id_check',
  'an audit entry whose request id has 201 characters is refused');
select pg_temp.refused_by(format($$ insert into core.audit_logs (tenant_id, action, resource_type, resource_id, client_request_id)
    values (%L, 'insert', 'documents', gen_random_uuid(), %L) $$, :'tenant_id', repeat('r', 201)),
  'audit_logs_client_request_id_check', 'an audit entry whose client request id has 201 characters is refused');

select pg_temp.refused_by($$ update core.context_signing_key set secret = extensions.gen_random_bytes(31) $$,
  'context_signing_key_secret_check', 'a signing key of 31 bytes is refused: it is 256 bits or nothing');
select lives_ok($$ update core.context_signing_key set secret = extensions.gen_random_bytes(32) $$,
  'a signing key of 32 random bytes is accepted (and replaces the key for this transaction only)');
select pg_temp.refused_by($$ insert into core.context_signing_key (only_row, secret) values (false, extensions.gen_random_bytes(32)) $$,
  'context_signing_key_only_row_check', 'a signing key row whose only_row is false is refused');
select throws_ok($$ insert into core.context_signing_key (secret) values (extensions.gen_random_bytes(32)) $$,
  '23505', null, 'a second signing key is refused: there is exactly one');

select lives_ok(format($$ insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name, permissions)
    values (%L, repeat('1', 64), 'tnk_abcd', %L, '{documents:read,*}') $$, :'tenant_id', repeat('n', 200)),
  'API key permissions drawn from the known list, a prefix of 8 and a name of 200 characters are accepted');
select pg_temp.refused_by(format($$ insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name, permissions)
    values (%L, repeat('2', 64), 'tnk_abcdefgh', 'Root', '{documents:read,admin}') $$, :'tenant_id'),
  'tenant_api_keys_permissions_check', 'an API key permission outside the known list is refused');
select pg_temp.refused_by(format($$ insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name, permissions)
    values (%L, repeat('3', 64), 'tnk_abcdefgh', 'Null', array['documents:read', null]) $$, :'tenant_id'),
  'tenant_api_keys_permissions_check', 'an API key permission list containing NULL is refused');
select pg_temp.refused_by(format($$ insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name)
    values (%L, repeat('4', 64), 'tnk_abcdefgh', '') $$, :'tenant_id'), 'tenant_api_keys_name_check',
  'an empty API key name is refused');
select pg_temp.refused_by(format($$ insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name)
    values (%L, repeat('4', 64), 'tnk_abcdefgh', %L) $$, :'tenant_id', repeat('n', 201)), 'tenant_api_keys_name_check',
  'an API key name of 201 characters is refused');
select pg_temp.refused_by(format($$ insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name)
    values (%L, repeat('5', 64), 'tnk_abc', 'Short prefix') $$, :'tenant_id'), 'tenant_api_keys_key_prefix_check',
  'a key prefix of 7 characters is refused');
select lives_ok(format($$ insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name)
    values (%L, repeat('6', 64), %L, 'Long prefix') $$, :'tenant_id', repeat('p', 16)),
  'a key prefix of 16 characters is accepted');
select pg_temp.refused_by(format($$ insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name)
    values (%L, repeat('7', 64), %L, 'Longer prefix') $$, :'tenant_id', repeat('p', 17)), 'tenant_api_keys_key_prefix_check',
  'a key prefix of 17 characters is refused');
select pg_temp.refused_by(format($$ insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name)
    values (%L, upper(repeat('ab', 32)), 'tnk_abcdefgh', 'Upper') $$, :'tenant_id'), 'tenant_api_keys_key_hash_check',
  'a key hash in upper-case hex is refused');
insert into core.tenants (name) values ('Other tenant') returning tenant_id as other_tenant_id \gset
select lives_ok(format($$ insert into core.api_key_hashes (key_hash, tenant_id, key_id)
    select key_hash, tenant_id, key_id from core.tenant_api_keys where tenant_id = %L and key_hash = repeat('1', 64) $$,
    :'tenant_id'),
  'a key''s hash is claimed for it');
select throws_ok(format($$ insert into core.api_key_hashes (key_hash, tenant_id, key_id)
    values (repeat('1', 64), %L, gen_random_uuid()) $$, :'other_tenant_id'), '23505', null,
  'a key hash another tenant''s key has claimed is refused: a hash names exactly one key');
select pg_temp.refused_by(format($$ insert into core.api_key_hashes (key_hash, tenant_id, key_id)
    values (upper(repeat('cd', 32)), %L, gen_random_uuid()) $$, :'tenant_id'), 'api_key_hashes_key_hash_check',
  'a claimed key hash in upper-case hex is refused');

insert into core.tenant_api_keys (tenant_id, key_hash, key_prefix, name)
values (:'tenant_id', repeat('8', 64), 'tnk_idempot', 'Idempotent caller') returning key_id as caller_key \gset
set local app.test_key = :'caller_key';
select lives_ok(format($$ insert into core.idempotency_keys (tenant_id, api_key_id, idempotency_key, request_hash, response_status)
    values (%L, current_setting('app.test_key')::uuid, %L, repeat('c', 64), 599) $$, :'tenant_id', repeat('k', 255)),
  'an idempotency key of 255 characters with a hex request hash and status 599 is accepted');
select pg_temp.refused_by(format($$ insert into core.idempotency_keys (tenant_id, api_key_id, idempotency_key, request_hash)
    values (%L, current_setting('app.test_key')::uuid, %L, repeat('c', 64)) $$, :'tenant_id', repeat('k', 256)), 'idempotency_keys_idempotency_key_check',
  'an idempotency key of 256 characters is refused');
select pg_temp.refused_by(format($$ insert into core.idempotency_keys (tenant_id, api_key_id, idempotency_key, request_hash)
    values (%L, current_setting('app.test_key')::uuid, '', repeat('c', 64)) $$, :'tenant_id'), 'idempotency_keys_idempotency_key_check',
  'an empty idempotency key is refused');
select pg_temp.refused_by(format($$ insert into core.idempotency_keys (tenant_id, api_key_id, idempotency_key, request_hash)
    values (%L, current_setting('app.test_key')::uuid, 'retry-1', 'not-a-hash') $$, :'tenant_id'), 'idempotency_keys_request_hash_check',
  'a request hash that is not 64 lower-case hex digits is refused');
select pg_temp.refused_by(format($$ insert into core.idempotency_keys (tenant_id, api_key_id, idempotency_key, request_hash, response_status)
    values (%L, current_setting('app.test_key')::uuid, 'retry-2', repeat('c', 64), 600) $$, :'tenant_id'), 'idempotency_keys_response_status_check',
  'a stored HTTP status above 599 is refused');
select lives_ok(format($$ insert into core.idempotency_keys (tenant_id, api_key_id, idempotency_key, request_hash, response_status)
    values (%L, current_setting('app.test_key')::uuid, 'retry-3', repeat('c', 64), 100) $$, :'tenant_id'), 'a stored HTTP status of 100 is accepted');
select pg_temp.refused_by(format($$ insert into core.idempotency_keys (tenant_id, api_key_id, idempotency_key, request_hash, response_status)
    values (%L, current_setting('app.test_key')::uuid, 'retry-4', repeat('c', 64), 99) $$, :'tenant_id'), 'idempotency_keys_response_status_check',
  'a stored HTTP status below 100 is refused');

select lives_ok($$ insert into core.platform_operators (operator_id, name, token_hash, token_prefix, created_by)
    values ('00000000-0000-0000-0000-00000000000a', 'Ops 1.a_b-c@example', repeat('a', 64), repeat('t', 16),
            '00000000-0000-0000-0000-00000000000a') $$,
  'an operator named with letters, digits, space and . _ @ -, a hex token hash and a 16-character prefix is accepted');
select pg_temp.refused_by($$ insert into core.platform_operators (name, token_hash, token_prefix)
    values (' leading space', repeat('b', 64), '') $$, 'platform_operators_name_check',
  'an operator name that does not start with a letter or digit is refused');
select pg_temp.refused_by($$ insert into core.platform_operators (name, token_hash, token_prefix)
    values ('ops', repeat('B', 64), '') $$, 'platform_operators_token_hash_check',
  'a token hash that is not 64 lower-case hex digits is refused');
select pg_temp.refused_by($$ insert into core.platform_operators (name, token_hash, token_prefix)
    values ('ops', repeat('c', 64), repeat('t', 17)) $$, 'platform_operators_token_prefix_check',
  'a token prefix longer than 16 characters is refused');
select lives_ok($$ insert into core.platform_idempotency_keys (operator_id, idempotency_key, request_hash, response_status)
    values ('00000000-0000-0000-0000-00000000000a', repeat('k', 255), repeat('c', 64), 599) $$,
  'a platform idempotency key of 255 characters with a hex request hash and status 599 is accepted');
select pg_temp.refused_by($$ insert into core.platform_idempotency_keys (operator_id, idempotency_key, request_hash)
    values ('00000000-0000-0000-0000-00000000000a', repeat('k', 256), repeat('c', 64)) $$,
  'platform_idempotency_keys_idempotency_key_check',
  'a platform idempotency key of 256 characters is refused');
select pg_temp.refused_by($$ insert into core.platform_idempotency_keys (operator_id, idempotency_key, request_hash)
    values ('00000000-0000-0000-0000-00000000000a', 'p-1', 'not-a-hash') $$, 'platform_idempotency_keys_request_hash_check',
  'a platform request hash that is not 64 lower-case hex digits is refused');
select pg_temp.refused_by($$ insert into core.platform_idempotency_keys (operator_id, idempotency_key, request_hash, response_status)
    values ('00000000-0000-0000-0000-00000000000a', 'p-2', repeat('c', 64), 99) $$,
  'platform_idempotency_keys_response_status_check',
  'a stored platform HTTP status below 100 is refused');
select lives_ok(format($$ insert into core.audit_chain_heads (tenant_id, seq, hash)
    values (%L, 0, sha256('')) on conflict (tenant_id) do update set seq = 0, hash = excluded.hash $$, :'tenant_id'),
  'a chain head at seq 0 with a 32-byte hash is accepted');
select pg_temp.refused_by(format($$ update core.audit_chain_heads set seq = -1 where tenant_id = %L $$, :'tenant_id'),
  'audit_chain_heads_seq_check', 'a chain head below seq 0 is refused');
select pg_temp.refused_by(format($$ update core.audit_chain_heads set hash = '\x00' where tenant_id = %L $$, :'tenant_id'),
  'audit_chain_heads_hash_check', 'a chain head hash that is not 32 bytes is refused');
select pg_temp.refused_by($$ insert into core.plans (tier, max_documents, max_users, max_api_keys, max_metadata_bytes,
    requests_per_minute) values ('gold', 1, 1, 1, 2, 1) $$, 'plans_tier_check', 'a plan for a tier that does not exist is refused');
select pg_temp.refused_by($$ update core.plans set max_documents = -1 where tier = 'free' $$, 'plans_max_documents_check',
  'a plan allowing fewer than zero documents is refused');
select pg_temp.refused_by($$ update core.plans set max_users = -1 where tier = 'free' $$, 'plans_max_users_check',
  'a plan allowing fewer than zero users is refused');
select pg_temp.refused_by($$ update core.plans set max_api_keys = -1 where tier = 'free' $$, 'plans_max_api_keys_check',
  'a plan allowing fewer than zero API keys is refused');
select lives_ok($$ update core.plans set max_metadata_bytes = 2, requests_per_minute = 1 where tier = 'free' $$,
  'a plan allowing 2 bytes of metadata ({}) and one request a minute is accepted');
select pg_temp.refused_by($$ update core.plans set max_metadata_bytes = 1 where tier = 'free' $$,
  'plans_max_metadata_bytes_check', 'a plan allowing less metadata than {} is refused');
select pg_temp.refused_by($$ update core.plans set max_metadata_bytes = 1048577 where tier = 'free' $$,
  'plans_max_metadata_bytes_check', 'a plan allowing more than 1 MiB of metadata per document is refused');
select pg_temp.refused_by($$ update core.plans set requests_per_minute = 0 where tier = 'free' $$,
  'plans_requests_per_minute_check', 'a plan allowing no request at all is refused');
select pg_temp.refused_by(format($$ update core.tenant_usage set documents = -1 where tenant_id = %L $$, :'tenant_id'),
  'tenant_usage_documents_check', 'a count of documents below zero is refused');
select pg_temp.refused_by(format($$ update core.tenant_usage set users = -1 where tenant_id = %L $$, :'tenant_id'),
  'tenant_usage_users_check', 'a count of users below zero is refused');
select pg_temp.refused_by(format($$ update core.tenant_usage set api_keys = -1 where tenant_id = %L $$, :'tenant_id'),
  'tenant_usage_api_keys_check', 'a count of API keys below zero is refused');
select pg_temp.refused_by(format($$ update core.request_windows set leased = -1 where tenant_id = %L $$, :'tenant_id'),
  'request_windows_leased_check', 'a lease count below zero is refused');
select pg_temp.refused_by(format($$ insert into core.tenant_configs (tenant_id, settings)
    values (%L, '{"audit_retention_days": 30}') $$, :'tenant_id'),
  'tenant_configs_known_settings_check', 'settings the database acts on are checked whoever writes them: 30 days of retention is refused');
select pg_temp.refused_by(format($$ insert into core.approval_requests (tenant_id, operation, payload, requested_by_key_id)
    values (%L, 'drop_tenant', '{}', gen_random_uuid()) $$, :'tenant_id'),
  'approval_requests_operation_check', 'an approval request for an operation that does not exist is refused');
select pg_temp.refused_by(format($$ insert into core.approval_requests (tenant_id, operation, payload, requested_by_key_id, key_hash)
    values (%L, 'create_api_key', '{}', gen_random_uuid(), 'not-a-hash') $$, :'tenant_id'),
  'approval_requests_key_hash_check', 'a requested key''s hash that is not 64 lower-case hex digits is refused');
select pg_temp.refused_by(format($$ insert into core.approval_requests (tenant_id, operation, payload, requested_by_key_id)
    values (%L, 'delete_user', '[]', gen_random_uuid()) $$, :'tenant_id'),
  'approval_requests_payload_check', 'an approval request whose payload is not an object is refused');
select pg_temp.refused_by(format($$ insert into core.approval_requests (tenant_id, operation, payload, requested_by_key_id, status, decided_at)
    values (%L, 'delete_user', '{}', gen_random_uuid(), 'done', now()) $$, :'tenant_id'),
  'approval_requests_status_check', 'an approval request in a status that does not exist is refused');
select pg_temp.refused_by(format($$ insert into core.approval_requests (tenant_id, operation, payload, requested_by_key_id, status)
    values (%L, 'delete_user', '{}', gen_random_uuid(), 'approved') $$, :'tenant_id'),
  'approval_requests_check', 'a decided request without the time of its decision is refused');
select pg_temp.refused_by(format($$ insert into core.approval_requests (tenant_id, operation, payload, requested_by_key_id, decided_at)
    values (%L, 'delete_user', '{}', gen_random_uuid(), now()) $$, :'tenant_id'),
  'approval_requests_check', 'a pending request with a time of decision is refused');

select is(
  array(select format('%s on %s', c.conname, c.conrelid::regclass) from pg_constraint c
        where c.contype = 'c' and c.connamespace = 'core'::regnamespace
          and c.conname not in (select conname from refused_constraints)
        order by 1),
  '{}'::text[],
  'every check constraint in core was shown above to refuse a value (a new one needs its edge cases here)');

-- Seed data -------------------------------------------------------------------

select results_eq(
  $$ select industry, jsonb_typeof(default_config) from core.templates where name = 'Fintech Template' $$,
  $$ values ('fintech'::text, 'object'::text) $$,
  'the Fintech Template is seeded, for the fintech industry, with an object as default configuration');
select is(
  (select default_config ->> 'data_residency' from core.templates where name = 'Fintech Template'),
  'eu',
  'the Fintech Template keeps data in the EU by default');

select * from finish();
rollback;
