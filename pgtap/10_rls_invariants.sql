-- Invariants read from the catalog, so a table, view, function or role added
-- next year is held to the same rules without anyone remembering to list it.
-- Each check returns the offenders; the test passes when there are none, and
-- a failure names them. A sanity check beside each proves the catalog query
-- really finds the objects it is meant to judge (an empty query would pass
-- vacuously).
begin;
select plan(99);

-- The chain's head moves when a transaction commits (a deferred trigger);
-- this suite never commits, so it moves at the end of each statement.
set constraints core.advance_chain_head immediate;

-- pgTAP is installed by the superuser after `alter default privileges revoke
-- execute on functions from public`, so its functions are not executable by
-- the roles the suites switch to. Granted for this transaction only.
grant execute on all functions in schema public to app_user, uber_admin, tenancy_writer;

-- Every ordinary or partitioned table, in any non-system schema, that has a
-- tenant_id column.
create temp view tenant_tables as
  select c.oid, c.oid::regclass::text as tab
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p')
    and n.nspname not in ('pg_catalog', 'information_schema')
    and n.nspname !~ '^pg_(toast|temp)'
    and exists (select from pg_attribute a
                where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped);

\ir lib/audit_partitions.psql

create temp view user_schemas as
  select oid, nspname, nspowner from pg_namespace
  where nspname not in ('pg_catalog', 'information_schema') and nspname !~ '^pg_(toast|temp)';

select set_has(
  'select tab from tenant_tables',
  $$ values ('core.tenants'), ('core.audit_logs'), ('core.tenant_configs'), ('core.users'), ('core.documents'),
            ('core.tenant_api_keys'), ('core.idempotency_keys') $$,
  'the catalog query finds every known tenant-scoped table');

-- Row-level security on every tenant-scoped table ------------------------------

select is(
  array(select tab from tenant_tables t join pg_class c on c.oid = t.oid where not c.relrowsecurity order by 1),
  '{}'::text[],
  'every table with a tenant_id column has row-level security enabled');
select is(
  array(select tab from tenant_tables t join pg_class c on c.oid = t.oid where not c.relforcerowsecurity order by 1),
  '{}'::text[],
  'every table with a tenant_id column forces row-level security, so its owner is bound by it too');
select is(
  array(select tab from tenant_tables t
        join pg_attribute a on a.attrelid = t.oid and a.attname = 'tenant_id'
        where not a.attnotnull order by 1),
  '{}'::text[],
  'every tenant_id column is NOT NULL, so no row escapes its tenant''s policies');

-- core.audit_logs is the one exception to "a policy for every command": it
-- has no UPDATE or DELETE policy because triggers refuse both for every role
-- (checked below).
select is(
  array(select format('%s has no permissive %s policy', t.tab, wanted.cmd)
        from tenant_tables t
        cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE']) as wanted (cmd)
        where t.tab <> 'core.audit_logs' and not pg_temp.is_audit_partition(t.oid)
          and not exists (select from pg_policies p
                          where format('%I.%I', p.schemaname, p.tablename)::regclass = t.oid
                            and p.permissive = 'PERMISSIVE' and p.cmd in (wanted.cmd, 'ALL'))
        order by 1),
  '{}'::text[],
  'every tenant-scoped table except core.audit_logs has a policy for SELECT, INSERT, UPDATE and DELETE');
select is(
  array(select format('%s has no permissive %s policy', t.tab, wanted.cmd)
        from tenant_tables t
        cross join unnest(array['SELECT', 'INSERT']) as wanted (cmd)
        where t.tab = 'core.audit_logs'
          and not exists (select from pg_policies p
                          where format('%I.%I', p.schemaname, p.tablename)::regclass = t.oid
                            and p.permissive = 'PERMISSIVE' and p.cmd in (wanted.cmd, 'ALL'))),
  '{}'::text[],
  'core.audit_logs has policies for SELECT and INSERT');
select policies_are('core', 'audit_logs', array['select_own_tenant', 'insert_own_tenant'],
  'core.audit_logs has only select and insert policies: nothing may update or delete an entry');

select trigger_is('core', 'audit_logs', 'reject_update_delete', 'core', 'reject_audit_change',
  'the reject_update_delete trigger on core.audit_logs runs core.reject_audit_change()');
-- tgtype bits: 1 row, 2 before, 8 delete, 16 update, 32 truncate.
select ok(
  exists (select from pg_trigger
          where tgrelid = 'core.audit_logs'::regclass and tgname = 'reject_update_delete'
            and tgtype & 1 = 1 and tgtype & 2 = 2 and tgtype & 24 = 24 and tgenabled = 'A'),
  'reject_update_delete is a BEFORE UPDATE OR DELETE row trigger enabled ALWAYS');
select ok(
  exists (select from pg_trigger
          where tgrelid = 'core.audit_logs'::regclass and tgname = 'reject_truncate'
            and tgtype & 2 = 2 and tgtype & 32 = 32 and tgenabled = 'A'),
  'reject_truncate is a BEFORE TRUNCATE trigger enabled ALWAYS');

-- ...and it really raises. Creating a tenant writes an audit entry to aim at.
insert into core.tenants (name) values ('Invariant fixture');
select isnt_empty('select 1 from core.audit_logs', 'an audit entry was appended when the tenant was created');
select throws_ok('update core.audit_logs set action = action', '42501',
  'audit_logs is append-only: UPDATE is not allowed',
  'updating an audit entry raises insufficient_privilege, even for the superuser');
select throws_ok('delete from core.audit_logs', '42501', 'audit_logs is append-only: DELETE is not allowed',
  'deleting an audit entry raises insufficient_privilege, even for the superuser');

-- Every trigger of the project fires ALWAYS --------------------------------------

-- Replica mode skips triggers enabled only on origin; it is how a superuser
-- (the only role that may set it) would slip past an origin-only guard.
create temp view project_triggers as
  select t.tgrelid::regclass::text as tab, t.tgname::text as trigger_name, t.tgenabled
  from pg_trigger t join pg_class c on c.oid = t.tgrelid join user_schemas n on n.oid = c.relnamespace
  where not t.tgisinternal;
select set_has('select tab, trigger_name from project_triggers',
  $$ values ('core.audit_logs', 'reject_update_delete'), ('core.documents', 'record_audit'),
            ('core.tenant_api_keys', 'keep_revocation'), ('core.users', 'set_updated_at') $$,
  'the catalog query finds the guard, audit, revocation and timestamp triggers');
