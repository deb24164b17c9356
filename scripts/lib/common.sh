# Shared by every script in scripts/: toolchain installation, the project-local
# PostgreSQL cluster and the generated .local/env. Sourced, never executed.
#
# Why one file: dev, test, db and bench must agree on ports, paths, role names
# and secrets, and a newcomer should find that agreement in one place.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL_DIR="$ROOT/.local"
ENV_FILE="$LOCAL_DIR/env"
TOOLS_DIR="$ROOT/scripts/tools"
PG_DIR="$LOCAL_DIR/pg"
PG_DATA="$PG_DIR/data"
PG_SOCKET_DIR="$PG_DIR/run"
PG_LOG="$PG_DIR/postgres.log"
LOCAL_PG_PORT="${LOCAL_PG_PORT:-54329}"
LOCAL_PG_HOST=127.0.0.1
# The setting a user changes to move the cluster in use to another port.
PORT_SETTING=LOCAL_PG_PORT
DEV_DB=tenancy
PG_MAJOR=15
DENO_MAJOR=2
APT_PACKAGES="postgresql-$PG_MAJOR postgresql-$PG_MAJOR-pgtap libtap-parser-sourcehandler-pgtap-perl"

# The migration named here is the one the service expects; /ready compares it
# with schema_migrations. Keep it in step with db/migrations.
export DBMATE_MIGRATIONS_DIR="$ROOT/db/migrations"
export DBMATE_SCHEMA_FILE="$ROOT/db/schema.sql"

# The audit trail's monthly partitions follow the calendar, not the
# migrations (migration 20261201001300 makes those of the month it runs in):
# db/schema.sql leaves their entries out, or it would change every month.
strip_audit_partitions() { # file
  awk '
    /^--$/ && !held { held = 1; next }
    held { held = 0; if (/^-- Name: /) skip = /audit_logs_y[0-9][0-9][0-9][0-9]m[0-9][0-9]/; if (!skip) print "--" }
    !skip { print }
  ' "$1" >"$1.tmp" && mv "$1.tmp" "$1"
}

log() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# --- toolchain -------------------------------------------------------------

# Installs the pinned npm tools (Deno, dbmate, squawk) once; reinstalls only
# when package-lock.json changes, so a warm run costs nothing.
ensure_node_tools() {
  command -v npm >/dev/null || die "npm is not installed: install Node.js 20+ with npm, then re-run"
  local stamp="$TOOLS_DIR/node_modules/.lock-stamp"
  if [ ! -f "$stamp" ] || ! cmp -s "$TOOLS_DIR/package-lock.json" "$stamp"; then
    log "installing pinned tools (deno, dbmate, squawk) into scripts/tools/node_modules"
    # npm ci rejects lock files that leave out other platforms' optional
    # binaries (npm 11), so install from the lock without rewriting it.
    npm install --no-save --prefix "$TOOLS_DIR" --no-audit --no-fund --loglevel=error >&2 ||
      die "npm install in scripts/tools failed (npm says why above); check access to the npm registry"
    cp "$TOOLS_DIR/package-lock.json" "$stamp"
  fi
  DBMATE="$TOOLS_DIR/node_modules/.bin/dbmate"
  SQUAWK="$TOOLS_DIR/node_modules/.bin/squawk"
  if command -v deno >/dev/null && deno --version 2>/dev/null | grep -q "^deno $DENO_MAJOR\."; then
    DENO="$(command -v deno)"
  else
    DENO="$TOOLS_DIR/node_modules/.bin/deno"
  fi
  export DENO DBMATE SQUAWK
  # Deno caches npm packages under DENO_DIR; keep it project-local so a fresh
  # clone never depends on state in $HOME.
  export DENO_DIR="${DENO_DIR:-$LOCAL_DIR/deno}"
  export DENO_NO_UPDATE_CHECK=1
}

