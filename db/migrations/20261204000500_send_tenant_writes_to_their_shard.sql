-- migrate:up
/*
 * Why: on Citus recording a key's use (api.touch_api_key, once a minute per
 * key, after a request) changed core.api_key_usage through a row comparison
 * with a subquery, from which Citus cannot tell the shard: it sent the
 * update to all 32 shards and took a lock on each for the rest of the
 * transaction (measured: ShareUpdateExclusiveLock on shards 102206 to
 * 102237). So one session holding a touch open, with the app_user password
 * and any key, kept every tenant's touches waiting, and with them the
 * service's connections: with a pool of two, requests answered 503 (found
 * by running tests/app_user_attacks_test.ts on Citus, which now runs there).
 *
 * The attack on this migration's first version found one more:
 * api.update_tenant_config named the tenant through a subquery, and Citus
 * sent its update to all 32 shards too (and one such transaction held open
 * kept another tenant's configuration change waiting until its lock
 * timeout).
 *
 * Now the touch takes the row with FOR UPDATE SKIP LOCKED and then changes
 * it, and the configuration change names the tenant read into a variable:
 * each statement goes to the tenant's shard alone. On one server each does
 * what it did.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- The api's functions run on the coordinator alone: on a deployment
-- distributed already, Citus would make the one replaced here on the workers
-- too, with PostgreSQL's default grant.
set local citus.enable_ddl_propagation = off;

CREATE OR REPLACE FUNCTION api.touch_api_key(p_key_hash text)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_claim record;
begin
  perform core.carry_context_to_workers();
  select h.tenant_id, h.key_id into v_claim from core.api_key_hashes h where h.key_hash = p_key_hash;
  if not found then
    return;
  end if;
  -- The row is taken first, if no one holds it, then changed: each
  -- statement names the tenant, so Citus sends each to its shard alone.
  perform from core.api_key_usage s
  where s.tenant_id = v_claim.tenant_id and s.key_id = v_claim.key_id
    and (s.last_used_at is null or s.last_used_at < now() - interval '1 minute')
  for update skip locked;
  if found then
    update core.api_key_usage u
    set last_used_at = now()
    where u.tenant_id = v_claim.tenant_id and u.key_id = v_claim.key_id;
  end if;
end
$function$;

CREATE OR REPLACE FUNCTION api.update_tenant_config(p_settings_patch jsonb)
 RETURNS SETOF api.tenant_config
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_error text := core.settings_error(p_settings_patch);
  -- (Read first: Citus sends a statement to the tenant's shard alone only
  -- when it names the tenant as a value, not through a subquery.)
  v_tenant_id uuid := core.current_tenant_id();
begin
  perform core.carry_context_to_workers();
  if v_error is not null then
    raise exception '%', v_error using errcode = 'PT422';
  end if;
  -- A JSON merge patch of the top level: keys set to null are removed;
  -- nulls nested inside a value are kept as sent.
  return query
    update core.tenant_configs c
    set settings = (c.settings || p_settings_patch)
      - array(select e.key from jsonb_each(p_settings_patch) as e where e.value = 'null'::jsonb)
    where c.tenant_id = v_tenant_id
    returning c.tenant_id, c.template_id, c.settings, c.created_at, c.updated_at;
end
$function$;

reset citus.enable_ddl_propagation;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
set local citus.enable_ddl_propagation = off;

CREATE OR REPLACE FUNCTION api.touch_api_key(p_key_hash text)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_claim record;
begin
  perform core.carry_context_to_workers();
  select h.tenant_id, h.key_id into v_claim from core.api_key_hashes h where h.key_hash = p_key_hash;
  if not found then
    return;
  end if;
  update core.api_key_usage u
  set last_used_at = now()
  where (u.tenant_id, u.key_id) = (
    select s.tenant_id, s.key_id
    from core.api_key_usage s
    where s.tenant_id = v_claim.tenant_id and s.key_id = v_claim.key_id
      and (s.last_used_at is null or s.last_used_at < now() - interval '1 minute')
    for update skip locked);
end
$function$;

CREATE OR REPLACE FUNCTION api.update_tenant_config(p_settings_patch jsonb)
 RETURNS SETOF api.tenant_config
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_error text := core.settings_error(p_settings_patch);
begin
  perform core.carry_context_to_workers();
  if v_error is not null then
    raise exception '%', v_error using errcode = 'PT422';
  end if;
  -- A JSON merge patch of the top level: keys set to null are removed;
  -- nulls nested inside a value are kept as sent.
  return query
    update core.tenant_configs c
    set settings = (c.settings || p_settings_patch)
      - array(select e.key from jsonb_each(p_settings_patch) as e where e.value = 'null'::jsonb)
    where c.tenant_id = (select core.current_tenant_id())
    returning c.tenant_id, c.template_id, c.settings, c.created_at, c.updated_at;
end
$function$;

reset citus.enable_ddl_propagation;