select is(
  array(select format('%s on %s (%s)', trigger_name, tab, tgenabled) from project_triggers
        where tgenabled <> 'A' order by 1),
  '{}'::text[],
  'every trigger on a project table is enabled ALWAYS, so replica mode skips none of them');

-- On a Citus shard tg_table_name is the shard's name (documents_102012): a
-- trigger function that needs its table's name is given it as an argument
-- (migration 20261202000200).
select is(
  array(select p.oid::regprocedure::text from pg_proc p join user_schemas n on n.oid = p.pronamespace
        where p.prorettype = 'trigger'::regtype and p.prosrc ~* 'tg_table_name' order by 1),
  '{}'::text[],
  'no trigger function of the project reads tg_table_name, which on a Citus shard names the shard');
select isnt_empty(
  $$ select from pg_proc p join user_schemas n on n.oid = p.pronamespace
     where p.prorettype = 'trigger'::regtype and p.prosrc ~* 'tg_argv' $$,
  'the catalog query reads the trigger functions'' sources (some read their arguments)');
select is(
  array(select format('%s on %s (%s)', g.tgname, g.tgrelid::regclass, encode(g.tgargs, 'escape')) from pg_trigger g
        where g.tgfoid = 'core.hold_for_approval'::regproc
          and (string_to_array(encode(g.tgargs, 'escape'), '\000'))[1] is distinct from (select relname::text from pg_class where oid = g.tgrelid)
        order by 1),
  '{}'::text[],
  'every hold_for_approval trigger names its own table as its argument');
set local session_replication_role = replica;
select throws_ok('delete from core.audit_logs', '42501', 'audit_logs is append-only: DELETE is not allowed',
  'in replica mode the append-only guard still refuses a DELETE');
select throws_ok('truncate core.audit_logs', '42501', 'audit_logs is append-only: TRUNCATE is not allowed',
  'in replica mode the append-only guard still refuses a TRUNCATE');
reset session_replication_role;
-- The triggers PostgreSQL makes for foreign keys fire on origin only, so
-- replica mode skips them; only superusers may enter replica mode.
set local role app_user;
select throws_ok('set session_replication_role = replica', '42501', null,
  'app_user cannot enter replica mode, which skips foreign-key checks');
reset role;
set local role uber_admin;
select throws_ok('set session_replication_role = replica', '42501', null,
  'uber_admin cannot enter replica mode, which skips foreign-key checks');
reset role;

select is(
  array(select format('%I.%I %s', schemaname, tablename, policyname)
        from pg_policies
        where regexp_replace(lower(coalesce(qual, '')), '[\s()]', '', 'g') in ('true', '1=1')
           or regexp_replace(lower(coalesce(with_check, '')), '[\s()]', '', 'g') in ('true', '1=1')
        order by 1),
  '{}'::text[],
  'no policy anywhere is USING (true) or WITH CHECK (true)');
-- Exact text, whitespace aside: a policy with anything added (an OR, a
-- condition dropped) is not the policy reviewed here. Each command of each
-- tenant table names the permission it needs in the signed context (see
-- migration 20261201000400); the tenant and idempotency bookkeeping need
-- only a verified context. USING where the command reads rows, WITH CHECK
-- where it writes them.
create temp table expected_policies (tab text, policy text, qual text, with_check text);
insert into expected_policies values
  ('api_key_hashes', 'delete_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:write''::text = ANY (c.permissions))))', '-'),
  ('api_key_hashes', 'insert_own_tenant', '-', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:write''::text = ANY (c.permissions))))'),
  ('api_key_hashes', 'select_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:read''::text = ANY (c.permissions))))', '-'),
  ('api_key_hashes', 'update_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:write''::text = ANY (c.permissions))))', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:write''::text = ANY (c.permissions))))'),
  ('tenant_domains', 'delete_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '-'),
  ('tenant_domains', 'insert_own_tenant', '-', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))'),
  ('tenant_domains', 'select_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '-'),
  ('tenant_domains', 'update_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))'),
  ('api_key_usage', 'delete_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:write''::text = ANY (c.permissions))))', '-'),
  ('api_key_usage', 'insert_own_tenant', '-', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:write''::text = ANY (c.permissions))))'),
  ('api_key_usage', 'select_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:read''::text = ANY (c.permissions))))', '-'),
  ('api_key_usage', 'update_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:write''::text = ANY (c.permissions))))', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:write''::text = ANY (c.permissions))))'),
  ('approval_requests', 'delete_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '-'),
  ('approval_requests', 'insert_own_tenant', '-', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))'),
  ('approval_requests', 'select_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '-'),
  ('approval_requests', 'update_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))'),
  ('request_windows', 'delete_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '-'),
  ('request_windows', 'insert_own_tenant', '-', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))'),
  ('request_windows', 'select_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '-'),
  ('request_windows', 'update_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))'),
  ('tenant_usage', 'delete_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '-'),
  ('tenant_usage', 'insert_own_tenant', '-', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))'),
  ('tenant_usage', 'select_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '-'),
  ('tenant_usage', 'update_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))'),
  ('audit_chain_heads', 'delete_own_tenant', 'false', '-'),
  ('audit_chain_heads', 'insert_own_tenant', '-', 'false'),
  ('audit_chain_heads', 'select_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''audit:read''::text = ANY (c.permissions))))', '-'),
  ('audit_chain_heads', 'update_own_tenant', 'false', 'false'),
  ('audit_logs', 'insert_own_tenant', '-', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))'),
  ('audit_logs', 'select_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''audit:read''::text = ANY (c.permissions))))', '-'),
  ('documents', 'delete_own_tenant', '((tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''documents:write''::text = ANY (c.permissions)))) AND (user_id = COALESCE(( SELECT c.user_id FROM core.request_context c WHERE (c.user_role = ''member''::text)), user_id)))', '-'),
  ('documents', 'insert_own_tenant', '-', '((tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''documents:write''::text = ANY (c.permissions)))) AND (user_id = COALESCE(( SELECT c.user_id FROM core.request_context c), user_id)))'),
  ('documents', 'select_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''documents:read''::text = ANY (c.permissions))))', '-'),
  ('documents', 'update_own_tenant', '((tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''documents:write''::text = ANY (c.permissions)))) AND (user_id = COALESCE(( SELECT c.user_id FROM core.request_context c WHERE (c.user_role = ''member''::text)), user_id)))', '((tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''documents:write''::text = ANY (c.permissions)))) AND (user_id = COALESCE(( SELECT c.user_id FROM core.request_context c WHERE (c.user_role = ''member''::text)), user_id)))'),
  ('idempotency_keys', 'delete_own_tenant', '((tenant_id = ( SELECT c.tenant_id FROM core.request_context c)) AND (api_key_id = ( SELECT c.api_key_id FROM core.request_context c)))', '-'),
  ('idempotency_keys', 'insert_own_tenant', '-', '((tenant_id = ( SELECT c.tenant_id FROM core.request_context c)) AND (api_key_id = ( SELECT c.api_key_id FROM core.request_context c)))'),
  ('idempotency_keys', 'select_own_tenant', '((tenant_id = ( SELECT c.tenant_id FROM core.request_context c)) AND (api_key_id = ( SELECT c.api_key_id FROM core.request_context c)))', '-'),
  ('idempotency_keys', 'update_own_tenant', '((tenant_id = ( SELECT c.tenant_id FROM core.request_context c)) AND (api_key_id = ( SELECT c.api_key_id FROM core.request_context c)))', '((tenant_id = ( SELECT c.tenant_id FROM core.request_context c)) AND (api_key_id = ( SELECT c.api_key_id FROM core.request_context c)))'),
  ('tenant_api_keys', 'delete_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:write''::text = ANY (c.permissions))))', '-'),
  ('tenant_api_keys', 'insert_own_tenant', '-', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:write''::text = ANY (c.permissions))))'),
  ('tenant_api_keys', 'select_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:read''::text = ANY (c.permissions))))', '-'),
  ('tenant_api_keys', 'update_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:write''::text = ANY (c.permissions))))', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''keys:write''::text = ANY (c.permissions))))'),
  ('tenant_configs', 'delete_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''config:write''::text = ANY (c.permissions))))', '-'),
  ('tenant_configs', 'insert_own_tenant', '-', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''config:write''::text = ANY (c.permissions))))'),
  ('tenant_configs', 'select_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''config:read''::text = ANY (c.permissions))))', '-'),
  ('tenant_configs', 'update_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''config:write''::text = ANY (c.permissions))))', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''config:write''::text = ANY (c.permissions))))'),
  ('tenants', 'delete_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '-'),
  ('tenants', 'insert_own_tenant', '-', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))'),
  ('tenants', 'select_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '-'),
  ('tenants', 'update_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c))'),
  ('users', 'delete_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''users:write''::text = ANY (c.permissions))))', '-'),
  ('users', 'insert_own_tenant', '-', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''users:write''::text = ANY (c.permissions))))'),
  ('users', 'select_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''users:read''::text = ANY (c.permissions))))', '-'),
  ('users', 'update_own_tenant', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''users:write''::text = ANY (c.permissions))))', '(tenant_id = ( SELECT c.tenant_id FROM core.request_context c WHERE (''users:write''::text = ANY (c.permissions))))');
