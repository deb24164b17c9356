-- RLS overhead, policy side: list and get as app_user under row-level security;
-- the statements of bypass_list.sql without their tenant_id filter, which the policy supplies.
\set t random(1, :tenants)
\set d random(1, :docs_per_tenant)
BEGIN READ ONLY;
SELECT set_config('app.tenant_id', md5('tenant-' || :t)::text, true);
SELECT * FROM core.documents ORDER BY created_at DESC, document_id DESC LIMIT 20;
SELECT * FROM core.documents WHERE document_id = md5('doc-' || :t || '-' || :d)::uuid;
COMMIT;
