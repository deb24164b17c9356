/**
 * The benchmark behind ./scripts/bench: seeds its own databases, then measures
 * in one run each HTTP route (wrk on loopback) against the pgbench ceiling of
 * exactly the SQL transaction that route runs, the cost of row-level security,
 * and how latency holds up as data grows. It reports; it never fails a build.
 *
 * Environment (from scripts/bench): DATABASE_URL (owner), APP_DATABASE_URL,
 * ADMIN_DATABASE_URL, PG_BIN, DENO.
 */

interface Scale {
  name: string;
  tenants: number;
  docsPerTenant: number;
}

interface CaseResult {
  name: string;
  http_rps: number;
  pgbench_tps: number;
  ratio: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  /** GET cases: the same transaction on bench/floor_server.ts, and the service's rate over it. */
  floor_rps?: number;
  floor_ratio?: number;
}

interface WrkResult {
  requests: number;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
}

const SCALES: Record<string, Scale> = {
  quick_small: { name: "quick-small", tenants: 50, docsPerTenant: 100 },
  quick_large: { name: "quick-large", tenants: 500, docsPerTenant: 100 },
  small: { name: "small", tenants: 100, docsPerTenant: 1_000 },
  default: { name: "default", tenants: 1_000, docsPerTenant: 1_000 },
  large: { name: "large", tenants: 10_000, docsPerTenant: 1_000 },
};

const CASES = [
  { name: "GET /v1/documents/{id}", wrk: "get", script: "get_document.sql", permission: "documents:read" },
  {
    name: "GET /v1/documents?limit=20",
    wrk: "list",
    script: "list_documents.sql",
    permission: "documents:read",
  },
  { name: "POST /v1/documents", wrk: "post", script: "create_document.sql", permission: "documents:write" },
  {
    name: "GET /v1/audit-logs?limit=50",
    wrk: "audit",
    script: "list_audit_logs.sql",
    permission: "audit:read",
  },
];

const CONNECTIONS = 8;
const THREADS = 2;
const ROOT = new URL("..", import.meta.url).pathname;

function env(name: string): string {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set; run ./scripts/bench`);
  return value;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

function pgEnv(url: string): Record<string, string> {
  const u = new URL(url);
  return {
    PGHOST: u.hostname,
    PGPORT: u.port || "5432",
    PGUSER: decodeURIComponent(u.username),
    PGPASSWORD: decodeURIComponent(u.password),
    PGDATABASE: decodeURIComponent(u.pathname.slice(1)),
  };
}

async function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<string> {
  const child = new Deno.Command(command, {
    args,
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  const stdout = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed:\n${new TextDecoder().decode(output.stderr)}${stdout}`,
    );
  }
  return stdout;
}

function psql(url: string, sql: string, variables: Record<string, string | number> = {}): Promise<string> {
  const args = ["-XAtq", "-v", "ON_ERROR_STOP=1"];
  for (const [name, value] of Object.entries(variables)) args.push("-v", `${name}=${value}`);
  return run("psql", args, { env: pgEnv(url), stdin: sql });
}

// dbmate reads the URL from DATABASE_URL, which keeps its password out of
// argv (and out of the command line an error repeats).
function dbmate(url: string, ...args: string[]): Promise<string> {
  return run(`${ROOT}scripts/tools/node_modules/.bin/dbmate`, args, { env: { DATABASE_URL: url } });
}