select set_eq(
  $$ select p.tablename::text, p.policyname::text, coalesce(regexp_replace(p.qual, '\s+', ' ', 'g'), '-') as qual,
            coalesce(regexp_replace(p.with_check, '\s+', ' ', 'g'), '-') as with_check
     from pg_policies p join tenant_tables t on t.oid = format('%I.%I', p.schemaname, p.tablename)::regclass
     where p.permissive = 'PERMISSIVE' and p.roles = '{public}' $$,
  'select * from expected_policies',
  'every policy of a tenant-scoped table is exactly the reviewed one, permissive, for every role');
select is(
  array(select format('%I.%I %s', p.schemaname, p.tablename, p.policyname) from pg_policies p
        join tenant_tables t on t.oid = format('%I.%I', p.schemaname, p.tablename)::regclass
        where p.permissive <> 'PERMISSIVE' or p.roles <> '{public}' order by 1),
  '{}'::text[],
  'no tenant-scoped table has a restrictive policy or one for particular roles (which the check above would not see)');
select is(
  array(select format('%I.%I %s (%s)', p.schemaname, p.tablename, p.policyname, p.cmd)
        from pg_policies p join tenant_tables t on t.oid = format('%I.%I', p.schemaname, p.tablename)::regclass
        where p.cmd = 'ALL' order by 1),
  '{}'::text[],
  'no tenant-scoped table has a FOR ALL policy: each command has its own');

-- Views run with the privileges and policies of their caller -------------------

create temp view exposed_views as
  select c.oid, c.oid::regclass::text as view_name, c.reloptions
  from pg_class c join user_schemas n on n.oid = c.relnamespace
  where c.relkind = 'v'
    and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e');

select set_has('select view_name from exposed_views',
  $$ values ('api.documents'), ('api.users'), ('api.api_keys'), ('api.audit_logs'), ('platform.tenants'),
            ('core.request_context') $$,
  'the catalog query finds the views of every schema');
-- Two views run with their owner's rights, by design: core.request_context
-- reads the signing key, api.audit_logs shows old and new values only where
-- the key may read them (app_user may not read core.audit_logs). What makes
-- that harmless is checked right below.
select is(
  array(select view_name from exposed_views v
        where not exists (select from pg_options_to_table(v.reloptions) o
                          where o.option_name = 'security_invoker'
                            and lower(o.option_value) in ('true', 'on', '1', 'yes'))
        order by 1),
  array['api.audit_logs', 'core.request_context'],
  'every view but core.request_context and api.audit_logs is security_invoker, so row-level security applies to its caller');
select is(
  array(select format('%s reads %s', v.view_name, d.refobjid::regclass)
        from exposed_views v
        join pg_rewrite r on r.ev_class = v.oid
        join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid and d.refclassid = 'pg_class'::regclass
        join pg_class t on t.oid = d.refobjid and t.relkind in ('r', 'p')
        where not exists (select from pg_options_to_table(v.reloptions) o
                          where o.option_name = 'security_invoker' and lower(o.option_value) in ('true', 'on', '1', 'yes'))
          and not t.relforcerowsecurity and t.oid <> 'core.context_signing_key'::regclass
        order by 1),
  '{}'::text[],
  'every table a view reads with its owner''s rights forces row-level security on that owner (the signing key aside)');
