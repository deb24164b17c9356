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
# the nodes' own authority, which only the coordinator holds
# (citus.node_conninfo); its superuser reaches it through its Unix socket.
# The certificate then stands for any role (trust with clientcert=verify-ca),
# as Citus needs: roles come and go with migrations, and PostgreSQL 15 cannot
# map one certificate to every role in pg_ident.conf.
#
# Citus itself comes from Citus's own packages (see the README); nothing here
# builds or downloads it.

CITUS_DIR="$LOCAL_DIR/citus"
CITUS_TLS_DIR="$CITUS_DIR/tls"
# The coordinator's port; the workers listen on the two after it.
CITUS_PORT="${CITUS_PORT:-54339}"
CITUS_WORKERS="worker1 worker2"
# The common name of the coordinator's client certificate.
CITUS_CLIENT_NAME=tenancy-coordinator

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
}

# One certificate authority, one server certificate for 127.0.0.1 that every
# node presents, and the coordinator's client certificate. Made once; only the
# postgres OS user can read the keys.
ensure_citus_certificates() {
  [ -f "$CITUS_TLS_DIR/client.crt" ] && return 0
  command -v openssl >/dev/null || die "openssl is missing; run: sudo apt-get install -y openssl"
  log "making the Citus nodes' certificates in .local/citus/tls"
  rm -rf "$CITUS_TLS_DIR"
  mkdir -p "$CITUS_TLS_DIR"
  (
    cd "$CITUS_TLS_DIR"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=tenancy-local-ca" \
      -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$CITUS_CLIENT_NAME" -keyout client.key -out client.csr
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out client.crt
    rm -f ./*.csr server.ext ca.srl
  ) >"$CITUS_DIR/tls.log" 2>&1 || die "openssl could not make the certificates; see .local/citus/tls.log"
  if is_root; then chown -R postgres: "$CITUS_TLS_DIR"; fi
}

# initdb for the node in use (common.sh), then what Citus needs and the
# authentication above. A node made earlier is kept.
init_citus_node() { # node
  local node="$1"
  [ -f "$PG_DATA/PG_VERSION" ] && return 0
  mkdir -p "$CITUS_DIR"
  init_local_cluster
  local tls="$CITUS_TLS_DIR"
  cat >>"$PG_DATA/postgresql.conf" <<EOF

# --- set by scripts/lib/citus.sh for the Citus node $node ---
shared_preload_libraries = 'citus'
max_prepared_transactions = 100
ssl = on
ssl_cert_file = '$tls/server.crt'
ssl_key_file = '$tls/server.key'
ssl_ca_file = '$tls/ca.crt'
citus.node_conninfo = 'sslmode=verify-full sslrootcert=$tls/ca.crt sslcert=$tls/client.crt sslkey=$tls/client.key'
EOF
  # Over TCP: TLS with the coordinator's certificate, for any node; and, on
  # the coordinator only, the service's and the operators' passwords over
  # plain TCP, as on a single server. Over the socket: the superuser.
  {
    echo "# Written by scripts/lib/citus.sh: see there why."
    echo "local all postgres scram-sha-256"
    echo "hostssl all all 127.0.0.1/32 trust clientcert=verify-ca"
    if [ "$node" = coordinator ]; then echo "hostnossl all all 127.0.0.1/32 scram-sha-256"; fi
  } >"$PG_DATA/pg_hba.conf"
  if is_root; then chown postgres: "$PG_DATA/pg_hba.conf"; fi
}

start_citus_nodes() {
  ensure_postgres_can_enter_root
  mkdir -p "$CITUS_DIR"
  if is_root; then chown postgres: "$CITUS_DIR"; fi
  ensure_citus_certificates
  # One superuser password for every node: init_local_cluster gives initdb
  # the file it finds in the node's directory.
  local pwfile="$CITUS_DIR/superuser.pw" node
  [ -f "$pwfile" ] || (umask 077 && random_secret >"$pwfile")
  for node in $CITUS_WORKERS coordinator; do
    use_citus_node "$node"
    mkdir -p "$PG_DIR"
    [ -f "$PG_DIR/superuser.pw" ] || cp "$pwfile" "$PG_DIR/superuser.pw"
    init_citus_node "$node"
    start_local_cluster
  done
}

stop_citus_nodes() {
  local node
  for node in coordinator $CITUS_WORKERS; do
    use_citus_node "$node"
    stop_local_cluster
  done
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

# --- the suites of scripts/test --citus ----------------------------------------

# The test database as a deployment that outgrows one server gets it: the
# migrations run on the coordinator alone, as on a single server, and then
# the coordinator gets the citus extension and the workers join. (Objects
# made while the extension is there but the workers are not yet cannot be
# copied to them later: Citus 13.2 fails with "permission denied for schema
# platform" on the definer roles' functions.)
prepare_citus_test_database() {
  fresh_citus_database "$test_db" &&
    migrate_database "$TEST_DATABASE_URL" &&
    join_citus_nodes "$test_db" &&
    with_pg_env "$TEST_DATABASE_URL" psql -XqAtc 'create extension if not exists pgtap' >/dev/null &&
    echo "coordinator on $LOCAL_PG_HOST:$CITUS_PORT and workers on the next two ports; $test_db migrated to $(with_pg_env "$TEST_DATABASE_URL" psql -XAtc 'select max(version) from schema_migrations')"
}

# What the app_user password alone reaches on a worker: nothing. The same
# role with the coordinator's certificate does get in, so the refusals are
# the authentication's doing and not a worker that is down.
check_workers_refuse_passwords() {
  local worker port failures=0 mode
  for worker in $CITUS_WORKERS; do
    port="$(citus_node_port "$worker")"
    for mode in disable require; do
      if PGPASSWORD="$APP_USER_PASSWORD" PGSSLMODE="$mode" PGCONNECT_TIMEOUT=5 \
        psql -XAtq -h "$LOCAL_PG_HOST" -p "$port" -U app_user -d "$test_db" -c 'select 1' >/dev/null 2>&1; then
        echo "$worker let app_user in with its password (sslmode=$mode)"
        failures=$((failures + 1))
      fi
    done
    if PGPASSWORD="$(cat "$CITUS_DIR/superuser.pw")" PGSSLMODE=require PGCONNECT_TIMEOUT=5 \
      psql -XAtq -h "$LOCAL_PG_HOST" -p "$port" -U postgres -d "$test_db" -c 'select 1' >/dev/null 2>&1; then
      echo "$worker let the superuser in over TCP with its password"
      failures=$((failures + 1))
    fi
    if ! as_pg_owner env PGSSLMODE=verify-full PGSSLROOTCERT="$CITUS_TLS_DIR/ca.crt" \
      PGSSLCERT="$CITUS_TLS_DIR/client.crt" PGSSLKEY="$CITUS_TLS_DIR/client.key" PGCONNECT_TIMEOUT=5 \
      psql -XAtq -h "$LOCAL_PG_HOST" -p "$port" -U app_user -d "$test_db" -c 'select 1' >/dev/null; then
      echo "$worker refused the coordinator's certificate too"
      failures=$((failures + 1))
    fi
  done
  [ "$failures" -eq 0 ] || return 1
  echo "every worker refuses app_user's and the superuser's passwords over TCP, and takes the coordinator's certificate"
}

# On the coordinator, neither runtime role may execute a function of the
# citus extension: among them are some that start a rebalance, cancel the
# cluster's background jobs or run SQL on other nodes. (On the workers Citus
# itself calls some of them over the connections it opens as these roles,
# and only the coordinator holds the certificate those connections need.)
# The aggregate helpers among them (coord_combine_agg and the like) combine
# aggregates over several shards, which no tenant query should need: each is
# to route to one shard.
check_citus_functions_revoked() {
  local granted
  granted="$(citus_node_psql coordinator "$test_db" -c "
    select count(*) || ': ' || coalesce(string_agg(distinct p.proname, ', ' order by p.proname), '')
    from pg_proc p
    join pg_depend d on d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
    join pg_extension e on e.oid = d.refobjid and e.extname = 'citus'
    cross join (values ('app_user'), ('uber_admin')) r (role)
    where has_function_privilege(r.role, p.oid, 'execute')")" || return 1
  if [ "${granted%%:*}" != 0 ]; then
    echo "app_user or uber_admin may execute Citus functions on the coordinator (${granted%%:*} grants): ${granted#*: }"
    return 1
  fi
  echo "neither app_user nor uber_admin may execute any function of the citus extension on the coordinator"
}

# Every table of the project's schemas, found in the catalog, is a Citus
# table (distributed or reference); else its rows live on the coordinator
# alone and the suites after this one would prove nothing about Citus.
check_tables_distributed() {
  local local_tables
  local_tables="$(with_pg_env "$TEST_DATABASE_URL" psql -XAtc "
    select string_agg(c.oid::regclass::text, ', ' order by c.oid::regclass::text)
    from pg_class c
    where c.relnamespace in ('core'::regnamespace, 'api'::regnamespace, 'platform'::regnamespace)
      and c.relkind in ('r', 'p') and not c.relispartition
      and not exists (select from pg_dist_partition d where d.logicalrelid = c.oid)")" || return 1
  if [ -n "$local_tables" ]; then
    echo "tables left on the coordinator alone: $local_tables"
    return 1
  fi
  echo "every table of core, api and platform is distributed or a reference table"
}

# The ACL of each function, schema and table on the coordinator, and of each
# shard as the ACL of the table it belongs to.
citus_acl_query() { # shards-as-tables: yes or no
  cat <<SQL
with ours as (select oid, nspname from pg_namespace where nspname in ('core', 'api', 'platform', 'extensions'))
select 'function ' || p.oid::regprocedure::text || ' ' || p.proowner::regrole || ' ' || coalesce((select string_agg(i::text, ',' order by i::text) from unnest(p.proacl) i), '(default)')
from pg_proc p join ours on ours.oid = p.pronamespace
union all
select 'schema ' || nspname || ' ' || nspowner::regrole || ' ' || coalesce((select string_agg(i::text, ',' order by i::text) from unnest(nspacl) i), '(default)')
from pg_namespace where oid in (select oid from ours)
union all
select 'relation ' || ours.nspname || '.' || $(if [ "$1" = yes ]; then echo "regexp_replace(c.relname, '_[0-9]+\$', '')"; else echo "c.relname"; fi) || ' ' || c.relowner::regrole || ' ' || coalesce((select string_agg(i::text, ',' order by i::text) from unnest(c.relacl) i), '(default)')
from pg_class c join ours on ours.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'S')$(if [ "$1" = yes ]; then echo " and not c.relispartition"; fi)
SQL
}

# Privileges on a worker are the coordinator's: Citus replays most grants,
# but not every default privilege (ALTER DEFAULT PRIVILEGES does not reach
# the workers), so each object a worker has must carry the coordinator's ACL.
check_privileges_on_every_node() {
  local worker failures=0
  citus_node_psql coordinator "$test_db" <<<"$(citus_acl_query no)" | sort -u >"$WORK/acl.coordinator" || return 1
  for worker in $CITUS_WORKERS; do
    [ "$(citus_node_psql coordinator "$test_db" -c "select count(*) from citus_shards where nodeport = $(citus_node_port "$worker")")" -gt 0 ] || {
      echo "$worker holds no shards, so there is nothing of the project's on it to compare"
      failures=$((failures + 1))
      continue
    }
    # Citus hides the shards from pg_class unless told not to.
    citus_node_psql "$worker" "$test_db" <<<"set citus.override_table_visibility = off; $(citus_acl_query yes)" |
      sort -u >"$WORK/acl.$worker" || return 1
    # What the worker has and the coordinator has otherwise.
    comm -23 "$WORK/acl.$worker" "$WORK/acl.coordinator" >"$WORK/acl.$worker.diff"
    if [ -s "$WORK/acl.$worker.diff" ]; then
      echo "$worker: $(wc -l <"$WORK/acl.$worker.diff") objects whose owner or privileges differ from the coordinator's, first:"
      head -n 10 "$WORK/acl.$worker.diff" | sed 's/^/  /'
      failures=$((failures + 1))
    fi
  done
  [ "$failures" -eq 0 ] || return 1
  echo "every function, schema, table and shard on the workers has the coordinator's owner and privileges ($(wc -l <"$WORK/acl.coordinator") objects)"
}
