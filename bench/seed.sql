/*
 * Deterministic benchmark data, loaded set-based. Every id is derived from
 * md5 of a readable label ('tenant-7', 'doc-7-42', ...), so pgbench scripts
 * can compute the ids they look up, and two runs produce the same rows.
 *
 * psql variables: tenants, docs_per_tenant, first_tenant, last_tenant, step.
 * step = 'tenants' loads tenants, users, keys and configs for all tenants;
 * step = 'documents' loads documents and their audit rows for the tenants
 * first_tenant..last_tenant (scripts/bench calls it in chunks to show progress).
 *
 * Foreign-key checks are skipped while loading (replica mode): the rows are
 * consistent by construction. The project's own triggers fire ALWAYS, replica
 * mode or not; the documents' audit and usage triggers are switched off for
 * the load, the rows the audit trigger would have written are inserted
 * set-based below, spread over time as a real trail would be, and the
 * tenants' document counts are set in one statement.
 */
\set ON_ERROR_STOP on
set session_replication_role = replica;

select :'step' = 'tenants' as load_tenants \gset
\if :load_tenants
insert into core.tenants (tenant_id, name, subscription_tier, created_at, updated_at)
select md5('tenant-' || t)::uuid, 'Bench tenant ' || t, 'pro', at, at
from generate_series(1, :tenants) t, lateral (select timestamptz '2026-01-01 00:00:00+00' + t * interval '1 second' as at) x;

insert into core.tenant_configs (tenant_id, settings)
select md5('tenant-' || t)::uuid, '{"currency": "EUR"}'
from generate_series(1, :tenants) t;

insert into core.users (tenant_id, user_id, email, role, created_at, updated_at)
select md5('tenant-' || t)::uuid, md5('user-' || t || '-' || u)::uuid, 'user' || u || '@tenant' || t || '.example',
       case when u = 1 then 'tenant_admin' else 'member' end, at, at
from generate_series(1, :tenants) t, generate_series(1, 10) u,
     lateral (select timestamptz '2026-01-01 00:00:00+00' + u * interval '1 second' as at) x;

-- One key per tenant: tnk_bench_<8-digit tenant>_<fixed padding>, all permissions.
insert into core.tenant_api_keys (tenant_id, key_id, key_hash, key_prefix, name, permissions, created_at, updated_at)
select md5('tenant-' || t)::uuid, md5('key-' || t)::uuid,
       encode(sha256(convert_to('tnk_bench_' || lpad(t::text, 8, '0') || '_0123456789abcdef', 'UTF8')), 'hex'),
       left('tnk_bench_' || lpad(t::text, 8, '0'), 12), 'bench', array['*'], now(), now()
from generate_series(1, :tenants) t;
-- Each key's hash in the registry through which api.begin_request finds it
-- (core.register_key writes both rows for the service).
insert into core.api_key_hashes (key_hash, tenant_id, key_id)
select encode(sha256(convert_to('tnk_bench_' || lpad(t::text, 8, '0') || '_0123456789abcdef', 'UTF8')), 'hex'),
       md5('tenant-' || t)::uuid, md5('key-' || t)::uuid
from generate_series(1, :tenants) t;
\endif

select :'step' = 'documents' as load_documents \gset
\if :load_documents
begin;
-- Counted set-based below rather than row by row (one tenant's count row
-- updated a thousand times in one transaction would cost n^2).
alter table core.documents disable trigger count_usage;
alter table core.documents disable trigger record_audit;
insert into core.documents (tenant_id, document_id, user_id, title, content_hash, metadata, created_at, updated_at)
select md5('tenant-' || t)::uuid, md5('doc-' || t || '-' || d)::uuid, md5('user-' || t || '-' || (d % 10 + 1))::uuid,
       'Document ' || d || ' of tenant ' || t, md5('c' || d) || md5('h' || d), jsonb_build_object('n', d),
       at, at
from generate_series(:first_tenant, :last_tenant) t, generate_series(1, :docs_per_tenant) d,
     lateral (select timestamptz '2026-01-01 00:00:00+00' + d * interval '1 minute' as at) x;

-- The trail's months (one partition each), and its rows with the chaining
-- off: the chain refuses a timestamp other than its transaction's start.
-- Their seq and hashes are placeholders past the tenant's real chain; the
-- benchmark lists the trail and never verifies these rows.
select core.create_audit_partition(m)
from generate_series(timestamptz '2026-01-01 00:00:00+00',
                     timestamptz '2026-01-01 00:00:00+00' + :docs_per_tenant * interval '1 minute', interval '1 month') m;
alter table core.audit_logs disable trigger chain_audit_row;
alter table core.audit_logs disable trigger advance_chain_head;
insert into core.audit_logs (tenant_id, log_id, user_id, api_key_id, action, resource_type, resource_id, details,
                             request_id, "timestamp", seq, recorded_at, details_salt, details_sha256, prev_hash,
                             chain_hash)
select md5('tenant-' || t)::uuid, md5('log-' || t || '-' || d)::uuid, md5('user-' || t || '-' || (d % 10 + 1))::uuid,
       md5('key-' || t)::uuid, 'insert', 'documents', md5('doc-' || t || '-' || d)::uuid,
       '{"changed": ["title"]}', 'seed', at, 1000000 + d, at, '\x00', '\x00', '\x00', '\x00'
from generate_series(:first_tenant, :last_tenant) t, generate_series(1, :docs_per_tenant) d,
     lateral (select timestamptz '2026-01-01 00:00:00+00' + d * interval '1 minute' as at) x;
alter table core.audit_logs enable always trigger chain_audit_row;
alter table core.audit_logs enable always trigger advance_chain_head;
alter table core.documents enable always trigger record_audit;
update core.tenant_usage u set documents = u.documents + :docs_per_tenant
where u.tenant_id in (select md5('tenant-' || t)::uuid from generate_series(:first_tenant, :last_tenant) t);
alter table core.documents enable always trigger count_usage;
commit;
\endif
