# The distributed cluster of scripts/test --citus: a coordinator and two
# workers on loopback, each a PostgreSQL cluster of its own under .local/citus.
# Sourced by scripts/test after common.sh, never executed.
#
# Why the nodes authenticate one another by certificate: Citus opens its
# connections to the workers as the role running the query (app_user, or a
# definer's owner), with no password. A worker that let those roles in by
# password, or with none, would let whoever holds the app_user password run
# SQL on the shards themselves, past every check the coordinator makes. So a
# worker accepts TCP connections only over TLS with a client certificate of
# the nodes' own client authority, which the nodes hold and present
# (citus.node_conninfo); its superuser reaches it through its Unix socket.
# The certificate then stands for any role, the superuser included (trust
# with clientcert=verify-ca), as Citus needs: roles come and go with
# migrations, and PostgreSQL 15 cannot map one certificate to every role in
# pg_ident.conf. Whoever reads the nodes' key files is therefore superuser on
# every node, as whoever reads their data directories already is.
#
# Who owns what: .local/citus itself, the env file in it (which root sources)
# and the certificates' directory are root's; each node's directory and its
# key files are the postgres user's, which needs them and nothing else.
#
# Citus itself comes from Citus's own packages (see the README); nothing here
# builds or downloads it.

CITUS_DIR="$LOCAL_DIR/citus"
CITUS_TLS_DIR="$CITUS_DIR/tls"
# The coordinator's port; the workers listen on the two after it.
CITUS_PORT="${CITUS_PORT:-54339}"
CITUS_WORKERS="worker1 worker2"
# The nodes this run started, which it stops again (stop_citus_nodes).
CITUS_STARTED_NODES=""

citus_installed() {
  local libdir sharedir
  libdir="$("$PG_BIN/pg_config" --pkglibdir)" && sharedir="$("$PG_BIN/pg_config" --sharedir)" &&
    [ -f "$libdir/citus.so" ] && [ -f "$sharedir/extension/citus.control" ]
}

require_citus() {
  citus_installed ||
    die "Citus is not installed for PostgreSQL $PG_MAJOR: install Citus's own package (README, 'Distributed (Citus)'), then run ./scripts/test --citus again"
}

citus_node_port() { # node
  case "$1" in
  coordinator) echo "$CITUS_PORT" ;;
  worker1) echo $((CITUS_PORT + 1)) ;;
  worker2) echo $((CITUS_PORT + 2)) ;;
  *) die "no Citus node named $1" ;;
  esac
}

# Points the local-cluster helpers of common.sh (init, start, stop, URLs) at
# one node. The coordinator is then "the local cluster" for the rest of the run.
use_citus_node() { # node
  PG_DIR="$CITUS_DIR/$1"
  PG_DATA="$PG_DIR/data"
  PG_SOCKET_DIR="$PG_DIR/run"
  PG_LOG="$PG_DIR/postgres.log"
  LOCAL_PG_PORT="$(citus_node_port "$1")"
  PORT_SETTING=CITUS_PORT
}

CITUS_TLS_FILES="server-ca.crt client-ca.crt server.crt server.key client.crt client.key"

# Two authorities, one for the servers and one for the clients, so that a
# node's server certificate is no client certificate; one server certificate
# for 127.0.0.1 that every node presents, and the nodes' client certificate,
# each limited to its use. The authorities' keys are deleted once they have
# signed: nothing else is ever signed. Made once.
ensure_citus_certificates() {
  local file missing=""
  for file in $CITUS_TLS_FILES; do [ -f "$CITUS_TLS_DIR/$file" ] || missing=yes; done
  [ -n "$missing" ] || return 0
  command -v openssl >/dev/null || die "openssl is missing; run: sudo apt-get install -y openssl"
  log "making the Citus nodes' certificates in .local/citus/tls"
  rm -rf "$CITUS_TLS_DIR"
  mkdir -m 755 "$CITUS_TLS_DIR"
  local authorities
  authorities="$(mktemp -d)"
  (
    umask 077
    cd "$authorities"
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n' >server.ext
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
    for ca in server-ca client-ca; do
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=tenancy-local-$ca" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$ca.key" -out "$ca.crt"
    done
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
    openssl x509 -req -in server.csr -CA server-ca.crt -CAkey server-ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=tenancy-citus-nodes" -keyout client.key -out client.csr
    openssl x509 -req -in client.csr -CA client-ca.crt -CAkey client-ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out client.crt
  ) >"$CITUS_DIR/tls.log" 2>&1 || {
    rm -rf "$authorities"
    die "openssl could not make the certificates; see .local/citus/tls.log"
  }
  # set -e does not hold inside a subshell whose status is tested: look.
  for file in $CITUS_TLS_FILES; do
    [ -s "$authorities/$file" ] || {
      rm -rf "$authorities"
      die "openssl did not make $file; see .local/citus/tls.log"
    }
  done
  for file in $CITUS_TLS_FILES; do
    case "$file" in
    *.key) install -m 600 "$authorities/$file" "$CITUS_TLS_DIR/$file" ;;
    *) install -m 644 "$authorities/$file" "$CITUS_TLS_DIR/$file" ;;
    esac
    if is_root; then chown postgres: "$CITUS_TLS_DIR/$file"; fi
  done
  rm -rf "$authorities"
}

