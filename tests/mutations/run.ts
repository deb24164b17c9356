/**
 * The mutation run behind `./scripts/test --mutations`: applies each mutation
 * of tests/mutations/mutations.ts on its own, to a fresh copy of the migrated
 * test database (and, for a source mutation, to a copy of the source tree),
 * runs the suites that should catch it, and prints which test killed it. It
 * fails when a mutation does not apply, survives its suites, or when those
 * suites fail without any mutation.
 *
 * Environment (from scripts/test): TEST_DATABASE_URL (the migrated database,
 * as a superuser; it is the template of every copy), APP_DATABASE_URL and
 * ADMIN_DATABASE_URL (the runtime roles, any database), DENO.
 */
import { type Mutation, MUTATIONS } from "./mutations.ts";
import { pgEnv } from "../pg_env.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const MUTANT_TREE = `${ROOT}/.local/mutant-tree`;

function env(name: string): string {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set: run the mutations through ./scripts/test --mutations`);
  return value;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdin?: string } = {},
): Promise<{ success: boolean; output: string }> {
  const child = new Deno.Command(command, {
    args,
    env: options.env,
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const result = await child.output();
  const decoder = new TextDecoder();
  return { success: result.success, output: decoder.decode(result.stdout) + decoder.decode(result.stderr) };
}

async function psql(url: string, sql: string): Promise<string> {
  const result = await run("psql", ["-XAtq", "-v", "ON_ERROR_STOP=1"], { env: pgEnv(url), stdin: sql });
  if (!result.success) throw new Error(result.output.trim().split("\n").at(-1));
  return result.output;
}

const template = new URL(env("TEST_DATABASE_URL")).pathname.slice(1);
const ownerUrl = env("TEST_DATABASE_URL");
const maintenanceUrl = withDatabase(ownerUrl, "postgres");
const mutantDatabase = `${template}_mutant`;
const mutantUrl = withDatabase(ownerUrl, mutantDatabase);

async function freshMutantDatabase(): Promise<void> {
  await psql(maintenanceUrl, `drop database if exists ${mutantDatabase} with (force)`);
  await psql(maintenanceUrl, `create database ${mutantDatabase} template ${template}`);
  // A database's own privileges are not copied from its template.
  await psql(maintenanceUrl, `revoke temporary on database ${mutantDatabase} from public`);
}

function replaceOnce(text: string, find: string, replace: string, where: string): string {
  const count = text.split(find).length - 1;
  if (count !== 1) throw new Error(`the text to change occurs ${count} times in ${where}, not once`);
  return text.replace(find, () => replace);
}

// The CREATE OR REPLACE statement that rebuilds a function or view as it is.
async function definition(name: string): Promise<string> {
  if (name.includes("(")) {
    return await psql(mutantUrl, `select pg_get_functiondef('${name}'::regprocedure)`);
  }
  const options = await psql(
    mutantUrl,
    `select coalesce(' with (' || array_to_string(reloptions, ', ') || ')', '') from pg_class
     where oid = '${name}'::regclass`,
  );
  const body = await psql(mutantUrl, `select pg_get_viewdef('${name}'::regclass)`);
  return `create or replace view ${name} ${options.trim()} as ${body}`;
}

async function copySourceTree(mutation: Mutation): Promise<string> {
  await Deno.remove(MUTANT_TREE, { recursive: true }).catch(() => {});
  await Deno.mkdir(MUTANT_TREE, { recursive: true });
  await Deno.mkdir(`${MUTANT_TREE}/scripts`);
  // The scripts the tests run (scripts/verify-audit) are copied; the tools
  // they use are the installed ones.
  for (
    const entry of ["src", "tests", "db", "deno.json", "deno.lock", "scripts/lib", "scripts/verify-audit"]
  ) {
    const copied = await run("cp", ["-R", `${ROOT}/${entry}`, `${MUTANT_TREE}/${entry}`]);
    if (!copied.success) throw new Error(`could not copy ${entry}: ${copied.output}`);
  }
  const linked = await run("ln", ["-s", `${ROOT}/scripts/tools`, `${MUTANT_TREE}/scripts/tools`]);
  if (!linked.success) throw new Error(`could not link scripts/tools: ${linked.output}`);
  const path = `${MUTANT_TREE}/${mutation.file}`;
  await Deno.writeTextFile(
    path,
    replaceOnce(await Deno.readTextFile(path), mutation.find!, mutation.replace!, mutation.file!),
  );
  return MUTANT_TREE;
}

async function apply(mutation: Mutation): Promise<string> {
  await freshMutantDatabase();
  if (mutation.sql) await psql(mutantUrl, mutation.sql);
  if (mutation.definitionOf) {
    const original = await definition(mutation.definitionOf);
    await psql(mutantUrl, replaceOnce(original, mutation.find!, mutation.replace!, mutation.definitionOf));
  }
  return mutation.file ? await copySourceTree(mutation) : ROOT;
}

/** A suite's first failing test, and everything the suite printed. */
interface Failure {
  test: string;
  output: string;
}

/** The first failure a suite reports, or null when it passes. */
async function firstFailure(suite: string, tree: string): Promise<Failure | null> {
  if (suite.startsWith("pgtap/")) {
    const result = await run("pg_prove", [`${ROOT}/${suite}`], {
      env: { ...Deno.env.toObject(), ...pgEnv(mutantUrl) },
    });
    if (result.success) return null;
    const failed = /^# Failed test \d+: "(.*)"$/m.exec(result.output);
    const crashed = /ERROR: {2}(.*)$/m.exec(result.output);
    const test = failed
      ? failed[1]
      : crashed
      ? `the suite stopped: ${crashed[1]}`
      : result.output.trim().split("\n").at(-1)!;
    return { test, output: result.output };
  }
  const app = withDatabase(env("APP_DATABASE_URL"), mutantDatabase);
  const admin = withDatabase(env("ADMIN_DATABASE_URL"), mutantDatabase);
  const result = await run(env("DENO"), [
    "test",
    "--quiet",
    "--allow-net",
    "--allow-env",
    "--allow-read",
    `--allow-write=${ROOT}/.local`,
    "--allow-run",
    suite,
  ], {
    cwd: tree,
    env: {
      ...Deno.env.toObject(),
      NO_COLOR: "1",
      DATABASE_URL: mutantUrl,
      APP_DATABASE_URL: app,
      ADMIN_DATABASE_URL: admin,
    },
  });
  if (result.success) return null;
  const failed = /^\s*(.+?) \.\.\. FAILED/m.exec(result.output);
  return { test: failed ? failed[1] : result.output.trim().split("\n").at(-1)!, output: result.output };
}

interface Outcome {
  mutation: string;
  verdict: "killed" | "SURVIVED" | "DID NOT APPLY";
  detail: string;
}

async function main(): Promise<number> {
  // MUTATIONS_MATCHING=text runs only the mutations whose name holds it (a
  // developer's check of one new mutation); CI runs them all.
  const matching = Deno.env.get("MUTATIONS_MATCHING") ?? "";
  const mutations = MUTATIONS.filter((mutation) => mutation.name.includes(matching));
  const suites = [...new Set(mutations.flatMap((mutation) => mutation.suites))].sort();
  console.log(
    `mutation run: ${mutations.length} mutations, ${suites.length} suites${
      matching ? ` (matching "${matching}")` : ""
    }`,
  );
  // A run of no mutation proves nothing: a filter that matches none is a mistake.
  if (mutations.length === 0) {
    console.error(`error: no mutation's name holds "${matching}"`);
    return 1;
  }
  // Without any mutation every suite passes, or a kill would mean nothing.
  await freshMutantDatabase();
  for (const suite of suites) {
    const failure = await firstFailure(suite, ROOT);
    if (failure) {
      // What the suite printed, so that a failure seen once (a race) can be
      // understood from the run's log.
      console.error(failure.output.trim());
      console.error(
        `error: ${suite} fails without any mutation (${failure.test}); fix it before the mutation run`,
      );
      return 1;
    }
  }
  const outcomes: Outcome[] = [];
  for (const [index, mutation] of mutations.entries()) {
    const started = performance.now();
    let outcome: Outcome;
    let tree: string | undefined;
    try {
      tree = await apply(mutation);
    } catch (error) {
      outcome = { mutation: mutation.name, verdict: "DID NOT APPLY", detail: (error as Error).message };
    }
    if (tree) {
      outcome = {
        mutation: mutation.name,
        verdict: "SURVIVED",
        detail: `none of ${mutation.suites.join(", ")}`,
      };
      for (const suite of mutation.suites) {
        const failure = await firstFailure(suite, tree);
        if (failure) {
          outcome = { mutation: mutation.name, verdict: "killed", detail: `${suite}: ${failure.test}` };
          break;
        }
      }
    }
    outcomes.push(outcome!);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`[${index + 1}/${mutations.length}] ${outcome!.verdict} in ${seconds} s: ${mutation.name}`);
  }
  await psql(maintenanceUrl, `drop database if exists ${mutantDatabase} with (force)`);
  await Deno.remove(MUTANT_TREE, { recursive: true }).catch(() => {});

  console.log("\n| Mutation | Verdict | Killed by |\n| --- | --- | --- |");
  for (const outcome of outcomes) {
    console.log(`| ${outcome.mutation} | ${outcome.verdict} | ${outcome.detail.replaceAll("|", "\\|")} |`);
  }
  const alive = outcomes.filter((outcome) => outcome.verdict !== "killed");
  console.log(
    alive.length
      ? `\n${alive.length} of ${outcomes.length} mutations were not killed`
      : `\nall ${outcomes.length} mutations killed`,
  );
  return alive.length ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
