/**
 * Real processes for fault tests: throwaway PostgreSQL clusters a test can
 * restart, stop and start under load, PgBouncer in front of one, and the
 * service itself as a subprocess. Clusters live in their own directories
 * under .local/test-clusters/; every process is stopped by its own process
 * id, and a test stops what it started in a finally block.
 *
 * PostgreSQL and PgBouncer refuse to run as root, so as root both run as the
 * OS user "postgres", which then owns the cluster's directory.
 */
import postgres from "postgres";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const CLUSTERS_DIR = `${ROOT}/.local/test-clusters`;
const DATABASE = "tenancy";
const COMMAND_TIMEOUT_MS = 60_000;

/** A running throwaway cluster with the service's schema applied. */
export interface TestCluster {
  /** Directory holding the data directory, socket, logs and PgBouncer files. */
  dir: string;
  port: number;
  /** Superuser URL: bypasses RLS, for setting up and verifying only. */
  ownerUrl: string;
  /** app_user URL, as the service's APP_DATABASE_URL. */
  appUrl: string;
  /** uber_admin URL, as the service's ADMIN_DATABASE_URL. */
  adminUrl: string;
  appPassword: string;
  /** Restarts with `pg_ctl restart -m <mode>`; resolves once connections are accepted again. */
  restart(mode: "fast" | "immediate"): Promise<void>;
  /** Stops the postmaster (`pg_ctl stop`), by default with a fast shutdown. */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** Starts the postmaster; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops the cluster, if running, and deletes its directory. */
  destroy(): Promise<void>;
}

/** A running PgBouncer in transaction pooling mode in front of a cluster. */
export interface TestPgBouncer {
  port: number;
  /** PgBouncer's own process id. */
  pid: number;
  /** app_user URL through PgBouncer. */
  appUrl: string;
  /** Stops PgBouncer by its process id and waits for it to exit. */
  stop(): Promise<void>;
}

let rootCheck: Promise<boolean> | undefined;

// `id -u` needs only --allow-run, which the test run grants; Deno.uid() would
// need --allow-sys as well.
export function runningAsRoot(): Promise<boolean> {
  return rootCheck ??= new Deno.Command("id", { args: ["-u"], stdout: "piped" }).output()
    .then((output) => new TextDecoder().decode(output.stdout).trim() === "0");
}

async function postgresBin(): Promise<string> {
  const fromScripts = Deno.env.get("PG_BIN");
  if (fromScripts) return fromScripts;
  const majors: number[] = [];
  for await (const entry of Deno.readDir("/usr/lib/postgresql")) {
    if (/^\d+$/.test(entry.name)) majors.push(Number(entry.name));
  }
  if (majors.length === 0) throw new Error("no PostgreSQL server binaries under /usr/lib/postgresql");
  return `/usr/lib/postgresql/${Math.max(...majors)}/bin`;
}

/**
 * Runs a command to completion within a time bound, as the OS user postgres
 * when we are root.
 *
 * @param command program path
 * @param args its arguments
 * @param options asPostgres: run as the OS user postgres when we are root
 * @returns its stdout
 * @throws Error with its stderr when it fails or times out
 */
