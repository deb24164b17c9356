-- The transaction GET /v1/audit-logs?limit=50 runs, for a random tenant.
-- (the permission arrives as a bind parameter, -D permission=..., as it does from the service)
\set t random(1, :tenants)
BEGIN READ ONLY;
SELECT tenant_id, key_id, last_used_at FROM api.begin_request(encode(sha256(convert_to('tnk_bench_' || lpad(cast(:t as text), 8, '0') || '_0123456789abcdef', 'UTF8')), 'hex'), :permission, 'pgbench');
SELECT * FROM api.list_audit_logs(50, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
COMMIT;
