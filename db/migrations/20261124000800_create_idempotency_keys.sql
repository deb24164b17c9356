-- migrate:up
/*
 * Why: a client that retries a POST after a timeout must not create the
 * resource twice. The first request with an Idempotency-Key stores its
 * response in the same transaction as its write; a retry with the same key
 * (same tenant) gets that response back and creates nothing; the same key
 * with a different body is refused. Keys are per tenant, under RLS, and
 * expire after 24 hours.
 *
 * These rows are request bookkeeping, not business data, so they carry no
 * audit trigger: the write they protect is audited itself.
 *
 * The runtime role also gets server-side time limits here, so a slow query
 * or a client that stalls inside a transaction cannot hold a connection
 * forever, whatever the HTTP layer configures.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create table core.idempotency_keys (
  tenant_id uuid not null default core.current_tenant_id() references core.tenants (tenant_id),
  idempotency_key text not null check (char_length(idempotency_key) between 1 and 255),
  request_hash text not null check (request_hash ~ '^[0-9a-f]{64}$'),
  -- An HTTP status is bounded by 599, so a 32-bit integer cannot overflow.
  -- squawk-ignore prefer-bigint-over-int
  response_status integer check (response_status between 100 and 599),
  response_body jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  expires_at timestamptz not null default now() + interval '24 hours',
  primary key (tenant_id, idempotency_key)
);
comment on table core.idempotency_keys is 'Responses of POST requests sent with an Idempotency-Key, replayed to retries';
comment on column core.idempotency_keys.tenant_id is 'Tenant that sent the request';
comment on column core.idempotency_keys.idempotency_key is 'The client''s Idempotency-Key header';
comment on column core.idempotency_keys.request_hash is 'SHA-256 of method, path and body; a retry must match it';
comment on column core.idempotency_keys.response_status is 'HTTP status of the original response';
comment on column core.idempotency_keys.response_body is 'JSON body of the original response';
comment on column core.idempotency_keys.created_at is 'When the key was first used';
comment on column core.idempotency_keys.updated_at is 'When the row last changed (maintained by trigger)';
comment on column core.idempotency_keys.expires_at is 'After this the key may be reused for a new request';

create index idempotency_keys_tenant_expires_at_idx on core.idempotency_keys (tenant_id, expires_at);

create trigger set_updated_at before update on core.idempotency_keys
  for each row execute function core.set_updated_at();

alter table core.idempotency_keys enable row level security;
alter table core.idempotency_keys force row level security;

create policy select_own_tenant on core.idempotency_keys for select
  using (tenant_id = (select core.current_tenant_id()));
create policy insert_own_tenant on core.idempotency_keys for insert
  with check (tenant_id = (select core.current_tenant_id()));
create policy update_own_tenant on core.idempotency_keys for update
  using (tenant_id = (select core.current_tenant_id()))
  with check (tenant_id = (select core.current_tenant_id()));
create policy delete_own_tenant on core.idempotency_keys for delete
  using (tenant_id = (select core.current_tenant_id()));

grant select, insert (idempotency_key, request_hash),
  update (request_hash, response_status, response_body, created_at, expires_at), delete
  on core.idempotency_keys to app_user;

-- Claims a key for this request, or returns what an earlier request with the
-- same key stored. A concurrent request with the same key waits here until
-- the first one commits or rolls back.
create function api.claim_idempotency_key(p_idempotency_key text, p_request_hash text)
returns table (claimed boolean, request_hash text, response_status integer, response_body jsonb)
language plpgsql volatile
as $$
begin
  -- Keep the table small: drop a few of this tenant's expired keys.
  delete from core.idempotency_keys k
  where k.tenant_id = (select core.current_tenant_id())
    and k.expires_at < now()
    and k.idempotency_key <> p_idempotency_key
    and k.idempotency_key in (
      select e.idempotency_key from core.idempotency_keys e
      where e.tenant_id = (select core.current_tenant_id()) and e.expires_at < now()
      limit 10);

  return query
    insert into core.idempotency_keys as k (idempotency_key, request_hash)
    values (p_idempotency_key, p_request_hash)
    on conflict (tenant_id, idempotency_key) do update
      set request_hash = excluded.request_hash, response_status = null, response_body = null,
          created_at = now(), expires_at = now() + interval '24 hours'
      where k.expires_at < now()
    returning true, k.request_hash, k.response_status, k.response_body;
  if not found then
    return query
      select false, k.request_hash, k.response_status, k.response_body
      from core.idempotency_keys k
      where k.idempotency_key = p_idempotency_key;
  end if;
end
$$;
comment on function api.claim_idempotency_key(text, text) is
  'Claims an Idempotency-Key for the current tenant (claimed = true), or returns the stored request hash and response';

create function api.save_idempotent_response(p_idempotency_key text, p_status integer, p_body jsonb)
returns void
language sql volatile
as $$
  update core.idempotency_keys
  set response_status = p_status, response_body = p_body
  where idempotency_key = p_idempotency_key
$$;
comment on function api.save_idempotent_response(text, integer, jsonb) is
  'Stores the response of the request that claimed an Idempotency-Key, in the same transaction as its write';

grant execute on function api.claim_idempotency_key(text, text),
  api.save_idempotent_response(text, integer, jsonb) to app_user;

-- Server-side limits for the runtime role in this database.
do $$
begin
  execute format('alter role app_user in database %I set statement_timeout = %L', current_database(), '5s');
  execute format('alter role app_user in database %I set idle_in_transaction_session_timeout = %L',
    current_database(), '10s');
  execute format('alter role app_user in database %I set lock_timeout = %L', current_database(), '3s');
end
$$;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
do $$
begin
  execute format('alter role app_user in database %I reset statement_timeout', current_database());
  execute format('alter role app_user in database %I reset idle_in_transaction_session_timeout', current_database());
  execute format('alter role app_user in database %I reset lock_timeout', current_database());
end
$$;
drop function api.save_idempotent_response(text, integer, jsonb);
drop function api.claim_idempotency_key(text, text);
drop table core.idempotency_keys;