async function run(
  command: string,
  args: string[],
  options: { asPostgres?: boolean; env?: Record<string, string> } = {},
): Promise<string> {
  const asPostgres = options.asPostgres && await runningAsRoot();
  const output = await new Deno.Command(asPostgres ? "runuser" : command, {
    args: asPostgres ? ["-u", "postgres", "--", command, ...args] : args,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new Error(
      `${command.split("/").pop()} ${args[0] ?? ""} failed (${output.code}): ${
        decoder.decode(output.stderr).trim() || decoder.decode(output.stdout).trim()
      }`,
    );
  }
  return decoder.decode(output.stdout);
}

/**
 * Finds a loopback port nobody listens on right now.
 *
 * @returns the port number
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

function randomSecret(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(18)), (byte) => byte.toString(16).padStart(2, "0"))
    .join("");
}

function url(user: string, password: string, port: number, database = DATABASE): string {
  return `postgres://${user}:${password}@127.0.0.1:${port}/${database}?sslmode=disable`;
}

/**
 * Polls until something accepts TCP connections on a loopback port.
 *
 * @param port the port
 * @param timeoutMs how long to keep trying
 * @throws Error when nothing listens within the bound
 */
export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

// Sets a role's password without putting it into SQL text.
async function setPassword(sql: postgres.Sql, role: "app_user" | "uber_admin", password: string) {
  await sql.begin(async (tx) => {
    await tx`select set_config('fault_tests.password', ${password}, true)`;
    await tx`select set_config('fault_tests.role', ${role}, true)`;
    await tx`do $$ begin
      execute format('alter role %I password %L',
        current_setting('fault_tests.role'), current_setting('fault_tests.password'));
    end $$`;
  });
}

async function postmasterPid(dataDir: string): Promise<number | null> {
  try {
    const text = await Deno.readTextFile(`${dataDir}/postmaster.pid`);
    const pid = Number(text.split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

const STALE_AFTER_MS = 30 * 60 * 1000;

// A test run that died before its finally blocks ran leaves its cluster
// behind; the next run stops and removes clusters created long ago.
async function removeStaleClusters(bin: string): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(CLUSTERS_DIR));
  } catch {
    return;
  }
  for (const entry of entries) {
    if (!entry.name.startsWith("cluster-")) continue;
    const dir = `${CLUSTERS_DIR}/${entry.name}`;
    const created = await Deno.stat(`${dir}/superuser.pw`).then(
      (info) => info.mtime?.getTime() ?? 0,
      () => 0,
    );
    if (Date.now() - created < STALE_AFTER_MS) continue;
    if (await postmasterPid(`${dir}/data`)) {
      await run(`${bin}/pg_ctl`, ["-D", `${dir}/data`, "stop", "-m", "immediate", "-w"], { asPostgres: true })
        .catch(() => {});
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Creates and starts a throwaway cluster on a free loopback port with a
 * database migrated by dbmate and passwords for app_user and uber_admin.
 *
 * @param options max_connections of the cluster (default 40)
 * @returns the running cluster; call destroy() in a finally block
 */
export async function startCluster(options: { maxConnections?: number } = {}): Promise<TestCluster> {
  const bin = await postgresBin();
  const root = await runningAsRoot();
  await removeStaleClusters(bin);
  await Deno.mkdir(CLUSTERS_DIR, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: CLUSTERS_DIR, prefix: "cluster-" });
  const dataDir = `${dir}/data`;
  const log = `${dir}/postgres.log`;
  const port = freePort();
  const ownerPassword = randomSecret();
  const appPassword = randomSecret();
  const adminPassword = randomSecret();
  const pgCtl = (...args: string[]) => run(`${bin}/pg_ctl`, ["-D", dataDir, ...args], { asPostgres: true });

  let started = false;
  const cluster: TestCluster = {
    dir,
    port,
    ownerUrl: url("postgres", ownerPassword, port),
    appUrl: url("app_user", appPassword, port),
    adminUrl: url("uber_admin", adminPassword, port),
    appPassword,
    async restart(mode) {
      await pgCtl("restart", "-m", mode, "-w", "-t", "30", "-l", log);
      started = true;
    },
    async stop(mode = "fast") {
      await pgCtl("stop", "-m", mode, "-w", "-t", "30");
      started = false;
    },
    async start() {
      await pgCtl("start", "-w", "-t", "30", "-l", log);
      started = true;
    },
    async destroy() {
      if (started) {
        await cluster.stop("immediate").catch(async () => {
          // pg_ctl failed: stop the postmaster by its own pid.
          const pid = await postmasterPid(dataDir);
          if (pid) await run("kill", ["-KILL", String(pid)]).catch(() => {});
        });
      }
      await Deno.remove(dir, { recursive: true });
    },
  };

  try {
    await Deno.mkdir(`${dir}/run`);
    await Deno.writeTextFile(`${dir}/superuser.pw`, ownerPassword);
    if (root) await run("chown", ["-R", "postgres:", dir]);
    await run(`${bin}/initdb`, [
      "-D",
      dataDir,
      "-U",
      "postgres",
      `--pwfile=${dir}/superuser.pw`,
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "--encoding=UTF8",
      "--locale=C",
      "--no-sync",
    ], { asPostgres: true });
    // fsync=off is safe here: only processes crash in these tests, never the
    // machine, and the kernel keeps what a crashed postmaster wrote.
    const settings = [
      "listen_addresses = '127.0.0.1'",
      `port = ${port}`,
      `unix_socket_directories = '${dir}/run'`,
      `max_connections = ${options.maxConnections ?? 40}`,
      "shared_buffers = 16MB",
      "fsync = off",
      "log_min_messages = warning",
    ];
    await Deno.writeTextFile(`${dataDir}/postgresql.conf`, `\n${settings.join("\n")}\n`, { append: true });
    await cluster.start();

    const admin = postgres(url("postgres", ownerPassword, port, "postgres"), { max: 1, onnotice: () => {} });
    try {
      await admin`create database ${admin(DATABASE)}`;
    } finally {
      await admin.end({ timeout: 1 });
    }
    const dbmate = Deno.env.get("DBMATE") ?? `${ROOT}/scripts/tools/node_modules/.bin/dbmate`;
    // The URL holds the owner's password: it goes in the environment, never in argv.
    await run(dbmate, ["--migrations-dir", `${ROOT}/db/migrations`, "--no-dump-schema", "up"], {
      env: { DATABASE_URL: cluster.ownerUrl },
    });
    const owner = postgres(cluster.ownerUrl, { max: 1, onnotice: () => {} });
    try {
      await setPassword(owner, "app_user", appPassword);
      await setPassword(owner, "uber_admin", adminPassword);
    } finally {
      await owner.end({ timeout: 1 });
    }
    return cluster;
  } catch (error) {
    await cluster.destroy().catch(() => {});
    throw error;
  }
}

/**
 * Starts PgBouncer in transaction pooling mode in front of a cluster, for
 * app_user only. Its time limits are low so a client waiting for a server
 * connection gets an error within seconds instead of hanging.
 *
 * @param cluster the cluster to pool
 * @param options server connections per database/user pair (default 2)
 * @returns the running PgBouncer; call stop() in a finally block
 */
export async function startPgBouncer(
  cluster: TestCluster,
  options: { poolSize?: number } = {},
): Promise<TestPgBouncer> {
  const dir = `${cluster.dir}/pgbouncer-${randomSecret().slice(0, 8)}`;
  const port = freePort();
  await Deno.mkdir(dir);
  // The userlist holds the plain password: PgBouncer needs it to answer the
  // server's SCRAM challenge.
  await Deno.writeTextFile(`${dir}/userlist.txt`, `"app_user" "${cluster.appPassword}"\n`);
  await Deno.writeTextFile(
    `${dir}/pgbouncer.ini`,
    [
      "[databases]",
      `${DATABASE} = host=127.0.0.1 port=${cluster.port} dbname=${DATABASE}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = scram-sha-256",
      `auth_file = ${dir}/userlist.txt`,
      "pool_mode = transaction",
      `default_pool_size = ${options.poolSize ?? 2}`,
      "max_client_conn = 200",
      `pidfile = ${dir}/pgbouncer.pid`,
      `logfile = ${dir}/pgbouncer.log`,
      "query_wait_timeout = 2",
      "server_connect_timeout = 2",
      "server_login_retry = 1",
      "",
    ].join("\n"),
  );
  const root = await runningAsRoot();
  if (root) await run("chown", ["-R", "postgres:", dir]);
  const binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  }) ?? "pgbouncer";
  const child = new Deno.Command(root ? "runuser" : binary, {
    args: root ? ["-u", "postgres", "--", binary, `${dir}/pgbouncer.ini`] : [`${dir}/pgbouncer.ini`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const exited = child.status;

  // The pid PgBouncer itself writes (as root, `child` is runuser).
  async function ownPid(): Promise<number | null> {
    try {
      const pid = Number((await Deno.readTextFile(`${dir}/pgbouncer.pid`)).trim());
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  async function stop(): Promise<void> {
    const pid = await ownPid() ?? child.pid;
    try {
      Deno.kill(pid, "SIGTERM");
    } catch {
      // Already gone.
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 5000)),
    ]);
    clearTimeout(timer);
    if (!waited) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
      await exited;
    }
  }

  try {
    const exitedEarly = exited.then((status) => {
      throw new Error(`pgbouncer exited with ${status.code}; see ${dir}/pgbouncer.log`);
    });
    exitedEarly.catch(() => {});
    await Promise.race([waitForPort(port, 10_000), exitedEarly]);
    const deadline = performance.now() + 5000;
    let pid = await ownPid();
    while (pid === null && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      pid = await ownPid();
    }
    if (pid === null) throw new Error("pgbouncer wrote no pidfile");
    return {
      port,
      pid,
      appUrl: url("app_user", cluster.appPassword, port),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The service running as a subprocess (`deno run src/main.ts`). */
export interface ServiceProcess {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  pid: number;
  /** Resolves with the exit status once the process has ended. */
  status: Promise<Deno.CommandStatus>;
  /** What the process wrote to stdout and stderr so far. */
  output(): string;
  /** Sends SIGTERM and waits for the exit; SIGKILL after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<Deno.CommandStatus>;
}

async function drain(stream: ReadableStream<Uint8Array>, sink: string[]): Promise<void> {
  const decoder = new TextDecoder();
  for await (const chunk of stream) sink.push(decoder.decode(chunk, { stream: true }));
}

/**
 * The arguments of deno.json's "start" task (`deno run <permissions> src/main.ts`),
 * the one command that starts the service: scripts/dev runs that task, and the
 * tests run the same arguments with this Deno.
 */
async function startArguments(): Promise<string[]> {
  const { tasks } = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const [deno, ...args] = String(tasks.start).split(/\s+/);
  if (deno !== "deno" || args[0] !== "run") {
    throw new Error(`deno.json's start task is not "deno run ...": ${tasks.start}`);
  }
  return args;
}

/**
 * Starts the service with the permissions README gives it, on a free port,
 * and waits until GET /health answers and every worker has started.
 *
 * @param env variables to set on top of this process's environment
 * @returns the running process; call stop() in a finally block
 */
export async function spawnService(env: Record<string, string>): Promise<ServiceProcess> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: await startArguments(),
    cwd: ROOT,
    env: { LOG_REQUESTS: "false", ...env, PORT: String(port), HOSTNAME: "127.0.0.1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const sink: string[] = [];
  const drained = Promise.all([drain(child.stdout, sink), drain(child.stderr, sink)]);
  const status = child.status.then(async (status) => {
    await drained;
    return status;
  });
  const url = `http://127.0.0.1:${port}`;

  async function stop(timeoutMs = 15_000): Promise<Deno.CommandStatus> {
    try {
      Deno.kill(child.pid, "SIGTERM");
    } catch {
      // Already gone.
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      status.then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs)),
    ]);
    clearTimeout(timer);
    if (!exited) {
      try {
        Deno.kill(child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    return await status;
  }

  const service = { url, port, pid: child.pid, status, output: () => sink.join(""), stop };
  const deadline = performance.now() + 30_000;
  let exitedEarly = false;
  status.then(() => exitedEarly = true);
  while (performance.now() < deadline && !exitedEarly) {
    try {
      const response = await fetch(`${url}/health`);
      await response.body?.cancel();
      // The first worker answers /health before the others have started.
      if (response.ok && service.output().includes('"message":"service started"')) return service;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stop();
  throw new Error(`the service did not answer /health; it wrote:\n${service.output()}`);
}