select is(
  array(select format('%s is owned by %s', v.view_name, r.rolname) from exposed_views v
        join pg_class c on c.oid = v.oid join pg_roles r on r.oid = c.relowner
        where r.rolbypassrls or r.rolsuper or r.rolcanlogin order by 1),
  '{}'::text[],
  'no view is owned by a role that bypasses row-level security or can log in');
select ok(
  exists (select from pg_options_to_table((select reloptions from pg_class where oid = 'core.request_context'::regclass)) o
          where o.option_name = 'security_barrier' and lower(o.option_value) in ('true', 'on', '1', 'yes')),
  'core.request_context is a security_barrier view: no condition of its caller runs before the signature check');
select is(
  array(select distinct d.refobjid::regclass::text
        from pg_rewrite r join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
        where r.ev_class = 'core.request_context'::regclass and d.refclassid = 'pg_class'::regclass
          and d.refobjid <> 'core.request_context'::regclass
        order by 1),
  '{}'::text[],
  'core.request_context reads no table: the signature is checked by core.context_verifies, as tenancy_auth, so the view''s owner''s rights reach nothing');
select is(
  array(select r.rolname::text from pg_roles r
        where (has_sequence_privilege(r.oid, 'core.context_nonce', 'SELECT')
               or has_sequence_privilege(r.oid, 'core.context_nonce', 'USAGE'))
          and not r.rolsuper and r.rolname !~ '^pg_' order by 1),
  array['tenancy_auth', 'tenancy_owner'],
  'only tenancy_auth (which signs) and the owner may read or advance the context numbers, so nobody learns how many requests the platform serves');
select is(
  array(select attname::text from pg_attribute
        where attrelid = 'core.request_context'::regclass and attnum > 0 and not attisdropped order by attnum),
  array['tenant_id', 'api_key_id', 'user_id', 'user_role', 'permissions', 'request_id', 'client_request_id',
        'operator_id'],
  'core.request_context shows the verified context fields and never the key itself');
select is(
  array(select r.rolname::text from pg_roles r
        where has_table_privilege(r.oid, 'core.context_signing_key', 'SELECT') and not r.rolsuper
          and r.rolname !~ '^pg_' order by 1),
  array['tenancy_auth', 'tenancy_owner'],
  'of the project''s roles only tenancy_owner and tenancy_auth, which cannot log in, may read the signing key');
select is(
  array(select r.rolname::text from pg_roles r
        where has_table_privilege(r.oid, 'core.context_signing_key', 'SELECT') and r.rolcanlogin and not r.rolsuper
        order by 1),
  '{}'::text[],
  'no role that can log in may read the signing key (superusers aside), through a predefined role or otherwise');

-- SECURITY DEFINER functions ---------------------------------------------------

create temp view definer_functions as
  select p.oid, p.oid::regprocedure::text as fn, p.proconfig, p.proowner
  from pg_proc p join user_schemas n on n.oid = p.pronamespace
  where p.prosecdef;

select set_eq('select fn from definer_functions',
  $$ values ('core.record_audit()'), ('api.begin_request(text,text,uuid,text,boolean)'), ('api.touch_api_key(text)'),
            ('platform.begin_request(text,uuid,text,boolean)'), ('platform.bootstrap_operator(text)'),
            ('platform.create_operator(text)'), ('platform.revoke_operator(uuid)'),
            ('api.create_api_key(text,text[],uuid,timestamp with time zone)'),
            ('api.revoke_api_key(uuid)'), ('core.revoke_keys_of_deleted_user()'), ('api.delete_user(uuid)'),
            ('api.delete_document(uuid)'), ('api.claim_idempotency_key(text,text)'),
            ('api.save_idempotent_response(text,integer,jsonb)'),
            ('platform.create_api_key(uuid,text,text[],uuid,timestamp with time zone)'),
            ('core.context_verifies(text)'), ('platform.claim_idempotency_key(text,text)'),
            ('platform.save_idempotent_response(text,integer,jsonb)'), ('api.current_tenant()'), ('api.current_tenant_config()'),
            ('api.update_tenant_config(jsonb)'),
            ('api.list_audit_logs(integer,timestamp with time zone,uuid,uuid,text,text,timestamp with time zone,timestamp with time zone)'),
            ('api.export_audit_logs(bigint,integer)'), ('api.verify_audit_chain(bigint,integer,bigint,text)'),
            ('core.advance_chain_head()'), ('core.end_stale_transactions()'), ('core.end_chain_holders(uuid)'),
            ('core.seize_chain_head(uuid)'), ('core.maintain_audit_partitions()'),
            ('core.audit_partition_tenants(timestamp with time zone,timestamp with time zone)'),
            ('core.record_audit_purge(uuid,bigint,bytea,text,integer)'), ('core.end_audit_lock_holders(text[])'),
            ('core.create_tenant_usage()'), ('core.meter_usage()'), ('core.end_usage_holders(uuid)'),
            ('core.seize_usage_row(uuid)'), ('api.current_plan()'), ('core.two_people_required(uuid)'),
            ('core.approved_now(uuid,text)'), ('core.hold_for_approval()'), ('api.request_approval(text,jsonb)'),
            ('api.decide_approval(uuid,boolean)'), ('api.lease_requests(integer)'), ('core.end_window_holders(uuid)'),
            ('core.set_tenant_domain(uuid,text)'), ('platform.create_tenant(text,text,text,text)'),
            ('platform.update_tenant(uuid,text,text,boolean,text)'), ('core.request_has_actor(uuid)'),
            ('core.require_active_operator()'), ('core.decide_as_writer(uuid,uuid,boolean,uuid,uuid)') $$,
  'only the reviewed functions run as SECURITY DEFINER (audit trigger, key authentication, issuing and revoking, platform context, the context''s number, the deletes and idempotency claims app_user may not make itself, the reads it may make only whole, the trail''s partition maintenance, the plan''s usage counts, two-person approval, the lease of a minute''s requests, a tenant''s domain with its claim, the tenant written as one role, whether a change has an actor, whether the platform''s operator is still active, and an approval decided as the role that makes its change)');
select is(
  array(select p.oid::regprocedure::text from pg_proc p join user_schemas n on n.oid = p.pronamespace
        where p.prosrc ~* 'pg_(try_)?advisory' order by 1),
  '{}'::text[],
  'no function serialises with an advisory lock: any role may take the same key and hold it');