# Written as the postgres user, into the node's own data directory, before
# every start: a node whose first start was interrupted, or that was made by
# an older version of this file, gets them too.
write_citus_node_settings() { # node
  local node="$1" tls="$CITUS_TLS_DIR"
  as_pg_owner tee "$PG_DATA/citus.conf" >/dev/null <<EOF
# Written by scripts/lib/citus.sh before every start of the Citus node $node.
shared_preload_libraries = 'citus'
max_prepared_transactions = 100
ssl = on
ssl_cert_file = '$tls/server.crt'
ssl_key_file = '$tls/server.key'
ssl_ca_file = '$tls/client-ca.crt'
citus.node_conninfo = 'sslmode=verify-full sslrootcert=$tls/server-ca.crt sslcert=$tls/client.crt sslkey=$tls/client.key'
EOF
  # Over TCP: TLS with the nodes' client certificate, on every node; and, on
  # the coordinator only, the service's and the operators' passwords over
  # plain TCP, as on a single server. Over the socket: the superuser.
  {
    echo "# Written by scripts/lib/citus.sh before every start: see there why."
    echo "local all postgres scram-sha-256"
    echo "hostssl all all 127.0.0.1/32 trust clientcert=verify-ca"
    if [ "$node" = coordinator ]; then echo "hostnossl all all 127.0.0.1/32 scram-sha-256"; fi
  } | as_pg_owner tee "$PG_DATA/pg_hba.conf" >/dev/null
  as_pg_owner grep -qx "include 'citus.conf'" "$PG_DATA/postgresql.conf" ||
    echo "include 'citus.conf'" | as_pg_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

start_citus_nodes() {
  ensure_postgres_can_enter_root
  mkdir -p -m 755 "$CITUS_DIR"
  if is_root; then
    # Root sources the env file in here, and writes the others: nobody else
    # may own this directory or anything in it but the nodes' directories
    # (an older version of this file gave it all to postgres).
    local entry
    for entry in "$CITUS_DIR" "$CITUS_DIR"/*; do
      [ -e "$entry" ] || [ -L "$entry" ] || continue
      case "${entry##*/}" in coordinator | worker1 | worker2) [ ! -L "$entry" ] && continue ;; esac
      if [ -L "$entry" ] || [ "$(stat -c %u "$entry")" != 0 ]; then
        die "${entry#"$ROOT/"} is not root's own; remove .local/citus (its nodes and certificates are made again)"
      fi
    done
  fi
  ensure_citus_certificates
  # One superuser password for every node: init_local_cluster gives initdb
  # the file it finds in the node's directory.
  local pwfile="$CITUS_DIR/superuser.pw" node
  [ -f "$pwfile" ] || (umask 077 && random_secret >"$pwfile")
  for node in $CITUS_WORKERS coordinator; do
    use_citus_node "$node"
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
      mkdir -p "$PG_DIR"
      if is_root; then chown postgres: "$PG_DIR"; fi
      # Written by the postgres user, into its own directory.
      as_pg_owner sh -c 'umask 077 && cat >"$1"' sh "$PG_DIR/superuser.pw" <"$pwfile"
      init_local_cluster
    fi
    write_citus_node_settings "$node"
    if local_cluster_running; then
      as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" reload >/dev/null
    else
      # Noted before it starts: a run stopped while a node starts stops it too.
      CITUS_STARTED_NODES="$CITUS_STARTED_NODES $node"
    fi
    start_local_cluster
  done
}

# Stops the nodes this run started; the ones that were running already are
# left running.
stop_citus_nodes() {
  local node
  for node in $CITUS_STARTED_NODES; do
    use_citus_node "$node"
    stop_local_cluster
  done
  CITUS_STARTED_NODES=""
  use_citus_node coordinator
}

# psql as the superuser on one node's database, through its socket.
citus_node_psql() { # node database psql-arguments...
  local node="$1" database="$2"
  shift 2
  PGPASSWORD="$(cat "$CITUS_DIR/superuser.pw")" PGHOST="$CITUS_DIR/$node/run" \
    PGPORT="$(citus_node_port "$node")" PGUSER=postgres PGDATABASE="$database" psql -XAtq -v ON_ERROR_STOP=1 "$@"
}

# Makes a database on every node, with the citus extension on the workers
# only: the coordinator's is created once the migrations have run (see
# prepare_citus_test_database). A database made earlier is dropped first.
fresh_citus_database() { # database
  local database="$1" node
  for node in $CITUS_WORKERS coordinator; do
    citus_node_psql "$node" postgres -c "drop database if exists \"$database\" with (force)" \
      -c "create database \"$database\"" || return 1
    [ "$node" = coordinator ] || citus_node_psql "$node" "$database" -c 'create extension citus' || return 1
  done
}

# The citus extension on the coordinator's database, which then knows itself
# and the workers.
join_citus_nodes() { # database
  local node
  citus_node_psql coordinator "$1" -c 'create extension citus' \
    -c "select citus_set_coordinator_host('127.0.0.1', $(citus_node_port coordinator))" >/dev/null || return 1
  for node in $CITUS_WORKERS; do
    citus_node_psql coordinator "$1" \
      -c "select citus_add_node('127.0.0.1', $(citus_node_port "$node"))" >/dev/null || return 1
  done
}

