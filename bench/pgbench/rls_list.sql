-- RLS overhead, policy side: list and get as app_user under row-level security;
-- the statements of bypass_list.sql without their tenant_id filter, which the policy supplies.
\set t random(1, :tenants)
\set d random(1, :docs_per_tenant)
BEGIN;
SELECT tenant_id, key_id, last_used_at FROM api.begin_request(encode(sha256(convert_to('tnk_bench_' || lpad(cast(:t as text), 8, '0') || '_0123456789abcdef', 'UTF8')), 'hex'), NULL, gen_random_uuid(), NULL, true);
SELECT * FROM core.documents ORDER BY created_at DESC, document_id DESC LIMIT 20;
SELECT * FROM core.documents WHERE document_id = md5('doc-' || :t || '-' || :d)::uuid;
COMMIT;