-- pg_temp named last is searched last for types and relations; left out of
-- the path, it is searched first.
select is(
  array(select fn || ' ' || coalesce(array_to_string(proconfig, ' '), 'without SET') from definer_functions
        where not exists (select from unnest(proconfig) as c where c ~ '^search_path=(.*, *)?pg_temp$')
        order by 1),
  '{}'::text[],
  'every SECURITY DEFINER function pins a search_path that names pg_temp last');
-- One exception, by name: only a table's owner may add and drop its
-- partitions, so core.maintain_audit_partitions() runs as tenancy_owner.
-- pgtap/33_audit_partitions.sql proves it harmless: no arguments, its
-- settings pinned, and it creates and drops audit partitions only.
select is(
  array(select fn || ' is owned by ' || r.rolname from definer_functions f join pg_roles r on r.oid = f.proowner
        where r.rolcanlogin or r.rolsuper
        order by 1),
  '{}'::text[],
  'every SECURITY DEFINER function is owned by a NOLOGIN role that is no superuser');
select is(
  array(select fn || ' is owned by ' || r.rolname from definer_functions f join pg_roles r on r.oid = f.proowner
        where exists (select from pg_class c where c.relowner = r.oid)
           or exists (select from pg_namespace ns where ns.nspowner = r.oid)
        order by 1),
  array['core.maintain_audit_partitions() is owned by tenancy_owner'],
  'every SECURITY DEFINER function but the audit partitions'' maintenance is owned by a role that owns no table or schema: it runs with its grants alone');
select is(
  array(select distinct r.rolname::text from definer_functions f join pg_roles r on r.oid = f.proowner
        where f.fn <> 'core.maintain_audit_partitions()' order by 1),
  array['tenancy_auditor', 'tenancy_auth', 'tenancy_meter', 'tenancy_reaper', 'tenancy_writer'],
  'the definer functions belong to tenancy_auth (keys and context), tenancy_auditor (the trail), tenancy_writer (deletes, idempotency claims, whole reads), tenancy_reaper (ending stale transactions) and tenancy_meter (usage counts)');
select ok(not rolbypassrls and not rolcanlogin and not rolsuper, 'tenancy_writer cannot log in and is bound by row-level security')
from pg_roles where rolname = 'tenancy_writer';

-- Owners: nobody who can log in owns anything --------------------------------------