# Finds PostgreSQL $PG_MAJOR+ server binaries, pgTAP and pg_prove; installs the
# Debian packages when missing and we are root, else says exactly what to run.
ensure_postgres_tools() {
  local need_server="$1" bindir="" clientdir="" missing=""
  # PostgreSQL $PG_MAJOR itself when installed (db/schema.sql is its dump),
  # otherwise the newest later major. Without the server, Debian's client
  # package of $PG_MAJOR or later (migrate_database reads the role passwords
  # with \getenv, new in psql 15).
  for candidate in /usr/lib/postgresql/*/bin; do
    [ -d "$candidate" ] || continue
    local major="${candidate#/usr/lib/postgresql/}"
    major="${major%/bin}"
    [ "$major" -ge "$PG_MAJOR" ] || continue
    if [ -x "$candidate/pg_ctl" ]; then bindir="$candidate"; fi
    if [ -x "$candidate/psql" ]; then clientdir="$candidate"; fi
  done
  if [ -x "/usr/lib/postgresql/$PG_MAJOR/bin/pg_ctl" ]; then bindir="/usr/lib/postgresql/$PG_MAJOR/bin"; fi
  if [ "$need_server" = yes ] && [ -z "$bindir" ]; then missing="$APT_PACKAGES"; fi
  if [ -n "$bindir" ]; then
    local major="${bindir#/usr/lib/postgresql/}"
    major="${major%/bin}"
    [ -f "/usr/share/postgresql/$major/extension/pgtap.control" ] || missing="$missing postgresql-$major-pgtap"
  fi
  command -v pg_prove >/dev/null || missing="$missing libtap-parser-sourcehandler-pgtap-perl"
  [ -n "$bindir" ] || [ -n "$clientdir" ] || missing="$missing postgresql-client-$PG_MAJOR"
  if [ -n "$missing" ]; then
    if is_root && command -v apt-get >/dev/null; then
      log "installing Debian packages:$missing"
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } >&2 ||
        die "apt-get install failed for:$missing"
      ensure_postgres_tools "$need_server"
      return
    fi
    die "missing PostgreSQL tools; run: sudo apt-get install -y$missing"
  fi
  PG_BIN="${bindir:-$clientdir}"
  # dbmate dumps the schema with pg_dump; it must match the server's major.
  export PATH="$PG_BIN:$PATH" PG_BIN
}

# The fault tests (tests/cluster.ts) start throwaway clusters and PgBouncer,
# and tests/docs_browser_test.ts drives Debian's Chromium, so scripts/test
# needs the server binaries, pgbouncer and chromium even when DATABASE_URL
# points at another server.
ensure_test_tools() {
  ensure_postgres_tools yes
  ensure_postgres_can_enter_root
  local missing=""
  command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || missing="$missing pgbouncer"
  command -v chromium >/dev/null || missing="$missing chromium"
  [ -n "$missing" ] || return 0
  if is_root && command -v apt-get >/dev/null; then
    log "installing Debian packages:$missing"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } >&2 ||
      die "apt-get install failed for:$missing"
    return
  fi
  die "missing what the tests run:$missing; run: sudo apt-get install -y$missing"
}

# --- the project-local cluster ---------------------------------------------

# PostgreSQL refuses to run as root, so as root the cluster runs as the
# unprivileged OS user "postgres" (created when missing).
as_pg_owner() {
  if is_root; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

local_cluster_running() {
  [ -f "$PG_DATA/PG_VERSION" ] && as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

port_in_use() { (exec 3<>"/dev/tcp/$LOCAL_PG_HOST/$1") 2>/dev/null; }

random_secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

init_local_cluster() {
  [ -f "$PG_DATA/PG_VERSION" ] && return
  log "initialising PostgreSQL cluster in ${PG_DIR#"$ROOT/"} (port $LOCAL_PG_PORT)"
  mkdir -p "$PG_DIR" "$PG_SOCKET_DIR"
  if is_root; then chown -R postgres: "$PG_DIR"; fi
  # The directory is the postgres user's: what goes into it is written by
  # that user (as_pg_owner), so that root never follows a link planted there.
  local pwfile="$PG_DIR/superuser.pw"
  as_pg_owner test -f "$pwfile" ||
    random_secret | as_pg_owner sh -c 'umask 077 && cat >"$1"' sh "$pwfile"
  as_pg_owner chmod 600 "$pwfile"
  if ! as_pg_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --pwfile="$pwfile" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --locale=C 2>&1 |
    as_pg_owner tee "$PG_DIR/initdb.log" >/dev/null; then
    die "initdb failed; see ${PG_DIR#"$ROOT/"}/initdb.log"
  fi
  as_pg_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null <<EOF

# --- set by scripts/lib/common.sh for the project-local cluster ---
listen_addresses = '$LOCAL_PG_HOST'
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 200
shared_buffers = 256MB
log_min_messages = warning
log_min_error_statement = panic
EOF
}

# The cluster (and the fault tests' clusters and PgBouncer) run as "postgres"
# with their files under .local/, so that user must be able to pass through
# every directory above the checkout. A clone in a private directory (mktemp
# -d makes them 0700) gets the search bit for others, never read access.
ensure_postgres_can_enter_root() {
  is_root || return 0
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  runuser -u postgres -- test -x "$ROOT" && return 0
  # From the top down: a directory can only be tested once its parent opens.
  local dir="" part parts
  IFS=/ read -ra parts <<<"${ROOT#/}"
  for part in "${parts[@]}"; do
    dir="$dir/$part"
    if ! runuser -u postgres -- test -x "$dir"; then
      log "letting the postgres user pass through $dir (chmod o+x)"
      chmod o+x "$dir"
    fi
  done
  runuser -u postgres -- test -x "$ROOT" ||
    die "the OS user 'postgres' cannot enter $ROOT; clone the repository somewhere it can read (e.g. under /work or /srv), or set DATABASE_URL"
}

start_local_cluster() {
  ensure_postgres_can_enter_root
  init_local_cluster
  if local_cluster_running; then
    # Line 4 of postmaster.pid is the port it listens on.
    local running
    running="$(as_pg_owner sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null || true)"
    if [ -n "$running" ] && [ "$running" != "$LOCAL_PG_PORT" ]; then
      die "the cluster in ${PG_DIR#"$ROOT/"} is running on port $running, not $LOCAL_PG_PORT; stop it to move it to $LOCAL_PG_PORT (its data is kept), or set $PORT_SETTING=$running to use it"
    fi
    return
  fi
  if port_in_use "$LOCAL_PG_PORT"; then
    die "port $LOCAL_PG_PORT is already in use by another process; stop it or choose another port with $PORT_SETTING=<port>"
  fi
  log "starting PostgreSQL on $LOCAL_PG_HOST:$LOCAL_PG_PORT"
  as_pg_owner rm -f "$PG_DATA/postmaster.pid"
  as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -o "-p $LOCAL_PG_PORT" -w -t 60 start >/dev/null ||
    die "PostgreSQL did not start; the last lines of ${PG_LOG#"$ROOT/"} say why: $(as_pg_owner tail -n 3 "$PG_LOG" 2>/dev/null | tr '\n' ' ')"
  # Whoever started it may stop it again when done (scripts/test does).
  STARTED_LOCAL_CLUSTER=1
}

stop_local_cluster() {
  if local_cluster_running; then
    log "stopping PostgreSQL"
    as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
  fi
}

local_url() { # user password database
  printf 'postgres://%s:%s@%s:%s/%s?sslmode=disable' "$1" "$2" "$LOCAL_PG_HOST" "$LOCAL_PG_PORT" "$3"
}

# --- environment -------------------------------------------------------------

# Reads .local/env when present, otherwise generates it: role passwords and the
# platform admin token are created once and reused on every later run.
load_or_create_env() {
  # What the caller exported wins over what the file remembers; a shell that
  # sourced .local/env carries DATABASE_MODE=local and is the local cluster.
  local caller_mode="${DATABASE_MODE:-}" caller_app="${APP_DATABASE_URL:-}"
  local caller_admin="${ADMIN_DATABASE_URL:-}" caller_token="${PLATFORM_ADMIN_TOKEN:-}"
  local external=""
  if [ "$caller_mode" != local ]; then external="${DATABASE_URL:-}"; fi
  if [ -f "$ENV_FILE" ]; then
    # shellcheck disable=SC1090
    set -a && . "$ENV_FILE" && set +a
  fi
  # Role URLs remembered for the local cluster or another server do not apply.
  if [ -z "$external" ] || [ "${DATABASE_MODE:-}" != external ] || [ "${DATABASE_URL:-}" != "$external" ]; then
    unset APP_DATABASE_URL ADMIN_DATABASE_URL
  fi
  MANAGE_ROLE_PASSWORDS=yes
  if [ -n "$external" ] && { [ -n "$caller_app" ] || [ -n "$caller_admin" ]; }; then
    # The caller chose the role URLs, so their passwords are the caller's too.
    MANAGE_ROLE_PASSWORDS=no
    APP_DATABASE_URL="${caller_app:-${APP_DATABASE_URL:-}}"
    ADMIN_DATABASE_URL="${caller_admin:-${ADMIN_DATABASE_URL:-}}"
  fi
  if [ "$caller_mode" != local ] && [ -n "$caller_token" ]; then PLATFORM_ADMIN_TOKEN="$caller_token"; fi
  APP_USER_PASSWORD="${APP_USER_PASSWORD:-$(random_secret)}"
  UBER_ADMIN_PASSWORD="${UBER_ADMIN_PASSWORD:-$(random_secret)}"
  PLATFORM_ADMIN_TOKEN="${PLATFORM_ADMIN_TOKEN:-padm_$(random_secret)}"
  if [ -z "$external" ]; then
    DATABASE_MODE=local
    local superuser_pw
    superuser_pw="$(as_pg_owner cat "$PG_DIR/superuser.pw")"
    DATABASE_URL="$(local_url postgres "$superuser_pw" "$DEV_DB")"
    APP_DATABASE_URL="$(local_url app_user "$APP_USER_PASSWORD" "$DEV_DB")"
    ADMIN_DATABASE_URL="$(local_url uber_admin "$UBER_ADMIN_PASSWORD" "$DEV_DB")"
  else
    DATABASE_MODE=external
    DATABASE_URL="$external"
    APP_DATABASE_URL="${APP_DATABASE_URL:-$(url_with_user "$DATABASE_URL" app_user "$APP_USER_PASSWORD")}"
    ADMIN_DATABASE_URL="${ADMIN_DATABASE_URL:-$(url_with_user "$DATABASE_URL" uber_admin "$UBER_ADMIN_PASSWORD")}"
  fi
  export DATABASE_URL APP_DATABASE_URL ADMIN_DATABASE_URL PLATFORM_ADMIN_TOKEN DATABASE_MODE MANAGE_ROLE_PASSWORDS
  mkdir -p "$LOCAL_DIR"
  local name
  {
    echo "# Generated by scripts/ (see README). Secrets: never commit or paste this file."
    for name in DATABASE_MODE DATABASE_URL APP_DATABASE_URL ADMIN_DATABASE_URL PLATFORM_ADMIN_TOKEN \
      APP_USER_PASSWORD UBER_ADMIN_PASSWORD DEMO_TENANT_ID DEMO_API_KEY; do
      # %q quotes URLs whose query strings hold & or ; for the shell.
      if [ -n "${!name:-}" ]; then printf 'export %s=%q\n' "$name" "${!name}"; fi
    done
  } | (umask 077 && cat >"$ENV_FILE.new") && mv -f "$ENV_FILE.new" "$ENV_FILE"
}

# Connection URLs hold passwords, so they never travel in a command's argv
# (which every local user can read in /proc or ps): the helpers below hand a
# URL to node, psql, pg_prove and dbmate through the environment only.
# scripts/test watches every process's argv for the secrets while it runs.

# The prelude of each helper's script: the URL in TENANCY_URL, parsed, and a
# decoder, each failing with one line (an exception would print the URL,
# password and all).
PARSE_TENANCY_URL='
  const malformed = () => {
    process.stderr.write("error: a database URL is malformed; it must look like postgres://user:password@host:port/database\n");
    process.exit(1);
  };
  const decode = (text) => { try { return decodeURIComponent(text); } catch { return malformed(); } };
  let u;
  try { u = new URL(process.env.TENANCY_URL); } catch { malformed(); }
'

# Rewrites a URL's user, password and (optionally) database name.
url_with_user() { # url user password [database]
  TENANCY_URL="$1" TENANCY_URL_USER="$2" TENANCY_URL_PASSWORD="$3" TENANCY_URL_DATABASE="${4:-}" node -e "$PARSE_TENANCY_URL"'
    u.username = process.env.TENANCY_URL_USER;
    u.password = process.env.TENANCY_URL_PASSWORD;
    // libpq lets a user or password in the query override these: drop them,
    // or the runtime URLs could still name the owner.
    const query = u.search.slice(1).split("&").filter((pair) => pair && !/^(user|password)$/.test(decode(pair.split("=")[0])));
    u.search = query.length ? "?" + query.join("&") : "";
    if (process.env.TENANCY_URL_DATABASE) u.pathname = "/" + process.env.TENANCY_URL_DATABASE;
    process.stdout.write(u.toString());
  '
}

url_database_name() { # url
  TENANCY_URL="$1" node -e "$PARSE_TENANCY_URL"'
    process.stdout.write(decode(u.pathname.slice(1)));
  '
}

url_with_database() { # url database
  TENANCY_URL="$1" TENANCY_URL_DATABASE="$2" node -e "$PARSE_TENANCY_URL"'
    u.pathname = "/" + process.env.TENANCY_URL_DATABASE;
    process.stdout.write(u.toString());
  '
}

# Runs a command with libpq's PG* variables taken from a URL: psql and
# pg_prove then connect without the URL in their argv. What the URL leaves
# out (a port, a password) the caller's own PG* variables still give, as they
# would to psql "$url". A query parameter that libpq reads no variable for
# stops the run rather than being dropped.
with_pg_env() { # url command...
  local url="$1"
  shift
  (
    local name value complete=""
    # NUL-separated pairs, the last one "end"; a value holding NUL is refused.
    while IFS= read -r -d '' name && IFS= read -r -d '' value; do
      if [ "$name" = end ]; then complete=yes; else export "$name=$value"; fi
    done < <(TENANCY_URL="$url" node -e "$PARSE_TENANCY_URL"'
      // libpq connection keywords and the variables that stand for them.
      const variables = new Map(Object.entries({
        host: "PGHOST", hostaddr: "PGHOSTADDR", port: "PGPORT", dbname: "PGDATABASE", user: "PGUSER",
        password: "PGPASSWORD", passfile: "PGPASSFILE", service: "PGSERVICE", options: "PGOPTIONS",
        application_name: "PGAPPNAME", connect_timeout: "PGCONNECT_TIMEOUT", client_encoding: "PGCLIENTENCODING",
        sslmode: "PGSSLMODE", sslcert: "PGSSLCERT", sslkey: "PGSSLKEY", sslrootcert: "PGSSLROOTCERT",
        sslcrl: "PGSSLCRL", sslcrldir: "PGSSLCRLDIR", sslsni: "PGSSLSNI", sslcompression: "PGSSLCOMPRESSION",
        requiressl: "PGREQUIRESSL", ssl_min_protocol_version: "PGSSLMINPROTOCOLVERSION",
        ssl_max_protocol_version: "PGSSLMAXPROTOCOLVERSION", gssencmode: "PGGSSENCMODE", gsslib: "PGGSSLIB",
        krbsrvname: "PGKRBSRVNAME", channel_binding: "PGCHANNELBINDING", require_auth: "PGREQUIREAUTH",
        target_session_attrs: "PGTARGETSESSIONATTRS", load_balance_hosts: "PGLOADBALANCEHOSTS",
        sslnegotiation: "PGSSLNEGOTIATION", sslcertmode: "PGSSLCERTMODE", gssdelegation: "PGGSSDELEGATION",
      }));
      const out = new Map();
      const host = decode(u.hostname).replace(/^\[(.*)\]$/, "$1");
      if (host) out.set("PGHOST", host);
      if (u.port) out.set("PGPORT", u.port);
      if (u.username) out.set("PGUSER", decode(u.username));
      if (u.password) out.set("PGPASSWORD", decode(u.password));
      if (u.pathname.length > 1) out.set("PGDATABASE", decode(u.pathname.slice(1)));
      // As libpq reads a query: "+" is a plus sign, not a space.
      for (const pair of u.search.slice(1).split("&").filter(Boolean)) {
        const at = pair.indexOf("=");
        const key = decode(at < 0 ? pair : pair.slice(0, at));
        const variable = variables.get(key);
        if (!variable) {
          process.stderr.write(`error: the database URL has a parameter "${key}" that the scripts cannot pass to psql; remove it\n`);
          process.exit(1);
        }
        out.set(variable, at < 0 ? "" : decode(pair.slice(at + 1)));
      }
      for (const [key, value] of out) {
        if (value.includes("\0")) malformed();
        process.stdout.write(key + "\0" + value + "\0");
      }
      process.stdout.write("end\0\0");
    ')
    [ -n "$complete" ] || exit 1
    exec "$@"
  )
}

# Runs dbmate on a database: the URL, without its password, in DATABASE_URL
# (dbmate's default), and the password in PGPASSWORD. dbmate hands its URL to
# pg_dump as an argument, so the password must not be in it.
dbmate_on() { # url dbmate-arguments...
  local url="$1"
  shift
  (
    local bare="" password=""
    { IFS= read -r -d '' bare && IFS= read -r -d '' password; } < <(TENANCY_URL="$url" node -e "$PARSE_TENANCY_URL"'
      // libpq also reads a password from the query; it leaves the URL too,
      // the rest of which stays exactly as written.
      let password = decode(u.password);
      u.password = "";
      const query = u.search.slice(1).split("&").filter((pair) => {
        if (!pair) return false;
        const at = pair.indexOf("=");
        if (decode(at < 0 ? pair : pair.slice(0, at)) !== "password") return true;
        password = at < 0 ? "" : decode(pair.slice(at + 1));
        return false;
      });
      u.search = query.length ? "?" + query.join("&") : "";
      if (password.includes("\0")) malformed();
      process.stdout.write(u.toString() + "\0" + password + "\0");
    ') || true
    [ -n "$bare" ] || exit 1
    if [ -n "$password" ]; then export PGPASSWORD="$password"; fi
    DATABASE_URL="$bare" exec "$DBMATE" "$@"
  )
}

# Fails with one line when the server behind DATABASE_URL cannot be reached,
# instead of letting a later tool print its own stack of errors.
check_database_reachable() { # url
  local output
  if ! output="$(with_pg_env "$(url_with_database "$1" postgres)" psql -XAtqc 'select 1' 2>&1)"; then
    output="$(printf '%s' "$output" | head -n 1 | sed -E 's#postgres(ql)?://[^ ]*#<url>#g')"
    if [ "${DATABASE_MODE:-}" = local ]; then
      die "the project-local cluster does not accept connections ($output); see ${PG_LOG#"$ROOT/"} (scripts/db reset starts afresh, but deletes the local databases and their data)"
    fi
    die "cannot connect to the database server in DATABASE_URL ($output); check the URL, or unset DATABASE_URL to use the project-local cluster"
  fi
}

# Migrates a database and gives the runtime roles the generated passwords.
# Roles are cluster-wide, so this also serves the test database.
migrate_database() { # database-url
  dbmate_on "$1" --wait --wait-timeout 30s --no-dump-schema up >&2 ||
    die "dbmate up failed for the database $(url_database_name "$1")"
  [ "$MANAGE_ROLE_PASSWORDS" = yes ] || return 0
  # The passwords reach psql in its environment (\getenv), not its argv.
  APP_USER_PASSWORD="$APP_USER_PASSWORD" UBER_ADMIN_PASSWORD="$UBER_ADMIN_PASSWORD" \
    with_pg_env "$1" psql -XqAt -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
\getenv app_pw APP_USER_PASSWORD
\getenv admin_pw UBER_ADMIN_PASSWORD
alter role app_user password :'app_pw';
alter role uber_admin password :'admin_pw';
SQL
}

# Everything before the first query: tools, cluster (unless DATABASE_URL is
# set), environment, and the migrated development database.
prepare_environment() {
  ensure_node_tools
  # A shell that sourced .local/env carries DATABASE_MODE=local: that is still
  # the project-local cluster, not an external server.
  if [ -n "${DATABASE_URL:-}" ] && [ "${DATABASE_MODE:-}" != local ]; then
    case "$DATABASE_URL" in
    postgres://?* | postgresql://?*) ;;
    *) die "DATABASE_URL must look like postgres://user:password@host:port/database; unset it to use the project-local cluster" ;;
    esac
    ensure_postgres_tools no
  else
    ensure_postgres_tools yes
    start_local_cluster
  fi
  load_or_create_env
  check_database_reachable "$DATABASE_URL"
}
