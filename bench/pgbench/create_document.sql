-- The transaction POST /v1/documents runs, for a random tenant and author.
-- (the permission arrives as a bind parameter, -D permission=..., as it does from the service)
\set t random(1, :tenants)
\set u random(1, 10)
BEGIN;
SELECT tenant_id, key_id, last_used_at FROM api.begin_request(encode(sha256(convert_to('tnk_bench_' || lpad(cast(:t as text), 8, '0') || '_0123456789abcdef', 'UTF8')), 'hex'), :permission, gen_random_uuid());
SELECT * FROM api.create_document(md5('user-' || :t || '-' || :u)::uuid, 'bench', 'abababababababababababababababababababababababababababababababab', '{}');
COMMIT;