-- Objects of the project's schemas and the schemas themselves; extension
-- members (pgcrypto's functions) belong to the extension and are judged below.
create temp view project_objects as
  select 'schema ' || n.nspname as object, n.nspowner as owner from user_schemas n where n.nspname <> 'public'
  union all
  select 'relation ' || c.oid::regclass, c.relowner from pg_class c join user_schemas n on n.oid = c.relnamespace
  where n.nspname <> 'public' and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f', 'c')
    and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
  union all
  select 'function ' || p.oid::regprocedure, p.proowner from pg_proc p join user_schemas n on n.oid = p.pronamespace
  where n.nspname <> 'public'
    and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
  union all
  select 'type ' || t.oid::regtype, t.typowner from pg_type t join user_schemas n on n.oid = t.typnamespace
  where n.nspname <> 'public' and t.typtype in ('d', 'e', 'r', 'm')
    and not exists (select from pg_depend d where d.classid = 'pg_type'::regclass and d.objid = t.oid and d.deptype = 'e');

select cmp_ok((select count(*)::int from project_objects), '>', 50,
  'the catalog query finds the schemas, tables, views and functions of the project');
select is(
  array(select object || ' is owned by ' || r.rolname from project_objects o join pg_roles r on r.oid = o.owner
        where r.rolcanlogin or r.rolsuper order by 1),
  '{}'::text[],
  'no project schema, table, view, sequence, type or function is owned by a role that can log in or by a superuser');
select is(
  array(select object || ' is owned by ' || r.rolname from project_objects o join pg_roles r on r.oid = o.owner
        where object not like 'function %' and r.rolname <> 'tenancy_owner' order by 1),
  '{}'::text[],
  'tenancy_owner owns every schema, table, view and type of the project');
select ok(not rolcanlogin and not rolsuper and not rolbypassrls, 'tenancy_owner cannot log in, is no superuser and does not bypass row-level security')
from pg_roles where rolname = 'tenancy_owner';
-- The excluded class: extension members are owned by whoever created the
-- extension (a superuser). None runs as its owner, and the runtime roles may
-- call only the two the project uses.
select is(
  array(select p.oid::regprocedure::text from pg_proc p join pg_depend d on d.classid = 'pg_proc'::regclass and d.objid = p.oid
        join user_schemas n on n.oid = p.pronamespace and n.nspname <> 'public'
        where d.deptype = 'e' and p.prosecdef order by 1),
  '{}'::text[],
  'no function of an extension in the project''s schemas runs as SECURITY DEFINER');
select is(
  array(select format('%s may execute %s', r, p.oid::regprocedure)
        from pg_proc p join pg_depend d on d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
        join user_schemas n on n.oid = p.pronamespace and n.nspname <> 'public'
        cross join unnest(array['app_user', 'uber_admin']) as r
        where has_function_privilege(r, p.oid, 'EXECUTE')
        order by 1),
  array['app_user may execute extensions.hmac(bytea,bytea,text)',
        'uber_admin may execute extensions.gen_random_bytes(integer)',
        'uber_admin may execute extensions.hmac(bytea,bytea,text)'],
  'of the extensions'' functions app_user may call only hmac (the context check), uber_admin also gen_random_bytes (key issuing)');

-- Temporary objects --------------------------------------------------------------------

select is(
  array(select rolname::text from pg_roles
        where not rolsuper and has_database_privilege(oid, current_database(), 'TEMPORARY') order by 1),
  '{}'::text[],
  'no role but a superuser may create temporary objects in this database (no pg_temp shadows for definer functions)');
select ok(not exists (select from pg_database, aclexplode(coalesce(datacl, acldefault('d', datdba))) a
                      where datname = current_database() and a.grantee = 0 and a.privilege_type = 'TEMPORARY'),
  'PUBLIC holds no TEMPORARY privilege on this database');

-- app_user: the runtime role owns nothing and can escalate to nothing ----------

select is(
  (select count(*)::int from pg_shdepend
   where refclassid = 'pg_authid'::regclass and refobjid = 'app_user'::regrole and deptype = 'o'
     and dbid in (0, (select oid from pg_database where datname = current_database()))),
  0,
  'app_user owns no object of any kind in this database or the cluster');
select is(array(select oid::regclass::text from pg_class where relowner = 'app_user'::regrole order by 1),
  '{}'::text[], 'app_user owns no table, view, sequence or index');
select is(array(select oid::regprocedure::text from pg_proc where proowner = 'app_user'::regrole order by 1),
  '{}'::text[], 'app_user owns no function');
select is(array(select nspname::text from pg_namespace where nspowner = 'app_user'::regrole order by 1),
  '{}'::text[], 'app_user owns no schema');
select is(array(select oid::regtype::text from pg_type where typowner = 'app_user'::regrole order by 1),
  '{}'::text[], 'app_user owns no type');

select isnt_superuser('app_user', 'app_user is not a superuser');
select ok(not rolbypassrls, 'app_user does not bypass row-level security') from pg_roles where rolname = 'app_user';
select ok(not rolcreaterole, 'app_user cannot create roles') from pg_roles where rolname = 'app_user';
select ok(not rolcreatedb, 'app_user cannot create databases') from pg_roles where rolname = 'app_user';

-- Every schema, system and temporary ones included: a temporary schema
-- grants CREATE only to a role with TEMPORARY on the database.
select is(
  array(select nspname::text from pg_namespace
        where has_schema_privilege('app_user', oid, 'CREATE') or has_schema_privilege('uber_admin', oid, 'CREATE')
        order by 1),
  '{}'::text[],
  'neither app_user nor uber_admin can create objects in any schema, temporary ones included');
select ok(has_schema_privilege('app_user', 'api', 'USAGE'), 'app_user may use schema api');
select ok(not has_schema_privilege('app_user', 'platform', 'USAGE'), 'app_user may not use schema platform');

-- LOCK TABLE in an exclusive mode needs only a table-level UPDATE, DELETE or
-- TRUNCATE: with one, app_user could lock a table every tenant's requests read.
select is(
  array(select format('%s on %s', priv, c.oid::regclass)
        from pg_class c join user_schemas n on n.oid = c.relnamespace
        cross join unnest(array['UPDATE', 'DELETE', 'TRUNCATE']) as priv
        where c.relkind in ('r', 'p', 'v', 'm') and has_table_privilege('app_user', c.oid, priv)
        order by 1),
  '{}'::text[],
  'app_user holds no table-level UPDATE, DELETE or TRUNCATE anywhere, so it cannot LOCK a table exclusively');
set local role app_user;
select throws_ok('lock table core.users in access exclusive mode', '42501', null,
  'app_user cannot lock core.users, which every tenant''s authentication reads');
reset role;
-- The planner estimates from statistics even under row-level security:
-- EXPLAIN would show whether a value exists in another tenant (an e-mail
-- address through the lower(email) index), and bisecting estimates on
-- tenant_id finds tenant ids.
select is(
  array(select format('%s.%s', a.attrelid::regclass, a.attname) from pg_attribute a
        join tenant_tables t on t.oid = a.attrelid
        where a.attnum > 0 and not a.attisdropped and a.attstattarget <> 0
        order by 1),
  '{}'::text[],
  'no column of a tenant-scoped table is analyzed, tenant_id included, so no plan estimate shows another tenant''s values or ids');
select is(
  array(select format('%s column %s', i.indexrelid::regclass, a.attnum) from pg_index i
        join tenant_tables t on t.oid = i.indrelid
        join pg_attribute a on a.attrelid = i.indexrelid
        where a.attnum > 0 and i.indkey[a.attnum - 1] = 0 and a.attstattarget <> 0
        order by 1),
  '{}'::text[],
  'no expression of an index on a tenant-scoped table is analyzed either (they keep statistics of their own)');
select isnt_empty(
  $$ select from pg_index i join tenant_tables t on t.oid = i.indrelid where 0 = any (i.indkey::int2[]) $$,
  'the check above has expression indexes to look at (core.users_tenant_email_key)');
select is(
  (select count(*)::int from pg_statistic s
   where s.starelid in (select oid from tenant_tables)
      or s.starelid in (select i.indexrelid from pg_index i join tenant_tables t on t.oid = i.indrelid)),
  0,
  'no statistics of a tenant-scoped table or of its indexes are stored');
-- EXPLAIN ANALYZE counts the rows a filter removes. An index whose first
-- column is tenant_id takes the policy's tenant as an index condition, so a
-- scan never reads another tenant's row; any other index of a tenant table
-- reads other tenants' rows for a condition on its columns, and "Rows
-- Removed by Filter" shows that they exist (a domain, a template in use).
-- So none of those columns may be readable by app_user, directly or through
-- a view it may read (or a view over such a view).
create temp view foreign_row_index_columns as
  select i.indexrelid::regclass::text as index_name, i.indrelid, a.attnum, a.attname
  from pg_index i join tenant_tables t on t.oid = i.indrelid
  -- Key columns, and the columns of expressions and predicates (recorded as
  -- dependencies; a constraint's index records none of its own).
  join pg_attribute a on a.attrelid = i.indrelid
   and (a.attnum = any (i.indkey::int2[])
        or exists (select from pg_depend d
                   where d.classid = 'pg_class'::regclass and d.objid = i.indexrelid
                     and d.refclassid = 'pg_class'::regclass and d.refobjid = i.indrelid and d.refobjsubid = a.attnum))
  where a.attnum > 0 and (i.indkey[0] = 0
     or (select l.attname from pg_attribute l where l.attrelid = i.indrelid and l.attnum = i.indkey[0]) <> 'tenant_id');
select set_has('select index_name || '' '' || attname from foreign_row_index_columns',
  $$ values ('core.tenant_domains_pkey domain'), ('core.tenants_created_at_idx created_at'),
            ('core.tenant_configs_template_id_idx template_id'), ('core.audit_logs_timestamp_idx timestamp'),
            ('core.api_key_hashes_pkey key_hash') $$,
  'the catalog query finds the indexes that do not lead with tenant_id');
select is(
  array(select format('%s.%s (%s)', f.indrelid::regclass, f.attname, f.index_name) from foreign_row_index_columns f
        where has_column_privilege('app_user', f.indrelid, f.attnum, 'SELECT') order by 1),
  '{}'::text[],
  'app_user may read no column of an index that does not lead with tenant_id, so no query of its own filters on one');
select is(
  array(with recursive exposed(rel) as (
          select distinct r.ev_class from foreign_row_index_columns f
          join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass
                          and d.refobjid = f.indrelid and d.refobjsubid = f.attnum
          join pg_rewrite r on r.oid = d.objid and r.ev_class <> f.indrelid
          union
          select r.ev_class from exposed e
          join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass
                          and d.refobjid = e.rel
          join pg_rewrite r on r.oid = d.objid and r.ev_class <> e.rel)
        select e.rel::regclass::text from exposed e
        where has_any_column_privilege('app_user', e.rel, 'SELECT') order by 1),
  '{}'::text[],
  'nor may it read a view over such a column (api.tenant, api.tenant_config, api.audit_logs are read through functions)');
select isnt_empty(
  $$ select from pg_depend d join foreign_row_index_columns f on d.refobjid = f.indrelid and d.refobjsubid = f.attnum
     where d.classid = 'pg_rewrite'::regclass $$,
  'the check above has views over such columns to look at');
select is(
  array(select format('%s on %s', priv, c.oid::regclass)
        from pg_class c join user_schemas n on n.oid = c.relnamespace
        cross join unnest(array['TRUNCATE', 'REFERENCES', 'TRIGGER']) as priv
        cross join unnest(array['app_user', 'uber_admin']) as r
        where c.relkind in ('r', 'p', 'v') and has_table_privilege(r, c.oid, priv)
        order by 1),
  '{}'::text[],
  'neither app_user nor uber_admin may TRUNCATE (which ignores row-level security), reference or add triggers to any table');
select is(
  array(select c.oid::regclass::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname in ('core', 'api', 'platform')
          and exists (select from aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a where a.grantee = 0)
        order by 1),
  '{}'::text[],
  'no table or view in core, api or platform grants anything to PUBLIC');

-- uber_admin bypasses row-level security but is no superuser -------------------

select ok(rolbypassrls, 'uber_admin bypasses row-level security, to operate across tenants')
from pg_roles where rolname = 'uber_admin';
select isnt_superuser('uber_admin', 'uber_admin is not a superuser');
select ok(not rolcreaterole, 'uber_admin cannot create roles') from pg_roles where rolname = 'uber_admin';

select ok(not pg_has_role('app_user', 'uber_admin', 'MEMBER'), 'app_user is not a member of uber_admin');
select is(
  array(select rolname::text from pg_roles
        where (rolsuper or rolbypassrls) and rolname <> 'app_user' and pg_has_role('app_user', oid, 'MEMBER')
        order by 1),
  '{}'::text[],
  'app_user is not a member, directly or indirectly, of any role that bypasses row-level security');
-- pg_stat_activity shows a session's command to its own role's sessions and
-- to members of its role or of pg_read_all_stats: on Citus the commands on
-- a worker carry contexts (migration 20261204000700).
select is(
  array(select r.rolname::text from pg_roles r
        where r.rolname not in ('app_user', 'uber_admin')
          and (pg_has_role('app_user', r.oid, 'MEMBER') or pg_has_role('uber_admin', r.oid, 'MEMBER'))
        order by 1),
  '{}'::text[],
  'neither app_user nor uber_admin is a member of any other role, pg_read_all_stats among them: each reads only its own role''s commands');
-- SET ROLE is checked against the session user, so become app_user for the
-- session (the superuser may, and may come back) rather than only SET ROLE.
set local session authorization app_user;
select throws_ok('set role uber_admin', '42501', 'permission denied to set role "uber_admin"',
  'app_user cannot SET ROLE uber_admin');
select throws_ok('set role postgres', '42501', 'permission denied to set role "postgres"',
  'app_user cannot SET ROLE to the superuser');
reset session authorization;

-- Function privileges -----------------------------------------------------------

select is(
  array(select p.oid::regprocedure::text
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname in ('api', 'core', 'platform')
          and exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                      where a.grantee = 0 and a.privilege_type = 'EXECUTE')
        order by 1),
  '{}'::text[],
  'no function in api, core or platform is executable by PUBLIC');
select ok(has_function_privilege('app_user', 'api.begin_request(text,text,uuid,text,boolean)', 'EXECUTE'),
  'app_user may execute api.begin_request, which it was granted by name');
select is(
  array(select p.oid::regprocedure::text
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'platform' and has_function_privilege('app_user', p.oid, 'EXECUTE')
        order by 1),
  '{}'::text[],
  'app_user may execute no platform function');
select ok(has_function_privilege('uber_admin', 'platform.create_tenant(text,text,text,text)', 'EXECUTE'),
  'uber_admin may execute platform.create_tenant');
select is(
  array(select p.oid::regprocedure::text
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'core' and p.prorettype = 'trigger'::regtype
          and (has_function_privilege('app_user', p.oid, 'EXECUTE')
               or has_function_privilege('uber_admin', p.oid, 'EXECUTE'))
        order by 1),
  '{}'::text[],
  'neither app_user nor uber_admin may execute a trigger function directly');

-- Keys of tenant-scoped tables ---------------------------------------------------

create temp view tenant_unique_indexes as
  select i.indexrelid::regclass::text as index_name, i.indkey, a.attnum as tenant_attnum
  from pg_index i
  join tenant_tables t on t.oid = i.indrelid
  join pg_attribute a on a.attrelid = i.indrelid and a.attname = 'tenant_id'
  where i.indisunique;

select set_has('select index_name from tenant_unique_indexes',
  $$ values ('core.users_pkey'), ('core.users_tenant_email_key'), ('core.api_key_hashes_pkey'),
            ('core.tenant_domains_pkey') $$,
  'the catalog query finds the primary keys, unique constraints and unique indexes of tenant-scoped tables');
-- core.tenants is the root: its primary key is tenant_id itself. Two rules
-- deliberately span tenants: a domain routes to one tenant only, and a key
-- hash names one key before its tenant is known. Each is kept by a registry
-- of its own, keyed by the value (on Citus a reference table, whole on every
-- node); no table distributed by tenant_id could keep them.
select is(
  array(select index_name from tenant_unique_indexes
        where index_name not in ('core.tenant_domains_pkey', 'core.api_key_hashes_pkey')
          and not tenant_attnum = any (string_to_array(indkey::text, ' ')::int2[])
        order by 1),
  '{}'::text[],
  'every primary key, unique constraint and unique index of a tenant-scoped table includes tenant_id (except the platform-wide domain and key hash)');
select ok(
  exists (select from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attname = 'key_hash'
          where i.indrelid = 'core.api_key_hashes'::regclass and i.indisprimary and i.indpred is null
            and i.indkey::text = a.attnum::text),
  'core.api_key_hashes is keyed by key_hash alone: one hash, one key, across every tenant');
select ok(
  exists (select from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attname = 'domain'
          where i.indrelid = 'core.tenant_domains'::regclass and i.indisprimary and i.indpred is null
            and i.indkey::text = a.attnum::text),
  'core.tenant_domains is keyed by domain alone: one domain, one tenant');

create temp view tenant_foreign_keys as
  select c.conname, c.conrelid::regclass::text as tab, c.conkey, c.confkey, s.attnum as src_tenant, r.attnum as ref_tenant
  from pg_constraint c
  join tenant_tables st on st.oid = c.conrelid
  join tenant_tables rt on rt.oid = c.confrelid
  join pg_attribute s on s.attrelid = c.conrelid and s.attname = 'tenant_id'
  join pg_attribute r on r.attrelid = c.confrelid and r.attname = 'tenant_id'
  where c.contype = 'f';

select set_has('select conname::text from tenant_foreign_keys',
  $$ values ('documents_tenant_id_user_id_fkey'), ('tenant_api_keys_tenant_id_user_id_fkey'),
            ('audit_logs_tenant_id_fkey') $$,
  'the catalog query finds the foreign keys between tenant-scoped tables');
select is(
  array(select format('%s on %s', conname, tab) from tenant_foreign_keys f
        where not exists (select from unnest(f.conkey, f.confkey) as k(src, ref)
                          where k.src = f.src_tenant and k.ref = f.ref_tenant)
        order by 1),
  '{}'::text[],
  'every foreign key between tenant-scoped tables pairs tenant_id with tenant_id, so no row can point into another tenant');

create temp view all_foreign_keys as
  select c.conname, c.conrelid, c.conrelid::regclass::text as tab, c.conkey
  from pg_constraint c join user_schemas n on n.oid = c.connamespace
  where c.contype = 'f';

select cmp_ok((select count(*)::int from all_foreign_keys), '>=', 8,
  'the catalog query finds the foreign keys of every schema');
select is(
  array(select format('%s on %s', f.conname, f.tab) from all_foreign_keys f
        where not exists (
          select from pg_index i
          where i.indrelid = f.conrelid and i.indpred is null and i.indnkeyatts >= cardinality(f.conkey)
            and (select array_agg(k order by k)
                 from unnest((string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(f.conkey)]) as k)
              = (select array_agg(k order by k) from unnest(f.conkey) as k))
        order by 1),
  '{}'::text[],
  'every foreign key has an index whose leading columns are its columns, so deletes and joins on it do not scan');

-- No SQL-language function with arguments reads a table ------------------------
-- Citus plans no parameterized statement of an SQL function over a
-- distributed table (migration 20261203000100): a function that reads or
-- writes rows and takes arguments is PL/pgSQL. What an SQL function reads is
-- found by compiling its body again as an SQL-standard body and reading the
-- relations of its range tables (every FROM, JOIN, subquery and write
-- target) from the stored parse tree. Extensions' functions (pgTAP's) are
-- not the schema's.

