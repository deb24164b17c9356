-- migrate:up
/*
 * Why: on Citus a context one's own key was given once kept working on the
 * workers after the key was revoked, expired or its tenant deactivated, for
 * reads and for writes within app_user's grants (issue 14; found by the
 * attack on migration 20261204000700). A context is bound there to the
 * distributed transaction alone, which app_user may assign itself on a
 * worker in a SELECT sent there whole; and its 30 seconds were counted from
 * the start of the transaction reading it, which a replay starts anew.
 * Measured: a context read during one request of tenant B, with its
 * transaction's number and stamp, read B's documents after the key was
 * revoked and after B was deactivated, and wrote them, its audit rows
 * filed under the revoked key.
 *
 * Now core.request_context also counts the 30 seconds from when the context
 * was signed, which its MAC covers: on every node a context is worth
 * nothing 30 s after begin_request signed it, as long as a request may hold
 * it after its key's revocation on one server (api.revoke_api_key). Each
 * request signs its own. On one server nothing changes in practice: a
 * transaction there ends within 30 s of its start.
 */
set local lock_timeout = '5s';
set local statement_timeout = '60s';

set local role tenancy_owner;
create or replace view core.request_context with (security_barrier = true) as
  select nullif(split_part(c.signed, '|', 2), '')::uuid as tenant_id,
         nullif(split_part(c.signed, '|', 3), '')::uuid as api_key_id,
         nullif(split_part(c.signed, '|', 4), '')::uuid as user_id,
         nullif(split_part(c.signed, '|', 5), '') as user_role,
         string_to_array(split_part(c.signed, '|', 6), ',') as permissions,
         split_part(c.signed, '|', 7)::uuid as request_id,
         nullif(split_part(c.signed, '|', 8), '') as client_request_id,
         nullif(split_part(c.signed, '|', 10), '')::uuid as operator_id
  from (select current_setting('app.context', true) as signed) c
  where case when c.signed is null or split_part(c.signed, '|', 1) <> 'v4' then false
             when not core.context_verifies(c.signed) then false
             -- Signed before this statement, and less than 30 s ago.
             else split_part(c.signed, '|', 9)::bigint
                  < (extract(epoch from statement_timestamp()) * 1000000)::bigint
              and split_part(c.signed, '|', 9)::bigint
                  > (extract(epoch from clock_timestamp() - interval '30 seconds') * 1000000)::bigint end
    and current_setting('transaction_isolation') = 'read committed'
    and clock_timestamp() < transaction_timestamp() + interval '30 seconds';
comment on view core.request_context is
  'The verified context: one row when app.context carries a valid signature of this transaction and of the number this session signed last, was signed before the current statement and less than 30 s ago, the transaction began less than 30 s ago and is READ COMMITTED; else none';
reset role;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';

set local role tenancy_owner;
create or replace view core.request_context with (security_barrier = true) as
  select nullif(split_part(c.signed, '|', 2), '')::uuid as tenant_id,
         nullif(split_part(c.signed, '|', 3), '')::uuid as api_key_id,
         nullif(split_part(c.signed, '|', 4), '')::uuid as user_id,
         nullif(split_part(c.signed, '|', 5), '') as user_role,
         string_to_array(split_part(c.signed, '|', 6), ',') as permissions,
         split_part(c.signed, '|', 7)::uuid as request_id,
         nullif(split_part(c.signed, '|', 8), '') as client_request_id,
         nullif(split_part(c.signed, '|', 10), '')::uuid as operator_id
  from (select current_setting('app.context', true) as signed) c
  where case when c.signed is null or split_part(c.signed, '|', 1) <> 'v4' then false
             when not core.context_verifies(c.signed) then false
             else split_part(c.signed, '|', 9)::bigint
                  < (extract(epoch from statement_timestamp()) * 1000000)::bigint end
    and current_setting('transaction_isolation') = 'read committed'
    and clock_timestamp() < transaction_timestamp() + interval '30 seconds';
comment on view core.request_context is
  'The verified context: one row when app.context carries a valid signature of this transaction and of the number this session signed last, was signed before the current statement, is less than 30 s old and the transaction is READ COMMITTED; else none';
reset role;
