-- The transaction GET /v1/documents/{id} runs, for a random tenant and document.
-- (the permission arrives as a bind parameter, -D permission=..., as it does from the service)
\set t random(1, :tenants)
\set d random(1, :docs_per_tenant)
BEGIN;
SELECT tenant_id, key_id, last_used_at FROM api.begin_request(encode(sha256(convert_to('tnk_bench_' || lpad(cast(:t as text), 8, '0') || '_0123456789abcdef', 'UTF8')), 'hex'), :permission, gen_random_uuid(), NULL, true);
SELECT * FROM api.documents WHERE document_id = md5('doc-' || :t || '-' || :d)::uuid;
COMMIT;