create function pg_temp.relations_read(p_function oid) returns text[]
language plpgsql
as $$
declare
  v_function pg_proc;
  v_body text;
begin
  select * into strict v_function from pg_proc where oid = p_function;
  v_body := v_function.prosqlbody;
  if v_body is null then
    execute format('create function pg_temp.sql_body_probe(%s) returns %s language sql begin atomic %s
; end', pg_get_function_arguments(p_function), pg_get_function_result(p_function),
      regexp_replace(v_function.prosrc, ';\s*$', ''));
    -- Looked up by name at run time: a regproc literal is planned once, and
    -- every later call would read the first probe's.
    select p.prosqlbody into strict v_body from pg_proc p
    where p.proname = 'sql_body_probe' and p.pronamespace = pg_my_temp_schema();
    drop function pg_temp.sql_body_probe;
  end if;
  -- A range table entry of kind 0 (RTE_RELATION) names a table or view.
  return coalesce(
    (select array_agg(distinct r.relid::regclass::text order by r.relid::regclass::text)
     from (select m[1]::oid as relid from regexp_matches(v_body, ':rtekind 0 :relid (\d+)', 'g') as m) r
     join pg_class c on c.oid = r.relid join user_schemas n on n.oid = c.relnamespace),
    '{}');
end
$$;