// Reads every table and index of the tenant schema, and their TOAST, into the
// operating system's page cache (pg_prewarm, read mode), so that no case is
// timed against a cold disk. A database seeded, or last read, before other
// large work would otherwise be measured mostly by its disk: pgbench's GET
// here read 106 to 283 transactions/s after the large scale was seeded,
// waiting on DataFileRead with the CPUs idle, against 16,359 with the data
// cached. Where pg_prewarm is missing, the run says so and goes on.
async function prewarm(url: string): Promise<void> {
  const started = performance.now();
  progress(`  prewarming ${new URL(url).pathname.slice(1)} into the page cache`);
  try {
    const blocks = await psql(
      url,
      `create extension if not exists pg_prewarm schema extensions;
       select coalesce(sum(extensions.pg_prewarm(c.oid, 'read')), 0)
       from pg_class c
       where c.relkind in ('r', 'i', 't')
         and (c.relnamespace = 'core'::regnamespace
              or c.oid in (select reltoastrelid from pg_class where relnamespace = 'core'::regnamespace))`,
    );
    const megabytes = Math.round(Number(blocks) * 8192 / 1e6).toLocaleString("en-US");
    progress(
      `  prewarmed ${megabytes} MB into the page cache in ${
        ((performance.now() - started) / 1000).toFixed(1)
      } s`,
    );
  } catch (error) {
    progress(
      `  could not prewarm (${
        String((error as Error).message).trim().split("\n").at(-1)
      }); timing with whatever the page cache holds`,
    );
  }
}

function firstLine(error: unknown): string {
  return String((error as Error).message ?? error).split("\n").find((line) => line.startsWith("Error:")) ??
    "failed";
}

function progress(message: string): void {
  console.error(`==> ${message}`);
}

// --- data ---------------------------------------------------------------------

async function ensureSeeded(scale: Scale): Promise<string> {
  const owner = env("DATABASE_URL");
  const database = `tenancy_bench_${scale.name.replace("-", "_")}`;
  const url = withDatabase(owner, database);
  // v3: the keys' hashes are in core.api_key_hashes too (earlier seeds lack them).
  const marker = `bench seed v3: ${scale.tenants} tenants x ${scale.docsPerTenant} documents`;
  const existing = await psql(
    withDatabase(owner, "postgres"),
    `select shobj_description(oid, 'pg_database') from pg_database where datname = '${database}'`,
  );
  if (existing.trim() === marker) {
    // A database seeded before newer migrations gets them now: the service
    // answers 503 on a schema older than the one it was built for. One
    // seeded from migrations that have changed since cannot take them: it
    // is seeded again.
    progress(`reusing seeded database ${database} (${marker}); applying new migrations`);
    try {
      await dbmate(url, "--no-dump-schema", "up");
      return url;
    } catch (error) {
      progress(`${database} does not take the new migrations (${firstLine(error)}); seeding it again`);
    }
  }
  const total = scale.tenants * scale.docsPerTenant;
  progress(`seeding ${database}: ${scale.tenants} tenants, ${total.toLocaleString("en")} documents`);
  await dbmate(url, "drop");
  await dbmate(url, "--no-dump-schema", "up");
  const seed = await Deno.readTextFile(`${ROOT}bench/seed.sql`);
  const started = performance.now();
  await psql(url, seed, {
    step: "tenants",
    tenants: scale.tenants,
    docs_per_tenant: 0,
    first_tenant: 0,
    last_tenant: 0,
  });
  const chunk = Math.max(1, Math.floor(200_000 / scale.docsPerTenant));
  for (let first = 1; first <= scale.tenants; first += chunk) {
    const last = Math.min(scale.tenants, first + chunk - 1);
    await psql(url, seed, {
      step: "documents",
      tenants: scale.tenants,
      docs_per_tenant: scale.docsPerTenant,
      first_tenant: first,
      last_tenant: last,
    });
    const done = last * scale.docsPerTenant;
    const seconds = (performance.now() - started) / 1000;
    progress(
      `  ${done.toLocaleString("en")} / ${total.toLocaleString("en")} documents (${seconds.toFixed(1)} s)`,
    );
  }
  progress("  vacuum analyze");
  await psql(url, "vacuum analyze");
  await psql(
    withDatabase(owner, "postgres"),
    `comment on database ${database} is '${marker}'`,
  );
  await psql(url, "select 1"); // the runtime roles' passwords are cluster-wide; nothing else to set
  return url;
}

