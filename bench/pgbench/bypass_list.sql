-- RLS overhead, baseline: the same list and get as the superuser, which bypasses
-- row-level security, with an explicit tenant_id filter. The context statement is
-- the same on both sides, so the ratio is the cost of the policies alone.
\set t random(1, :tenants)
\set d random(1, :docs_per_tenant)
BEGIN;
SELECT tenant_id, key_id, last_used_at FROM api.begin_request(encode(sha256(convert_to('tnk_bench_' || lpad(cast(:t as text), 8, '0') || '_0123456789abcdef', 'UTF8')), 'hex'), NULL, gen_random_uuid(), NULL, true);
SELECT * FROM core.documents WHERE tenant_id = md5('tenant-' || :t)::uuid ORDER BY created_at DESC, document_id DESC LIMIT 20;
SELECT * FROM core.documents WHERE tenant_id = md5('tenant-' || :t)::uuid AND document_id = md5('doc-' || :t || '-' || :d)::uuid;
COMMIT;
