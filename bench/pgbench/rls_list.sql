-- RLS overhead, policy side: list and get as app_user under row-level security.
\set t random(1, :tenants)
\set d random(1, :docs_per_tenant)
BEGIN READ ONLY;
SELECT set_config('app.tenant_id', md5('tenant-' || :t)::text, true);
SELECT * FROM api.list_documents(20, NULL, NULL, NULL, NULL, NULL);
SELECT * FROM api.documents WHERE document_id = md5('doc-' || :t || '-' || :d)::uuid;
COMMIT;