async function writeEntries(url: string, scale: Scale): Promise<string> {
  const lines = await psql(
    url,
    `select 'tnk_bench_' || lpad(t::text, 8, '0') || '_0123456789abcdef' || ',' ||
            md5('doc-' || t || '-' || ((t * 7919 + k * 104729) % ${scale.docsPerTenant} + 1))::uuid || ',' ||
            md5('user-' || t || '-' || (k % 10 + 1))::uuid
     from generate_series(1, ${Math.min(scale.tenants, 2000)}) t, generate_series(0, 2) k`,
  );
  const path = `${ROOT}.local/bench-entries-${scale.name}.csv`;
  await Deno.writeTextFile(path, lines);
  return path;
}

// --- measurements ----------------------------------------------------------------

// How long a start may take once the dependencies are cached (warmDependencies).
const READY_TIMEOUT_MS = 60_000;

// Fetches and compiles what the servers import before anything is timed, so
// a first run on a fresh clone does not spend its readiness wait on downloads.
async function warmDependencies(): Promise<void> {
  await run(env("DENO"), ["cache", `${ROOT}src/main.ts`, `${ROOT}bench/floor_server.ts`]);
}

// Keeps the last bytes a child wrote, to show when it fails to start.
function tail(stream: ReadableStream<Uint8Array>, sink: string[]): Promise<void> {
  const decoder = new TextDecoder();
  return (async () => {
    for await (const chunk of stream) {
      sink.push(decoder.decode(chunk, { stream: true }));
      while (sink.join("").length > 16_384) sink.shift();
    }
  })();
}

