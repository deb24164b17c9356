-- migrate:up
/*
 * Why: a platform operator who learns that one key of a tenant leaked could
 * only deactivate the whole tenant. Now the operator revokes that key alone;
 * the audit trigger records it like any other change.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';
set local role tenancy_owner;

create function platform.revoke_api_key(p_tenant_id uuid, p_key_id uuid)
returns table (tenant_id uuid, key_id uuid, revoked_at timestamptz)
language plpgsql volatile
as $$
#variable_conflict use_column
begin
  return query
    update core.tenant_api_keys k
    set revoked_at = coalesce(k.revoked_at, now())
    where k.tenant_id = p_tenant_id and k.key_id = p_key_id
    returning k.tenant_id, k.key_id, k.revoked_at;
end
$$;
comment on function platform.revoke_api_key(uuid, uuid) is
  'Revokes one API key of a tenant at once (platform operators); revoking twice keeps the first time; no row when unknown';

grant update (revoked_at) on core.tenant_api_keys to uber_admin;
grant execute on function platform.revoke_api_key(uuid, uuid) to uber_admin;
reset role;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
set local role tenancy_owner;
drop function platform.revoke_api_key(uuid, uuid);
revoke update (revoked_at) on core.tenant_api_keys from uber_admin;
reset role;