# The coordinator's roles on every worker: Citus copies to a joining node only
# the roles it tracks, and the migrations made theirs before the extension
# was there. Attributes, memberships and per-role settings are copied;
# passwords are not, as no worker takes one over TCP. The statements go from
# the coordinator's catalog to the workers through run_command_on_workers,
# never through a psql script, where a setting's name could hold a
# backslash command. (A setting whose value is a list would be copied as one
# string; no role has one.)
copy_citus_roles() { # database
  citus_node_psql coordinator "$1" >"$WORK/copied_roles" <<'SQL' || return 1
with statements (statement) as (
select format('do $$ begin if not exists (select from pg_roles where rolname = %L) then create role %I; end if; end $$;', r.rolname, r.rolname)
  || format(' alter role %I with %s %s %s %s %s %s %s connection limit %s;', r.rolname,
       case when r.rolsuper then 'superuser' else 'nosuperuser' end,
       case when r.rolinherit then 'inherit' else 'noinherit' end,
       case when r.rolcreaterole then 'createrole' else 'nocreaterole' end,
       case when r.rolcreatedb then 'createdb' else 'nocreatedb' end,
       case when r.rolcanlogin then 'login' else 'nologin' end,
       case when r.rolreplication then 'replication' else 'noreplication' end,
       case when r.rolbypassrls then 'bypassrls' else 'nobypassrls' end,
       r.rolconnlimit)
from pg_roles r where r.rolname !~ '^pg_' and r.rolname <> current_user
union all
select format('grant %I to %I%s;', g.rolname, m.rolname, case when a.admin_option then ' with admin option' else '' end)
from pg_auth_members a join pg_roles g on g.oid = a.roleid join pg_roles m on m.oid = a.member
where m.rolname !~ '^pg_' and m.rolname <> current_user
union all
select format('alter role %I%s set %I = %L;', r.rolname,
         case when s.setdatabase = 0 then '' else format(' in database %I', current_database()) end,
         split_part(c.setting, '=', 1), substr(c.setting, strpos(c.setting, '=') + 1))
from pg_db_role_setting s join pg_roles r on r.oid = s.setrole, unnest(s.setconfig) c (setting)
where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
)
select w.nodename || ':' || w.nodeport || ' ' || w.success::text || ' ' || left(w.result, 200)
-- A worker that knows the cluster would pass role commands on to the other
-- nodes, and two workers doing so at once deadlock: each keeps its own.
from statements,
     run_command_on_workers('begin; set local citus.enable_ddl_propagation = off; ' || statement || ' commit;') w
where not w.success;
SQL
  if [ -s "$WORK/copied_roles" ]; then
    echo "copying the roles failed on a worker: $(head -n 3 "$WORK/copied_roles")"
    return 1
  fi
}

# The tables distributed, as a deployment that grew does it once its
# workers have joined: core.distribute_on_citus() (migration
# 20261202000300), as the superuser on the coordinator.
distribute_citus_tables() { # database
  local result
  result="$(citus_node_psql coordinator "$1" -c 'set client_min_messages = warning' \
    -c 'select core.distribute_on_citus()' 2>&1)" || {
    echo "core.distribute_on_citus() failed: $(grep -m1 'ERROR' <<<"$result")"
    return 1
  }
  [ "$result" = distributed ] || {
    echo "core.distribute_on_citus() distributed nothing: $result"
    return 1
  }
}

# --- the suites of scripts/test --citus ----------------------------------------