create temp view sql_functions_with_arguments as
  select p.oid, p.oid::regprocedure::text as fn
  from pg_proc p join user_schemas n on n.oid = p.pronamespace
  where p.prolang = (select oid from pg_language where lanname = 'sql') and p.pronargs > 0
    and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                    and d.deptype = 'e');

create function pg_temp.reads_a_tenant(p_tenant_id uuid) returns bigint
language sql stable
as $$ select count(*) from core.tenants t where t.tenant_id = p_tenant_id -- a comment at the end $$;
create function pg_temp.reads_a_user(p_user_id uuid) returns bigint
language sql stable
as $$ select count(*) from core.users u
      where u.user_id = p_user_id and exists (select 1 from core.documents d where d.tenant_id = u.tenant_id) $$;
create function pg_temp.reads_a_row(p_row core.audit_logs) returns text
language sql immutable
as $$ select p_row.action || p_row.resource_type $$;
-- The probes in one statement, so that a probe that answers only its first
-- call fails here; a row-typed argument's fields are not a table read.
select is(
  array(select pg_temp.relations_read(f)::text
        from unnest(array['pg_temp.reads_a_tenant'::regproc, 'pg_temp.reads_a_user'::regproc,
                          'pg_temp.reads_a_row'::regproc]) as f),
  '{"{core.tenants}","{core.documents,core.users}","{}"}'::text[],
  'the probe finds the tables an SQL function reads, on every call, and none in a row argument''s fields');
select cmp_ok((select count(*)::int from sql_functions_with_arguments), '>=', 5,
  'the catalog query finds the SQL-language functions with arguments');
select is(
  -- Materialized, so that the probe runs on these functions alone, never
  -- ahead of the view's filters on the rest of pg_proc.
  array(with f as materialized (select * from sql_functions_with_arguments),
             r as materialized (select f.fn, pg_temp.relations_read(f.oid) as reads from f)
        select format('%s reads %s', r.fn, r.reads) from r where r.reads <> '{}' order by 1),
  '{}'::text[],
  'no SQL-language function with arguments reads a table or view (Citus cannot plan its parameterized statements)');

select * from finish();
rollback;
