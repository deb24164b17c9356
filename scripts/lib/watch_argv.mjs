// Watches every process's command line for secrets while scripts/test runs.
//
// Any local user can read any process's argv (ps, /proc/<pid>/cmdline), so a
// password or token passed as an argument leaks even when no log shows it.
// The scripts hand URLs and passwords to their tools through the
// environment; this watcher is the net that notices when something does not.
// It looks for the secrets it is given (the passwords of the scripts' URLs,
// the platform token), and for the shape of any password on a command line:
// a URL with a password in it (the test clusters' own), or PGPASSWORD=.
// It samples /proc every 50 ms, so a process that lives for less may slip by
// (a psql call takes about 30 ms): it catches what runs for a while (dbmate,
// pg_prove, the service, the test clusters), where a regression would show.
//
// Node rather than Deno: Deno grants /proc to -A only. Node's permission
// model lets it read /proc and write DIR, nothing else:
//   TENANCY_WATCHED_SECRETS=... node --experimental-permission --no-warnings \
//     --allow-fs-read='/proc/*' --allow-fs-read=scripts/lib/watch_argv.mjs \
//     --allow-fs-write='DIR/*' scripts/lib/watch_argv.mjs DIR
// Secrets arrive one per line in the environment, never in argv; those
// shorter than 12 characters are not looked for (they match innocent words).
// DIR/ready appears after the first sample. DIR/leaks gets the program name
// (never its arguments) of each process seen with a secret; DIR/scans gets
// the number of samples, on SIGTERM. The watcher ends with its parent.
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from "node:fs";

const directory = process.argv[2];
const secrets = (process.env.TENANCY_WATCHED_SECRETS ?? "")
  .split("\n")
  .filter((secret) => secret.length >= 12)
  .flatMap((secret) => [...new Set([secret, encodeURIComponent(secret)])]);
if (!directory) {
  process.stderr.write("usage: watch_argv.mjs DIR (secrets in TENANCY_WATCHED_SECRETS)\n");
  process.exit(2);
}
// An argument that is a URL with a password (or an option set to one), or a
// PGPASSWORD assignment (env PGPASSWORD=... command). Whole arguments only: a
// script's text may show the shape of a URL in a message.
const passwordShapes = [/^(--?[\w-]+=)?[a-z][a-z0-9+.-]*:\/\/[^\s/@:]*:[^\s/@]+@/i, /^PGPASSWORD=/];
const parent = process.ppid;
const reported = new Set();
let scans = 0;

function holdsSecret(argv) {
  return argv.some((argument) =>
    secrets.some((secret) => argument.includes(secret)) ||
    passwordShapes.some((shape) => shape.test(argument))
  );
}

function scan() {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || name === String(process.pid)) continue;
    let argv;
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
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

function parentAlive() {
  try {
    process.kill(parent, 0);
    return true;
  } catch {
    return false;
  }
}

process.on("SIGTERM", () => {
  writeFileSync(`${directory}/scans`, `${scans}\n`);
  process.exit(0);
});
scan();
writeFileSync(`${directory}/ready`, "");
setInterval(() => {
  if (!parentAlive()) process.exit(0);
  scan();
}, 50);