# The migrations but the newest: that one then runs on a distributed
# database, as it will on a deployment that grew before it was written (a
# function made there as an owner role fails on the workers, say).
migrate_all_but_newest() { # database-url
  local older="$WORK/older_migrations" migration newest
  newest="$(find "$ROOT/db/migrations" -name '*.sql' | sort | tail -n 1)"
  mkdir -p "$older"
  for migration in "$ROOT"/db/migrations/*.sql; do
    [ "$migration" = "$newest" ] || ln -s "$migration" "$older/"
  done
  dbmate_on "$1" --wait --wait-timeout 30s --migrations-dir "$older" --no-dump-schema up >&2 ||
    die "dbmate up (all but the newest migration) failed for the database $(url_database_name "$1")"
}

# The test database as a deployment that outgrows one server gets it: the
# migrations run on the coordinator alone, as on a single server, and then
# the coordinator gets the citus extension and the workers join; the
# newest migration runs last, on the distributed database. (Objects
# made while the extension is there but the workers are not yet cannot be
# copied to them later: Citus 13.2 replays each grant as its grantor, and the
# definer roles may not use the schemas of the functions they own.)
prepare_citus_test_database() {
  fresh_citus_database "$test_db" &&
    migrate_all_but_newest "$TEST_DATABASE_URL" &&
    join_citus_nodes "$test_db" &&
    copy_citus_roles "$test_db" &&
    distribute_citus_tables "$test_db" &&
    migrate_database "$TEST_DATABASE_URL" &&
    with_pg_env "$TEST_DATABASE_URL" psql -XqAtc 'create extension if not exists pgtap' >/dev/null &&
    # Citus makes an extension on the workers too, where the coordinator's
    # default privileges do not reach: pgTAP's functions, some of which run
    # any SQL they are given, would be everyone's there, and a SELECT pushed
    # down to a worker runs the functions it names.
    with_pg_env "$TEST_DATABASE_URL" psql -XqAtc "select core.on_workers('revoke execute on all functions in schema public from public')" >/dev/null ||
    return 1
  local worker missing failures=0
  for worker in $CITUS_WORKERS; do
    missing="$(LC_ALL=C comm -23 <(citus_node_psql coordinator "$test_db" -c "select rolname from pg_roles order by 1") \
      <(citus_node_psql "$worker" "$test_db" -c "select rolname from pg_roles order by 1") | paste -sd, -)"
    if [ -n "$missing" ]; then
      echo "$worker lacks the coordinator's roles $missing"
      failures=$((failures + 1))
    fi
  done
  [ "$failures" -eq 0 ] || return 1
  echo "coordinator on $LOCAL_PG_HOST:$CITUS_PORT and workers on the next two ports, with the coordinator's roles; $test_db migrated to $(with_pg_env "$TEST_DATABASE_URL" psql -XAtc 'select max(version) from schema_migrations'), the newest migration after distributing"
}

# One connection attempt that must be refused by authentication: it fails,
# and with one of the messages the server gives for that (not, say, a worker
# that is down). The variables are exported in a subshell, never passed in
# an argv: among them are passwords. With "as-postgres", psql runs as the
# postgres user, who may read the nodes' key files.
refused() { # description [as-postgres] NAME=value... -- psql-arguments...
  local description="$1" output runner=""
  shift
  if [ "$1" = as-postgres ]; then
    runner=as_pg_owner
    shift
  fi
  local assignments=()
  while [ "$1" != -- ]; do
    assignments+=("$1")
    shift
  done
  shift
  if output="$(export "${assignments[@]}" PGCONNECT_TIMEOUT=5 && $runner psql -XAtq "$@" -c 'select 1' 2>&1)"; then
    echo "let in: $description"
    return 1
  fi
  # The server's own refusals (libpq adds "FATAL:" before them), and the TLS
  # alert a worker sends for a certificate of no authority it trusts.
  if ! grep -qE 'FATAL: +(no pg_hba.conf entry|connection requires a valid client certificate|password authentication failed)|SSL error: tlsv1 alert unknown ca' <<<"$output"; then
    echo "refused for another reason than authentication: $description: $(head -n 1 <<<"$output")"
    return 1
  fi
}

# What the app_user or uber_admin password alone reaches on a worker: nothing,
# over TCP with or without TLS, or through the socket. The same roles with the
# nodes' certificate do get in, so the refusals are the authentication's
# doing and not a worker that is down or a role it lacks.
check_workers_refuse_passwords() {
  local worker port failures=0 mode role password
  local superuser_password
  superuser_password="$(cat "$CITUS_DIR/superuser.pw")"
  for worker in $CITUS_WORKERS; do
    port="$(citus_node_port "$worker")"
    for role in app_user uber_admin postgres; do
      case "$role" in
      app_user) password="$APP_USER_PASSWORD" ;;
      uber_admin) password="$UBER_ADMIN_PASSWORD" ;;
      postgres) password="$superuser_password" ;;
      esac
      for mode in disable prefer require; do
        refused "$role on $worker over TCP, sslmode=$mode, with its password" \
          PGPASSWORD="$password" PGSSLMODE="$mode" -- -h "$LOCAL_PG_HOST" -p "$port" -U "$role" -d "$test_db" ||
          failures=$((failures + 1))
      done
      [ "$role" = postgres ] ||
        refused "$role on $worker through its socket, with its password" \
          PGPASSWORD="$password" -- -h "$CITUS_DIR/$worker/run" -p "$port" -U "$role" -d "$test_db" ||
        failures=$((failures + 1))
      if ! as_pg_owner env PGSSLMODE=verify-full PGSSLROOTCERT="$CITUS_TLS_DIR/server-ca.crt" \
        PGSSLCERT="$CITUS_TLS_DIR/client.crt" PGSSLKEY="$CITUS_TLS_DIR/client.key" PGCONNECT_TIMEOUT=5 \
        psql -XAtq -h "$LOCAL_PG_HOST" -p "$port" -U "$role" -d "$test_db" -c 'select 1' >/dev/null; then
        echo "$worker refused $role with the nodes' certificate too"
        failures=$((failures + 1))
      fi
    done
    # A node's server certificate is no client certificate.
    refused "postgres on $worker with the server certificate as a client certificate" as-postgres \
      PGSSLMODE=require PGSSLCERT="$CITUS_TLS_DIR/server.crt" PGSSLKEY="$CITUS_TLS_DIR/server.key" \
      -- -h "$LOCAL_PG_HOST" -p "$port" -U postgres -d "$test_db" || failures=$((failures + 1))
  done
  [ "$failures" -eq 0 ] || return 1
  echo "every worker refuses the passwords of app_user, uber_admin and the superuser over TCP with and without TLS, those of app_user and uber_admin through its socket, and the server certificate as a client's; and takes the nodes' certificate"
}

# On every node, neither runtime role may execute a function of the citus
# extension: among them are some that start a rebalance, cancel the
# cluster's background jobs or run SQL on other nodes. The aggregate helpers
# among them (coord_combine_agg and the like) combine aggregates over several
# shards, which no tenant query should need: each is to route to one shard.
# Two are let through everywhere: get_current_transaction_id, which says
# which distributed transaction this is (the request context and the audit
# trail's time are bound to it) and sets nothing, and
# relation_is_a_known_shard, which Citus calls in every read of pg_class to
# hide its shards and which says only whether a table is one.
# Five more are let through on the workers alone, which Citus calls over the
# connections it opens to a worker, as the role it connects as:
# assign_distributed_transaction_id, override_backend_data_gpid,
# lock_shard_resources, lock_shard_metadata and read_intermediate_result (a
# subquery's rows). Only the nodes reach a worker (the suite above); on the
# coordinator the first would let a session bind itself to another
# transaction.
check_citus_functions_revoked() {
  local node granted failures=0 allowed
  for node in coordinator $CITUS_WORKERS; do
    allowed="'get_current_transaction_id', 'relation_is_a_known_shard'"
    [ "$node" = coordinator ] ||
      allowed="$allowed, 'assign_distributed_transaction_id', 'override_backend_data_gpid', 'lock_shard_resources',
        'lock_shard_metadata'"
    granted="$(citus_node_psql "$node" "$test_db" -c "
      select count(*) || ': ' || coalesce(string_agg(distinct p.proname, ', ' order by p.proname), '')
      from pg_proc p
      join pg_depend d on d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
      join pg_extension e on e.oid = d.refobjid and e.extname = 'citus'
      cross join (values ('app_user'), ('uber_admin')) r (role)
      where has_function_privilege(r.role, p.oid, 'execute') and p.proname not in ($allowed)")" || return 1
    if [ "${granted%%:*}" != 0 ]; then
      echo "$node: app_user or uber_admin may execute Citus functions (${granted%%:*} grants): $(cut -c1-300 <<<"${granted#*: }")"
      failures=$((failures + 1))
    fi
  done
  [ "$failures" -eq 0 ] || return 1
  echo "neither app_user nor uber_admin may execute any function of the citus extension, on any node, but get_current_transaction_id and relation_is_a_known_shard, and on the workers those Citus calls itself over its connections (read_intermediate_result is the definers' owners' alone there)"
}

# Every table of the project's schemas, found in the catalog, is a Citus
# table (distributed or reference); else its rows live on the coordinator
# alone and the suites after this one would prove nothing about Citus. One
# is each node's own by design: core.context_signing_key, which the
# policies read on the shards, where no Citus table may be read; it holds
# the same key on every node (checked here, by digest).
check_tables_distributed() {
  local local_tables generic worker key_digest failures=0
  local_tables="$(with_pg_env "$TEST_DATABASE_URL" psql -XAtc "
    select string_agg(c.oid::regclass::text, ', ' order by c.oid::regclass::text)
    from pg_class c
    where c.relnamespace in ('core'::regnamespace, 'api'::regnamespace, 'platform'::regnamespace)
      and c.relkind in ('r', 'p') and not c.relispartition
      and c.oid <> 'core.context_signing_key'::regclass
      and not exists (select from pg_dist_partition d where d.logicalrelid = c.oid)")" || return 1
  if [ -n "$local_tables" ]; then
    echo "tables left on the coordinator alone: $local_tables"
    failures=$((failures + 1))
  fi
  # Citus plans no generic plan of theirs (migration 20261203000100).
  generic="$(with_pg_env "$TEST_DATABASE_URL" psql -XAtc "
    select string_agg(p.oid::regprocedure::text, ', ' order by p.oid::regprocedure::text) from pg_proc p
    where 'plan_cache_mode=force_generic_plan' = any (p.proconfig)")" || return 1
  if [ -n "$generic" ]; then
    echo "functions still planned once for every call, which Citus cannot plan: $generic"
    failures=$((failures + 1))
  fi
  key_digest="select encode(sha256(secret), 'hex') from core.context_signing_key"
  for worker in $CITUS_WORKERS; do
    if [ "$(citus_node_psql "$worker" "$test_db" -c "$key_digest")" != "$(citus_node_psql coordinator "$test_db" -c "$key_digest")" ]; then
      echo "$worker does not hold the coordinator's context signing key"
      failures=$((failures + 1))
    fi
  done
  [ "$failures" -eq 0 ] || return 1
  echo "every table of core, api and platform is distributed or a reference table, no function is planned generically, and every worker holds the coordinator's context signing key"
}

# The ACL of each function, schema and table, and on a worker of each shard
# as the ACL of the table it belongs to.
citus_acl_query() { # shards-as-tables: yes (a worker's) or no (the coordinator's)
  local relname="c.relname" partitions="" column_inserts=""
  if [ "$1" = yes ]; then
    relname="regexp_replace(c.relname, '_[0-9]+\$', '')"
    partitions=" and not c.relispartition"
  else
    # A shard receives every column of an insert, so on the workers a role
    # the coordinator grants INSERT on some columns of a distributed table
    # has the whole table's (migration 20261204000600).
    column_inserts="union
    select format('%s=INSERT/%s', e.grantee::regrole, e.grantor::regrole)
    from pg_attribute att cross join lateral aclexplode(att.attacl) e
    where att.attrelid = c.oid and att.attnum > 0 and e.privilege_type = 'INSERT' and e.grantee <> 0
      and exists (select from pg_dist_partition d where d.logicalrelid = c.oid)"
  fi
  cat <<SQL
with ours as (select oid, nspname from pg_namespace where nspname in ('core', 'api', 'platform', 'extensions', 'public'))
select 'function ' || p.oid::regprocedure::text || ' ' || p.proowner::regrole || ' ' || coalesce((select string_agg(i::text, ',' order by i::text) from unnest(p.proacl) i), '(default)')
from pg_proc p join ours on ours.oid = p.pronamespace
union all
select 'schema ' || nspname || ' ' || nspowner::regrole || ' ' || coalesce((select string_agg(i::text, ',' order by i::text) from unnest(nspacl) i), '(default)')
from pg_namespace where oid in (select oid from ours)
union all
-- A table's privileges one per line, so that a difference names the privilege.
select 'relation ' || ours.nspname || '.' || $relname || ' ' || c.relowner::regrole || ' ' || coalesce(g.privilege, '(default)')
from pg_class c join ours on ours.oid = c.relnamespace
left join lateral (
    select format('%s=%s%s/%s', case when e.grantee = 0 then 'public' else e.grantee::regrole::text end,
                  e.privilege_type, case when e.is_grantable then ' with grant option' else '' end, e.grantor::regrole)
    from aclexplode(c.relacl) e
    $column_inserts
  ) as g (privilege) on true
where c.relkind in ('r', 'p', 'v', 'S')$partitions
SQL
}

# Privileges on a worker are the coordinator's: Citus replays most grants,
# but not every default privilege (ALTER DEFAULT PRIVILEGES does not reach
# the workers), so each object a worker has must carry the coordinator's
# owner and ACL, and each distributed table must be among them.
check_privileges_on_every_node() {
  local worker failures=0 table
  citus_node_psql coordinator "$test_db" <<<"$(citus_acl_query no)" | LC_ALL=C sort -u >"$WORK/acl.coordinator" || return 1
  for worker in $CITUS_WORKERS; do
    # Citus hides the shards from pg_class unless told not to.
    citus_node_psql "$worker" "$test_db" <<<"set citus.override_table_visibility = off; $(citus_acl_query yes)" |
      LC_ALL=C sort -u >"$WORK/acl.$worker" || return 1
    while read -r table; do
      grep -q "^relation $table " "$WORK/acl.$worker" || {
        echo "$worker has no shard of $table"
        failures=$((failures + 1))
      }
    done < <(citus_node_psql coordinator "$test_db" -c "
      select d.logicalrelid::regclass::text from pg_dist_partition d join pg_class c on c.oid = d.logicalrelid
      where not c.relispartition order by 1")
    LC_ALL=C comm -23 "$WORK/acl.$worker" "$WORK/acl.coordinator" >"$WORK/acl.$worker.diff"
    if [ -s "$WORK/acl.$worker.diff" ]; then
      echo "$worker: $(wc -l <"$WORK/acl.$worker.diff") owners or privileges the coordinator does not have, first:"
      head -n 10 "$WORK/acl.$worker.diff" | sed 's/^/  /'
      failures=$((failures + 1))
    fi
  done
  [ "$failures" -eq 0 ] || return 1
  echo "every function, schema, table and shard on the workers has the coordinator's owner and privileges ($(cut -d' ' -f1,2 "$WORK/acl.coordinator" | sort -u | wc -l) objects)"
}

# The tenant whose trail records what operators do to no tenant in particular.
PLATFORM_TENANT_ID=00000000-0000-0000-0000-000000000000

fixture_value() { # name text-of-name=value-words
  tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"
}

# The tenants, users, keys, a document and a pending approval that the
# routing checks call functions on (scripts/lib/citus_routing_calls.txt
# names them), made through the api and platform functions as the service
# makes them, and committed; as the bootstrap operator, whose credential is
# the platform token (the service's bootstrap then finds it made). Prints
# name=value lines; the keys among them are secrets, kept out of argv.
make_routing_fixture() {
  local platform tenant members approvers request
  platform="$(PLATFORM_ADMIN_TOKEN="$PLATFORM_ADMIN_TOKEN" with_pg_env "$ADMIN_TEST_URL" psql -XAtq -v ON_ERROR_STOP=1 <<'SQL'
\getenv token PLATFORM_ADMIN_TOKEN
select encode(sha256(convert_to(:'token', 'UTF8')), 'hex') as credential \gset
select platform.bootstrap_operator(:'credential') as bootstrapped \gset
\set begin 'begin; select operator_id from platform.begin_request(:''credential'', gen_random_uuid(), null, false) \\gset'
:begin
select tenant_id from platform.create_tenant('Routing check', null, 'pro', null) \gset
commit;
:begin
select key from platform.create_api_key(:'tenant_id', 'routing check', '{*}', null) \gset
commit;
:begin
select tenant_id as approving_tenant_id from platform.create_tenant('Routing check, two people', null, 'pro', 'Fintech Template') \gset
commit;
:begin
select key as approving_key from platform.create_api_key(:'approving_tenant_id', 'routing check', '{*}', null) \gset
commit;
:begin
select operator_id as other_operator_id from platform.create_operator('routing-check-to-revoke-' || left(gen_random_uuid()::text, 8)) \gset
commit;
select plan_id from platform.plans where tier = 'pro' \gset
\echo operator_id=:operator_id other_operator_id=:other_operator_id plan_id=:plan_id
\echo tenant_id=:tenant_id key=:key approving_tenant_id=:approving_tenant_id approving_key=:approving_key
SQL
)" || { echo "could not make the routing check's tenants"; return 1; }
  tenant="$(ROUTING_KEY="$(fixture_value key "$platform")" with_pg_env "$APP_TEST_URL" psql -XAtq -v ON_ERROR_STOP=1 <<'SQL'
\getenv key ROUTING_KEY
\set begin 'begin; select tenant_id from api.begin_request(encode(sha256(convert_to(:''key'', ''UTF8'')), ''hex''), null, gen_random_uuid(), null, false) \\gset'
:begin
select user_id from api.create_user('routing-admin@example.com', 'tenant_admin') \gset
commit;
:begin
select user_id as member_id from api.create_user('routing-member@example.com', 'member') \gset
commit;
:begin
select document_id from api.create_document(:'user_id', 'Routing check', repeat('a', 64), '{}') \gset
commit;
:begin
select key_id as revocable_key_id from api.create_api_key('routing check, to revoke', '{documents:read}', null, null) \gset
commit;
\echo user_id=:user_id member_id=:member_id document_id=:document_id revocable_key_id=:revocable_key_id
SQL
)" || { echo "could not make the routing check's users, document and key"; return 1; }
  members="$(ROUTING_KEY="$(fixture_value approving_key "$platform")" with_pg_env "$APP_TEST_URL" psql -XAtq -v ON_ERROR_STOP=1 <<'SQL'
\getenv key ROUTING_KEY
\set begin 'begin; select tenant_id from api.begin_request(encode(sha256(convert_to(:''key'', ''UTF8'')), ''hex''), null, gen_random_uuid(), null, false) \\gset'
:begin
select user_id as requesting_user_id from api.create_user('routing-requester@example.com', 'tenant_admin') \gset
commit;
:begin
select user_id as approving_user_id from api.create_user('routing-approver@example.com', 'tenant_admin') \gset
commit;
\echo :requesting_user_id :approving_user_id
SQL
)" || { echo "could not make the routing check's two people"; return 1; }
  # Issued by the operator: a key no key issued, so that approving the
  # other's request is not approving one's own (api.decide_approval).
  approvers="$(PLATFORM_ADMIN_TOKEN="$PLATFORM_ADMIN_TOKEN" with_pg_env "$ADMIN_TEST_URL" psql -XAtq -v ON_ERROR_STOP=1 \
    -v tenant="$(fixture_value approving_tenant_id "$platform")" -v requester="${members% *}" -v approver="${members#* }" <<'SQL'
\getenv token PLATFORM_ADMIN_TOKEN
\set begin 'begin; select operator_id from platform.begin_request(encode(sha256(convert_to(:''token'', ''UTF8'')), ''hex''), gen_random_uuid(), null, false) \\gset'
:begin
select key as requester_key from platform.create_api_key(:'tenant', 'requester', '{*}', :'requester') \gset
commit;
:begin
select key as approver_key from platform.create_api_key(:'tenant', 'approver', '{*}', :'approver') \gset
commit;
\echo :requester_key :approver_key
SQL
)" || { echo "could not make the routing check's keys of two people"; return 1; }
  request="$(ROUTING_KEY="${approvers% *}" with_pg_env "$APP_TEST_URL" psql -XAtq -v ON_ERROR_STOP=1 <<'SQL'
\getenv key ROUTING_KEY
begin;
select tenant_id from api.begin_request(encode(sha256(convert_to(:'key', 'UTF8')), 'hex'), null, gen_random_uuid(), null, false) \gset
select approval ->> 'approval_id' as approval_id from api.request_approval('update_tenant_config', '{"settings": {"currency": "USD"}}') \gset
commit;
\echo :approval_id
SQL
)" || { echo "could not make the routing check's approval request"; return 1; }
  tr ' ' '\n' <<<"$platform $tenant"
  printf '%s\n' "requester_key=${approvers% *}" "approver_key=${approvers#* }" "approval_id=$request"
}

# The shards named in the commands a psql session was told Citus sent or ran
# (citus.log_remote_commands, on the coordinator and, passed on with SET
# LOCAL, on the workers), comma-separated. A shard is named
# schema.table_shardid, in a schema that holds distributed tables.
shards_reached() { # psql-output
  local schemas
  schemas="$(with_pg_env "$TEST_DATABASE_URL" psql -XAt -v ON_ERROR_STOP=1 -c "
    select string_agg(distinct n.nspname, '\|') from pg_dist_partition d
    join pg_class c on c.oid = d.logicalrelid join pg_namespace n on n.oid = c.relnamespace")" || return 1
  { grep 'issuing\|executing the command locally' <<<"$1" || true; } |
    { grep -o "\($schemas\)\.[a-z0-9_]*_[0-9][0-9]*" || true; } | { grep -o '[0-9]*$' || true; } |
    sort -un | paste -sd, -
}

# The shards among a comma-separated list that a call for one tenant should
# not have reached, counted by table: none of a reference table is, and of a
# table distributed by tenant_id only the tenant's (or, with a tenant of '',
# any one tenant's) and the Platform tenant's if given, and of one
# distributed by operator_id only the operator's.
stray_shards() { # shards tenant platform-tenant-or-empty operator-or-empty
  with_pg_env "$TEST_DATABASE_URL" psql -XAt -v ON_ERROR_STOP=1 -v shards="$1" -v tenant="$2" -v platform="$3" \
    -v operator="$4" <<'SQL'
with reached as (
  select t.shardid, p.logicalrelid, p.partmethod, d.shardminvalue,
         column_to_column_name(p.logicalrelid, p.partkey) as key_column
  from unnest(string_to_array(:'shards', ',')::bigint[]) as t (shardid)
  left join pg_dist_shard d using (shardid)
  left join pg_dist_partition p using (logicalrelid)),
stray as (
  select coalesce(r.logicalrelid::text, 'no distributed table') as relation, r.shardid
  from reached r
  where r.partmethod is distinct from 'n'
    and not (r.key_column = 'operator_id' and :'operator' <> ''
             and r.shardid = get_shard_id_for_distribution_column(r.logicalrelid, nullif(:'operator', '')::uuid))
    and not (r.key_column = 'tenant_id' and :'platform' <> ''
             and r.shardid = get_shard_id_for_distribution_column(r.logicalrelid, nullif(:'platform', '')::uuid))
    and not (r.key_column = 'tenant_id' and case
               -- A tenant the call makes: one tenant's shards, whichever they are
               -- (the Platform tenant's aside).
               when :'tenant' = '' then (
                 select count(distinct o.shardminvalue) from reached o
                 where o.key_column = 'tenant_id'
                   and not (:'platform' <> '' and o.shardid = get_shard_id_for_distribution_column(o.logicalrelid, nullif(:'platform', '')::uuid))) = 1
               else r.shardid = get_shard_id_for_distribution_column(r.logicalrelid, nullif(:'tenant', '')::uuid) end))
select coalesce(string_agg(format('%s shard(s) of %s (%s)', n, relation, shards), ', '), '')
from (select relation, count(*) as n, string_agg(shardid::text, ' ' order by shardid) as shards
      from stray group by relation) as by_relation;
SQL
}

# Every function that app_user or uber_admin may execute, found in the
# catalog, is called as scripts/lib/citus_routing_calls.txt says, with Citus
# logging what it sends to the workers and what they run for it: each shard a
# call reaches must be its context's tenant's, its operator's, or a
# reference table's. A statement that names its tenant through a subquery is
# sent to all 32 shards (and a write locks each, so that one open
# transaction holds up every tenant's writes); this finds it.
check_functions_routed() {
  local calls_file=scripts/lib/citus_routing_calls.txt fixture functions listed
  local function context call url secret token tenant platform operator begin output shards stray
  local line failures=0 called=0 reached=0 quiet="" everyone=""
  local -A value
  fixture="$(make_routing_fixture)" || { echo "$fixture"; return 1; }
  while IFS= read -r line; do value[${line%%=*}]="${line#*=}"; done <<<"$fixture"
  functions="$(with_pg_env "$TEST_DATABASE_URL" psql -XAt -v ON_ERROR_STOP=1 <<'SQL'
select p.oid::regprocedure from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\_%'
  and (has_function_privilege('app_user', p.oid, 'execute') or has_function_privilege('uber_admin', p.oid, 'execute'))
  and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
order by 1;
SQL
)" || return 1
  listed="$(grep -v '^\(#\|$\)' "$ROOT/$calls_file" | cut -d'|' -f1 | sed 's/^ *//; s/ *$//' | LC_ALL=C sort)"
  while IFS= read -r function; do
    echo "$calls_file calls $function more than once"
    failures=$((failures + 1))
  done < <(uniq -d <<<"$listed" | grep .)
  while IFS= read -r function; do
    echo "the runtime roles may execute $function, but $calls_file has no call of it"
    failures=$((failures + 1))
  done < <(LC_ALL=C comm -23 <(LC_ALL=C sort <<<"$functions") <(cat <<<"$listed") | grep .)
  while IFS= read -r function; do
    echo "$calls_file calls $function, which is gone or not the runtime roles' to execute"
    failures=$((failures + 1))
  done < <(LC_ALL=C comm -13 <(LC_ALL=C sort <<<"$functions") <(uniq <<<"$listed") | grep .)
  while IFS='|' read -r function context call; do
    function="$(sed 's/^ *//; s/ *$//' <<<"$function")" context="$(sed 's/^ *//; s/ *$//' <<<"$context")"
    call="${call# }" tenant="${value[tenant_id]}" platform="" operator="" secret="" token="" begin=""
    case "$context" in
    key | requester | approver)
      url="$APP_TEST_URL"
      case "$context" in
      key) secret="${value[key]}" ;;
      requester) secret="${value[requester_key]}" tenant="${value[approving_tenant_id]}" ;;
      approver) secret="${value[approver_key]}" tenant="${value[approving_tenant_id]}" ;;
      esac
      begin="select tenant_id from api.begin_request(encode(sha256(convert_to(:'secret', 'UTF8')), 'hex'), null, gen_random_uuid(), null, false) \gset" ;;
    app_user) url="$APP_TEST_URL" ;;
    operator | "new tenant")
      # An operator's actions that concern no tenant are audited as the Platform tenant's.
      url="$ADMIN_TEST_URL" secret="$PLATFORM_ADMIN_TOKEN" token="$PLATFORM_ADMIN_TOKEN"
      platform="$PLATFORM_TENANT_ID" operator="${value[operator_id]}"
      [ "$context" = operator ] || tenant=""
      begin="select operator_id from platform.begin_request(encode(sha256(convert_to(:'secret', 'UTF8')), 'hex'), gen_random_uuid(), null, false) \gset" ;;
    uber_admin) url="$ADMIN_TEST_URL" token="$PLATFORM_ADMIN_TOKEN" operator="${value[operator_id]}" ;;
    "every tenant")
      everyone="$everyone${everyone:+, }$function"
      continue ;;
    *)
      echo "$calls_file: $function has no context named '$context'"
      failures=$((failures + 1))
      continue ;;
    esac
    [ "$call" != - ] || call=""
    called=$((called + 1))
    # Secrets reach psql through its environment: a key hash authenticates as
    # well as the key does. The logging is set again after the context, which
    # passes SET LOCAL on to the workers: then what the shards' triggers run
    # there is logged too.
    output="$(ROUTING_SECRET="$secret" ROUTING_KEY="${value[key]}" ROUTING_TOKEN="$token" \
      with_pg_env "$url" psql -XAtq -v ON_ERROR_STOP=1 \
      -v tenant_id="${value[tenant_id]}" -v user_id="${value[user_id]}" -v member_id="${value[member_id]}" \
      -v document_id="${value[document_id]}" -v revocable_key_id="${value[revocable_key_id]}" \
      -v approval_id="${value[approval_id]}" -v operator_id="${value[operator_id]}" \
      -v other_operator_id="${value[other_operator_id]}" -v plan_id="${value[plan_id]}" 2>&1 <<SQL
