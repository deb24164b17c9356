-- RLS overhead, baseline: the same list and get as a BYPASSRLS role with an explicit tenant_id filter.
\set t random(1, :tenants)
\set d random(1, :docs_per_tenant)
BEGIN READ ONLY;
SELECT set_config('app.tenant_id', md5('tenant-' || :t)::text, true);
SELECT * FROM core.documents WHERE tenant_id = md5('tenant-' || :t)::uuid ORDER BY created_at DESC, document_id DESC LIMIT 20;
SELECT * FROM core.documents WHERE tenant_id = md5('tenant-' || :t)::uuid AND document_id = md5('doc-' || :t || '-' || :d)::uuid;
COMMIT;
