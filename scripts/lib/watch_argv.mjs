// Watches the command line of every process scripts/test starts, for secrets.
//
// Any local user can read any process's argv (ps, /proc/<pid>/cmdline), so a
// password or token passed as an argument leaks even when no log shows it.
// The scripts hand URLs and passwords to their tools through the
// environment; this watcher is the net that notices when something does not.
// It looks for the secrets it is given (the passwords of the scripts' URLs,
// the platform token), and for the shape of any password on a command line:
// a URL with a password in it (the test clusters' own), a password= keyword
// or query parameter, or PGPASSWORD=.
// It watches the descendants of its parent (the scripts/test process) only:
// other users and other runs on the machine are theirs to answer for. A
// process that a descendant left behind, and that init adopted, is no longer
// watched (a postmaster that pg_ctl started, whose argv holds no secret).
// It samples /proc every 50 ms, so a process that lives for less may slip by
// (a psql call takes about 30 ms): it catches what runs for a while (dbmate,
// pg_prove, the service, the test clusters), where a regression would show.
//
// Node rather than Deno: Deno grants /proc to -A only. Node's permission
// model (--permission, --experimental-permission before Node 24) lets it read
// /proc and write DIR, nothing else:
//   TENANCY_WATCHED_SECRETS=... node --permission --no-warnings \
//     --allow-fs-read='/proc/*' --allow-fs-read=scripts/lib/watch_argv.mjs \
//     --allow-fs-write='DIR/*' scripts/lib/watch_argv.mjs DIR
// Secrets arrive one per line in the environment, never in argv; those
// shorter than 12 characters are not looked for (they match innocent words)
// and DIR/unwatched says how many there were.
// DIR/ready appears after the first sample. DIR/leaks gets the program name
// (never its arguments) of each process seen with a secret; DIR/scans gets
// the number of samples, on SIGTERM. The watcher ends with its parent.
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from "node:fs";

const directory = process.argv[2];
if (!directory) {
  process.stderr.write("usage: watch_argv.mjs DIR (secrets in TENANCY_WATCHED_SECRETS)\n");
  process.exit(2);
}
const given = (process.env.TENANCY_WATCHED_SECRETS ?? "").split("\n").filter(Boolean);
const secrets = given
  .filter((secret) => secret.length >= 12)
  .flatMap((secret) => [...new Set([secret, encodeURIComponent(secret)])]);
// Whole arguments only, so that a script's text showing the shape of a URL in
// a message is no leak:
// - a URL with a password, alone, as an option's value or in an assignment
//   (--url=..., DATABASE_URL=...);
// - a password in a URL's query or a keyword connection string;
// - a PGPASSWORD assignment (env PGPASSWORD=... command).
const passwordShapes = [
  /^([\w-]+=)?[a-z][a-z0-9+.-]*:\/\/[^\s/@:]*:[^\s/@]+@/i,
  /^[a-z][a-z0-9+.-]*:\/\/\S*[?&]password=[^&\s]/i,
  /^([a-z_]+\s*=\s*\S*\s+)*password\s*=\s*[^\s'"]/i,
  /^PGPASSWORD=./,
];
const root = process.ppid;
const reported = new Set();
let scans = 0;

function holdsSecret(argv) {
  return argv.some((argument) =>
    secrets.some((secret) => argument.includes(secret)) ||
    passwordShapes.some((shape) => shape.test(argument))
  );
}

// Each process's parent, from /proc/<pid>/stat ("pid (comm) state ppid ...";
// comm may hold spaces and parentheses, so read after the last ")").
function parents() {
  const parentOf = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // the process ended meanwhile
    }
  }
  return parentOf;
}

function descendsFromRoot(pid, parentOf) {
  for (let at = parentOf.get(pid), hops = 0; at !== undefined && hops < 64; at = parentOf.get(at), hops++) {
    if (at === root) return true;
  }
  return false;
}

function scan() {
  const parentOf = parents();
  for (const pid of parentOf.keys()) {
    if (pid === process.pid || !descendsFromRoot(pid, parentOf)) continue;
    let argv;
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // the process ended meanwhile
    }
    if (!holdsSecret(argv)) continue;
    const program = (argv[0] ?? "").split("/").pop() || "(unnamed)";
    const shown = holdsSecret([program]) ? "(a process whose name holds the secret)" : program;
    if (reported.has(shown)) continue;
    reported.add(shown);
    appendFileSync(`${directory}/leaks`, `${shown}\n`);
  }
  scans++;
}

function rootAlive() {
  try {
    process.kill(root, 0);
    return true;
  } catch {
    return false;
  }
}

process.on("SIGTERM", () => {
  writeFileSync(`${directory}/scans`, `${scans}\n`);
  process.exit(0);
});
const unwatched = given.length - given.filter((secret) => secret.length >= 12).length;
if (unwatched > 0) writeFileSync(`${directory}/unwatched`, `${unwatched}\n`);
scan();
writeFileSync(`${directory}/ready`, "");
setInterval(() => {
  if (!rootAlive()) process.exit(0);
  scan();
}, 50);
