-- The transaction GET /v1/documents?limit=20 runs, for a random tenant.
-- The permission and the page size arrive as bind parameters, as they do from
-- the service; pgbench cannot bind NULL, so the absent filters are NULL literals.
\set limit 20
\set t random(1, :tenants)
BEGIN;
SELECT tenant_id, key_id, last_used_at FROM api.begin_request(encode(sha256(convert_to('tnk_bench_' || lpad(cast(:t as text), 8, '0') || '_0123456789abcdef', 'UTF8')), 'hex'), :permission, gen_random_uuid(), NULL, true);
SELECT * FROM api.list_documents(:limit, NULL, NULL, NULL, NULL, NULL);
COMMIT;
