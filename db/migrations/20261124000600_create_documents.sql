-- migrate:up
/*
 * Why: the documents a tenant stores, each authored by one of its own users.
 * The composite foreign key (tenant_id, user_id) makes a reference to another
 * tenant's user impossible, whatever the caller sends. Lists are served by
 * indexes led by tenant_id in the order the API pages through them.
 */
-- Fail fast instead of queueing behind long transactions on a live server.
set local lock_timeout = '5s';
set local statement_timeout = '60s';
create table core.documents (
  tenant_id uuid not null default core.current_tenant_id() references core.tenants (tenant_id),
  document_id uuid not null default gen_random_uuid(),
  user_id uuid not null,
  title text not null check (char_length(title) between 1 and 500),
  content_hash text not null check (content_hash ~ '^[0-9a-f]{64}$'),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (tenant_id, document_id),
  foreign key (tenant_id, user_id) references core.users (tenant_id, user_id)
);
comment on table core.documents is 'Documents of a tenant';
comment on column core.documents.tenant_id is 'Tenant the document belongs to; set from app.tenant_id';
comment on column core.documents.document_id is 'Identity of the document within the tenant';
comment on column core.documents.user_id is 'Author: a user of the same tenant';
comment on column core.documents.title is 'Title, 1-500 characters';
comment on column core.documents.content_hash is 'SHA-256 of the content as 64 lower-case hex digits';
comment on column core.documents.metadata is 'Free-form JSON object';
comment on column core.documents.created_at is 'When the document was created';
comment on column core.documents.updated_at is 'When the row last changed (maintained by trigger)';

create index documents_tenant_created_at_idx on core.documents (tenant_id, created_at desc, document_id desc);
create index documents_tenant_user_created_at_idx
  on core.documents (tenant_id, user_id, created_at desc, document_id desc);

create trigger set_updated_at before update on core.documents
  for each row execute function core.set_updated_at();
create trigger record_audit after insert or update or delete on core.documents
  for each row execute function core.record_audit('document_id');

alter table core.documents enable row level security;
alter table core.documents force row level security;

create policy select_own_tenant on core.documents for select
  using (tenant_id = (select core.current_tenant_id()));
create policy insert_own_tenant on core.documents for insert
  with check (tenant_id = (select core.current_tenant_id()));
create policy update_own_tenant on core.documents for update
  using (tenant_id = (select core.current_tenant_id()))
  with check (tenant_id = (select core.current_tenant_id()));
create policy delete_own_tenant on core.documents for delete
  using (tenant_id = (select core.current_tenant_id()));

grant select, insert (user_id, title, content_hash, metadata),
  update (title, content_hash, metadata), delete on core.documents to app_user;
grant select on core.documents to uber_admin;

create view api.documents with (security_invoker = true) as
  select document_id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at
  from core.documents;
comment on view api.documents is 'Documents of the current tenant';
grant select on api.documents to app_user;

create function api.list_documents(
  p_limit integer default 20,
  p_after_created_at timestamptz default null,
  p_after_document_id uuid default null,
  p_user_id uuid default null,
  p_created_after timestamptz default null,
  p_created_before timestamptz default null
) returns setof api.documents
language sql stable
as $$
  select *
  from api.documents d
  where (p_after_created_at is null or (d.created_at, d.document_id) < (p_after_created_at, p_after_document_id))
    and (p_user_id is null or d.user_id = p_user_id)
    and (p_created_after is null or d.created_at >= p_created_after)
    and (p_created_before is null or d.created_at < p_created_before)
  order by d.created_at desc, d.document_id desc
  limit least(greatest(coalesce(p_limit, 20), 1), 100)
$$;
comment on function api.list_documents(integer, timestamptz, uuid, uuid, timestamptz, timestamptz) is
  'Documents of the current tenant, newest first, keyset-paginated after (created_at, document_id); created_after inclusive, created_before exclusive';

create function api.create_document(
  p_user_id uuid,
  p_title text,
  p_content_hash text,
  p_metadata jsonb default '{}'
) returns setof api.documents
language sql volatile
as $$
  insert into core.documents (user_id, title, content_hash, metadata)
  values (p_user_id, p_title, p_content_hash, coalesce(p_metadata, '{}'))
  returning document_id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at
$$;
comment on function api.create_document(uuid, text, text, jsonb) is
  'Stores a document of the current tenant authored by one of its users';

create function api.update_document(
  p_document_id uuid,
  p_title text default null,
  p_content_hash text default null,
  p_metadata jsonb default null
) returns setof api.documents
language sql volatile
as $$
  update core.documents
  set title = coalesce(p_title, title),
      content_hash = coalesce(p_content_hash, content_hash),
      metadata = coalesce(p_metadata, metadata)
  where document_id = p_document_id
  returning document_id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at
$$;
comment on function api.update_document(uuid, text, text, jsonb) is
  'Changes the given fields of a document of the current tenant (NULL keeps a field); no row when unknown';

create function api.delete_document(p_document_id uuid) returns setof api.documents
language sql volatile
as $$
  delete from core.documents
  where document_id = p_document_id
  returning document_id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at
$$;
comment on function api.delete_document(uuid) is 'Removes a document of the current tenant; no row when unknown';

grant execute on function api.list_documents(integer, timestamptz, uuid, uuid, timestamptz, timestamptz),
  api.create_document(uuid, text, text, jsonb), api.update_document(uuid, text, text, jsonb),
  api.delete_document(uuid) to app_user;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
drop function api.delete_document(uuid);
drop function api.update_document(uuid, text, text, jsonb);
drop function api.create_document(uuid, text, text, jsonb);
drop function api.list_documents(integer, timestamptz, uuid, uuid, timestamptz, timestamptz);
drop view api.documents;
drop table core.documents;