// The service by default; bench/floor_server.ts for the floor measurement.
async function startServer(
  url: string,
  port: number,
  entry = "src/main.ts",
  extraEnv: Record<string, string> = {},
): Promise<Deno.ChildProcess> {
  const app = withDatabase(env("APP_DATABASE_URL"), new URL(url).pathname.slice(1));
  const child = new Deno.Command(env("DENO"), {
    args: [
      "run",
      "--unstable-net",
      "--allow-net",
      "--allow-env",
      `--allow-read=${ROOT}src`,
      `${ROOT}${entry}`,
    ],
    env: {
      APP_DATABASE_URL: app,
      PORT: String(port),
      LOG_REQUESTS: "false",
      DB_POOL_MAX: String(CONNECTIONS),
      DB_POOL_MIN: String(CONNECTIONS),
      ...extraEnv,
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  tail(child.stdout, output).catch(() => {});
  tail(child.stderr, output).catch(() => {});
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (!exited && performance.now() < deadline) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/ready`);
      await response.body?.cancel();
      if (response.ok) return child;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (!exited) child.kill("SIGTERM");
  await child.status;
  throw new Error(
    `${entry} ${exited ? "exited" : `did not become ready within ${READY_TIMEOUT_MS / 1000} s`}; it wrote:\n${
      output.join("").trim() || "(nothing)"
    }`,
  );
}

async function stopServer(child: Deno.ChildProcess): Promise<void> {
  child.kill("SIGTERM");
  await child.status;
}

async function wrk(port: number, entries: string, wrkCase: string, seconds: number): Promise<WrkResult> {
  const output = await run("wrk", [
    "-t",
    String(THREADS),
    "-c",
    String(CONNECTIONS),
    "-d",
    `${seconds}s`,
    "--timeout",
    "5s",
    "-s",
    `${ROOT}bench/wrk.lua`,
    `http://127.0.0.1:${port}`,
    "--",
    entries,
    wrkCase,
  ]);
  const line = output.split("\n").find((l) => l.startsWith("WRK_RESULT "));
  if (!line) throw new Error(`wrk printed no result:\n${output}`);
  const r = JSON.parse(line.slice("WRK_RESULT ".length));
  return {
    requests: r.requests,
    rps: r.requests / (r.duration_us / 1e6),
    p50_ms: r.p50_us / 1000,
    p99_ms: r.p99_us / 1000,
    errors: r.errors,
  };
}

async function pgbench(
  url: string,
  script: string,
  scale: Scale,
  options: { seconds: number; permission?: string },
): Promise<number> {
  const output = await run(`${env("PG_BIN")}/pgbench`, [
    "-n",
    "-M",
    "prepared",
    "-c",
    String(CONNECTIONS),
    "-j",
    String(THREADS),
    "-T",
    String(options.seconds),
    "-D",
    `permission=${options.permission ?? "*"}`,
    "-D",
    `tenants=${scale.tenants}`,
    "-D",
    `docs_per_tenant=${scale.docsPerTenant}`,
    "-f",
    `${ROOT}bench/pgbench/${script}`,
  ], { env: pgEnv(url) });
  const match = /tps = ([\d.]+)/.exec(output);
  if (!match) throw new Error(`pgbench printed no tps:\n${output}`);
  return Number(match[1]);
}

// The same transaction as the service's GET case on bench/floor_server.ts,
// which has no service code around it, under the same wrk load.
async function measureFloor(
  url: string,
  port: number,
  entries: string,
  wrkCase: string,
  seconds: number,
): Promise<WrkResult> {
  progress(`floor: the same transaction on bare Deno.serve + postgres.js, wrk ${seconds} s`);
  const server = await startServer(url, port, "bench/floor_server.ts");
  try {
    await wrk(port, entries, wrkCase, 1);
    return await wrk(port, entries, wrkCase, seconds);
  } finally {
    await stopServer(server);
  }
}

interface RateLimitResult {
  on_rps: number;
  off_rps: number;
  /** on_rps / off_rps: at least 0.95 is the target. */
  ratio: number;
  errors: number;
}

// The GET case with rate limits on (the service as it runs, each bench
// tenant on the pro plan's 60,000 a minute) right beside the same case on a
// service started with RATE_LIMITS=false, so the two share the machine's
// state as closely as a run allows.
async function measureRateLimits(
  url: string,
  limitedPort: number,
  unlimitedPort: number,
  entries: string,
  seconds: number,
): Promise<RateLimitResult> {
  progress(`rate limits: GET /v1/documents/{id} with limits on, then off, wrk ${seconds} s each`);
  const on = await wrk(limitedPort, entries, "get", seconds);
  const server = await startServer(url, unlimitedPort, "src/main.ts", { RATE_LIMITS: "false" });
  try {
    await wrk(unlimitedPort, entries, "get", 1);
    const off = await wrk(unlimitedPort, entries, "get", seconds);
    return {
      on_rps: round(on.rps, 1),
      off_rps: round(off.rps, 1),
      ratio: round(on.rps / off.rps),
      errors: on.errors + off.errors,
    };
  } finally {
    await stopServer(server);
  }
}

interface WorkersResult {
  workers: number;
  http_rps: number;
  p50_ms: number;
  p99_ms: number;
  /** CPU time of the service's process (all its workers) per request, in microseconds. */
  cpu_us_per_request: number;
  errors: number;
}

// utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat, in 1/100 s).
// Read with cat: Deno lets only --allow-all read /proc directly.
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await run("cat", [`/proc/${pid}/stat`]);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

// The GET case on a service with one worker, then with two: the setting
// works, and what a request costs the service's process either way.
async function measureWorkers(
  url: string,
  port: number,
  entries: string,
  seconds: number,
): Promise<WorkersResult[]> {
  const results: WorkersResult[] = [];
  for (const workers of [1, 2]) {
    progress(`workers: GET /v1/documents/{id} with WORKERS=${workers}, wrk ${seconds} s`);
    const server = await startServer(url, port, "src/main.ts", { WORKERS: String(workers) });
    try {
      await wrk(port, entries, "get", 1);
      const before = await cpuSeconds(server.pid);
      const http = await wrk(port, entries, "get", seconds);
      const cpu = (await cpuSeconds(server.pid)) - before;
      results.push({
        workers,
        http_rps: round(http.rps, 1),
        p50_ms: round(http.p50_ms),
        p99_ms: round(http.p99_ms),
        cpu_us_per_request: round((cpu * 1e6) / http.requests, 1),
        errors: http.errors,
      });
    } finally {
      await stopServer(server);
    }
  }
  return results;
}

function round(value: number, digits = 2): number {
  return Math.round(value * 10 ** digits) / 10 ** digits;
}

// --- main --------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = Deno.args;
  const quick = args.includes("--quick");
  const scaleFlag = args.includes("--scale") ? args[args.indexOf("--scale") + 1] : undefined;
  if (scaleFlag && !["small", "default", "large"].includes(scaleFlag)) {
    console.error("usage: scripts/bench [--quick] [--scale small|default|large]");
    Deno.exit(2);
  }
  const seconds = quick ? 3 : 15;
  const main = quick ? SCALES.quick_small : SCALES[scaleFlag ?? "default"];
  const compare = quick
    ? [SCALES.quick_small, SCALES.quick_large]
    : scaleFlag
    ? []
    : [SCALES.small, SCALES.large];
  const port = 18000 + Math.floor(Math.random() * 1000);
  const appUrl = (db: string) => withDatabase(env("APP_DATABASE_URL"), new URL(db).pathname.slice(1));

  await warmDependencies();
  const mainUrl = await ensureSeeded(main);
  await prewarm(mainUrl);
  const entries = await writeEntries(mainUrl, main);
  const cases: CaseResult[] = [];
  let rateLimits: RateLimitResult | undefined;
  const server = await startServer(mainUrl, port);
  try {
    await wrk(port, entries, "get", 1); // warm-up: connections, prepared statements, caches
    for (const c of CASES) {
      progress(`${c.name}: pgbench ${seconds} s, then wrk ${seconds} s, ${CONNECTIONS} connections`);
      const tps = await pgbench(appUrl(mainUrl), c.script, main, { seconds, permission: c.permission });
      const http = await wrk(port, entries, c.wrk, seconds);
      // The floor right after the service's GET, on the same data (the service idles meanwhile).
      const floor = c.script.startsWith("create")
        ? undefined
        : await measureFloor(mainUrl, port + 2, entries, c.wrk, seconds);
      cases.push({
        name: c.name,
        http_rps: round(http.rps, 1),
        pgbench_tps: round(tps, 1),
        ratio: round(http.rps / tps),
        p50_ms: round(http.p50_ms),
        p99_ms: round(http.p99_ms),
        errors: http.errors + (floor?.errors ?? 0),
        ...(floor ? { floor_rps: round(floor.rps, 1), floor_ratio: round(http.rps / floor.rps) } : {}),
      });
    }
    rateLimits = await measureRateLimits(mainUrl, port, port + 3, entries, seconds);
  } finally {
    await stopServer(server);
  }

  const workers = await measureWorkers(mainUrl, port + 4, entries, seconds);

  // Both sides sign the same context with api.begin_request, which only
  // app_user and the superuser may call; the superuser bypasses the policies.
  progress(`RLS overhead: app_user under RLS vs the superuser with tenant_id filter, ${seconds} s each`);
  const rlsTps = await pgbench(appUrl(mainUrl), "rls_list.sql", main, { seconds });
  const bypassTps = await pgbench(mainUrl, "bypass_list.sql", main, { seconds });
  const rlsOverheadRatio = round(bypassTps / rlsTps, 3);

  const scale: Record<string, Record<string, { p50_ms: number; p99_ms: number; errors: number }>> = {};
  for (const s of compare) {
    const url = await ensureSeeded(s);
    await prewarm(url);
    const scaleEntries = await writeEntries(url, s);
    const scaleServer = await startServer(url, port + 1);
    try {
      await wrk(port + 1, scaleEntries, "get", 1);
      for (const [label, wrkCase] of [["get", "get"], ["list", "list"]]) {
        progress(`scale ${s.name}: ${label} for ${seconds} s`);
        const r = await wrk(port + 1, scaleEntries, wrkCase, seconds);
        scale[label] ??= {};
        scale[label][s.name] = { p50_ms: round(r.p50_ms), p99_ms: round(r.p99_ms), errors: r.errors };
      }
    } finally {
      await stopServer(scaleServer);
    }
  }
  const [small, large] = compare;
  const scaleRatios = small
    ? Object.fromEntries(
      Object.entries(scale).map(([label, byScale]) => [
        label,
        round(byScale[large.name].p99_ms / byScale[small.name].p99_ms),
      ]),
    )
    : {};
  const scaleP99Ratio = small ? Math.max(...Object.values(scaleRatios)) : null;

  const machine = {
    cores: navigator.hardwareConcurrency,
    postgresql: (await psql(mainUrl, "show server_version")).trim(),
    deno: Deno.version.deno,
  };
  const result = {
    generated_at: new Date().toISOString(),
    quick,
    scale: main.name,
    tenants: main.tenants,
    documents: main.tenants * main.docsPerTenant,
    connections: CONNECTIONS,
    duration_s: seconds,
    cases,
    rate_limits: rateLimits ?? null,
    workers,
    rls_overhead_ratio: rlsOverheadRatio,
    rls: { rls_tps: round(rlsTps, 1), bypass_tps: round(bypassTps, 1) },
    scale_p99_ratio: scaleP99Ratio,
    scale_comparison: small
      ? { small: small.name, large: large.name, latency: scale, p99_ratio: scaleRatios }
      : null,
    machine,
  };
  await Deno.mkdir(`${ROOT}bench/results`, { recursive: true });
  await Deno.writeTextFile(`${ROOT}bench/results/latest.json`, JSON.stringify(result, null, 2) + "\n");

  const pad = (value: unknown, width: number) => String(value).padEnd(width);
  console.log(
    `\n${pad("case", 30)}${pad("http req/s", 12)}${pad("pgbench tps", 13)}${pad("ratio", 8)}${
      pad("floor req/s", 13)
    }${pad("/ floor", 9)}${pad("p50 ms", 9)}${pad("p99 ms", 9)}errors`,
  );
  for (const c of cases) {
    console.log(
      `${pad(c.name, 30)}${pad(c.http_rps, 12)}${pad(c.pgbench_tps, 13)}${pad(c.ratio, 8)}${
        pad(c.floor_rps ?? "", 13)
      }${pad(c.floor_ratio ?? "", 9)}${pad(c.p50_ms, 9)}${pad(c.p99_ms, 9)}${c.errors}`,
    );
  }
  console.log(
    "floor: the same transaction on bench/floor_server.ts (bare Deno.serve + postgres.js, rows as JSON)",
  );
  if (rateLimits) {
    console.log(
      `rate limits: GET ${rateLimits.on_rps} req/s with limits on, ${rateLimits.off_rps} off, ratio ${rateLimits.ratio}; errors ${rateLimits.errors}`,
    );
  }
  for (const w of workers) {
    console.log(
      `WORKERS=${w.workers}: GET ${w.http_rps} req/s, p50 ${w.p50_ms} ms, p99 ${w.p99_ms} ms, ` +
        `${w.cpu_us_per_request} us of service CPU per request; errors ${w.errors}`,
    );
  }
  console.log(`RLS overhead ratio (bypass tps / RLS tps): ${rlsOverheadRatio}`);
  if (small) {
    for (const [label, byScale] of Object.entries(scale)) {
      console.log(
        `scale ${label}: p99 ${byScale[small.name].p99_ms} ms (${small.name}) -> ${
          byScale[large.name].p99_ms
        } ms (${large.name}), ratio ${scaleRatios[label]}`,
      );
    }
  }
  console.log(`machine: ${machine.cores} cores, PostgreSQL ${machine.postgresql}, Deno ${machine.deno}`);
  console.log("written: bench/results/latest.json");
}

if (import.meta.main) await main();