\\getenv secret ROUTING_SECRET
\\getenv routing_key ROUTING_KEY
\\getenv token ROUTING_TOKEN
select encode(sha256(convert_to(:'routing_key', 'UTF8')), 'hex') as key_hash,
       encode(sha256(convert_to(:'token', 'UTF8')), 'hex') as credential \\gset
\\set log 'set local citus.propagate_set_commands = local; set local citus.log_remote_commands = on; set local client_min_messages = log;'
begin isolation level read committed read write;
:log
$begin
:log
$call;
rollback;
SQL
)" || {
      echo "$function failed: $({ grep -m1 'ERROR\|FATAL\|error:' <<<"$output" || head -n 1 <<<"$output"; })"
      failures=$((failures + 1))
      continue
    }
    # A subquery's rows that Citus keeps on a worker for a later command
    # there, another session of the same role could read there, past every
    # check, naming the transaction (read_intermediate_result): none is kept.
    if grep -q 'read_intermediate_result' <<<"$output"; then
      echo "$function ($context) has Citus keep rows on a worker between commands (read_intermediate_result)"
      failures=$((failures + 1))
    fi
    shards="$(shards_reached "$output")" || return 1
    if [ -z "$shards" ]; then
      quiet="$quiet${quiet:+, }$function"
      continue
    fi
    reached=$((reached + 1))
    stray="$(stray_shards "$shards" "$tenant" "$platform" "$operator")" || return 1
    if [ -n "$stray" ]; then
      echo "$function ($context) reaches shards that are not its tenant's: $stray"
      failures=$((failures + 1))
    fi
  done < <(grep -v '^\(#\|$\)' "$ROOT/$calls_file")
  # Most calls read or write a tenant's rows; a run in which few reached a worker proved little.
  if [ "$reached" -lt $((called / 2)) ]; then
    echo "only $reached of $called calls sent a command to a worker; the check saw too little to judge"
    failures=$((failures + 1))
  fi
  [ "$failures" -eq 0 ] || return 1
  echo "$called functions of the runtime roles called: the $reached that reached a worker reached only their tenant's shards (reached none: ${quiet:-none}; not called, every tenant's by design: ${everyone:-none})"
}
