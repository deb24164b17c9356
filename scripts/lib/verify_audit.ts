/**
 * Offline verifier of an exported audit chain (see scripts/verify-audit and
 * the README's "Audit chain"): recomputes every row's chain hash from the
 * previous one, reading the file a line at a time.
 *
 * Usage: verify_audit.ts FILE [--anchor SEQ:HASH]
 */

type Bytes = Uint8Array<ArrayBuffer>;

const ZERO_HASH: Bytes = new Uint8Array(32);
const encoder = new TextEncoder();

interface Entry {
  seq: number;
  tenant_id: string;
  log_id: string;
  user_id: string | null;
  api_key_id: string | null;
  operator_id: string | null;
  action: string;
  resource_type: string;
  resource_id: string;
  details: unknown;
  details_text: string | null;
  details_salt: string | null;
  details_sha256: string;
  request_id: string | null;
  client_request_id: string | null;
  timestamp: string;
  recorded_at: string;
  prev_hash: string;
  chain_hash: string;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function fromHex(text: string): Bytes {
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error(`not a hex string: ${text}`);
  return Uint8Array.from(text.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

function concat(a: Bytes, b: Bytes): Bytes {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

function parsedOrUndefined(text: string): unknown {
  try {
    return parseExact(text);
  } catch {
    return undefined;
  }
}

async function sha256(bytes: Bytes): Promise<Bytes> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** The canonical record of a row: "tenancy-audit-v1\n" and a netstring per field, "~" for NULL. */
export function recordOf(entry: Entry): Bytes {
  const fields = [
    entry.tenant_id,
    String(entry.seq),
    entry.log_id,
    entry.user_id,
    entry.api_key_id,
    entry.operator_id,
    entry.action,
    entry.resource_type,
    entry.resource_id,
    entry.details_sha256,
    entry.request_id,
    entry.client_request_id,
    entry.timestamp,
    entry.recorded_at,
  ];
  const encoded = fields.map((field) => field === null ? "~" : `${encoder.encode(field).length}:${field},`)
    .join("");
  return encoder.encode(`tenancy-audit-v1\n${encoded}`);
}

async function* linesOf(path: string): AsyncGenerator<string> {
  const file = await Deno.open(path);
  let buffered = "";
  for await (const chunk of file.readable.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
  if (buffered.length > 0) yield buffered;
}

function fail(seq: number | string, reason: string, detail: string): never {
  console.log(`broken at seq ${seq}: ${reason} (${detail})`);
  Deno.exit(1);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HASH = /^[0-9a-f]{64}$/;
const TIME = /^\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z( BC)?$/;
const uuid = (value: unknown) => typeof value === "string" && UUID.test(value);
const text = (value: unknown) => typeof value === "string";
const orNull = (check: (value: unknown) => boolean) => (value: unknown) => value === null || check(value);

/** Each field of a line and what it must be; anything else is an edited line. */
const FIELDS: Record<string, (value: unknown) => boolean> = {
  seq: (value) => Number.isSafeInteger(value) && (value as number) >= 1,
  log_id: uuid,
  tenant_id: uuid,
  user_id: orNull(uuid),
  api_key_id: orNull(uuid),
  operator_id: orNull(uuid),
  action: text,
  resource_type: text,
  resource_id: uuid,
  details: (value) => typeof value === "object" && value !== null && !Array.isArray(value),
  details_text: orNull(text),
  details_salt: orNull((value) => typeof value === "string" && /^[0-9a-f]{32}$/.test(value)),
  details_sha256: (value) => typeof value === "string" && HASH.test(value),
  request_id: orNull(text),
  client_request_id: orNull(text),
  timestamp: (value) => typeof value === "string" && TIME.test(value),
  recorded_at: (value) => typeof value === "string" && TIME.test(value),
  prev_hash: (value) => typeof value === "string" && HASH.test(value),
  chain_hash: (value) => typeof value === "string" && HASH.test(value),
};

/** The keys of a JSON object's top level as written, duplicates included. */
function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const char = line[i];
    if (char === '"') {
      let end = i + 1;
      while (end < line.length && line[end] !== '"') end += line[end] === "\\" ? 2 : 1;
      let next = end + 1;
      while (next < line.length && " \t\r\n".includes(line[next])) next++;
      if (depth === 1 && line[next] === ":") keys.push(JSON.parse(line.slice(i, end + 1)));
      i = end;
    } else if (char === "{" || char === "[") depth++;
    else if (char === "}" || char === "]") depth--;
  }
  return keys;
}

/**
 * JSON parsed with every number kept as its written text, so that two
 * numbers compare equal only as written, not as the doubles they round to.
 */
function parseExact(text: string): unknown {
  return JSON.parse(
    text,
    (_key, value, context?: { source?: string }) => typeof value === "number" ? `#${context?.source}` : value,
  );
}

/** What the export shows of redacted details: which columns changed, and by which role. */
function redactedShape(details: Record<string, unknown>): boolean {
  return Object.keys(details).every((key) => key === "changed" || key === "db_role") &&
    Array.isArray(details.changed) && details.changed.every((column) => typeof column === "string") &&
    typeof details.db_role === "string";
}

/** The same JSON value, whatever the order of object keys. */
function sameJson(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
      a.every((x, i) => sameJson(x, b[i]));
  }
  if (typeof a !== "object" || a === null || typeof b !== "object" || b === null) return a === b;
  const left = Object.keys(a).sort();
  const right = Object.keys(b).sort();
  return left.length === right.length &&
    left.every((key, i) =>
      key === right[i] && sameJson((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])
    );
}

function parseArgs(args: string[]): { path: string; anchor: { seq: number; hash: string } | null } {
  const [path, ...rest] = args;
  if (rest.length === 0) return { path, anchor: null };
  const match = rest.length === 2 && rest[0] === "--anchor"
    ? /^([1-9][0-9]*):([0-9a-f]{64})$/.exec(rest[1])
    : null;
  if (!match) {
    console.error("usage: scripts/verify-audit FILE [--anchor SEQ:HASH] (HASH: 64 lower-case hex digits)");
    Deno.exit(2);
  }
  return { path, anchor: { seq: Number(match[1]), hash: match[2] } };
}

async function main(): Promise<void> {
  const { path, anchor } = parseArgs(Deno.args);
  let previous = ZERO_HASH;
  let expected: number | null = null;
  let tenant: string | null = null;
  let first = 1;
  let redacted = 0;
  let trailer: Record<string, unknown> | null = null;
  let lineNumber = 0;
  for await (const line of linesOf(path)) {
    lineNumber++;
    if (line.trim() === "") continue;
    if (trailer) fail(expected ?? "?", "row inserted", `line ${lineNumber} follows the end of the export`);
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(line);
    } catch {
      fail(expected ?? "?", "row changed", `line ${lineNumber} is not JSON`);
    }
    if ("end" in value) {
      trailer = value;
      continue;
    }
    const entry = value as unknown as Entry;
    const keys = topLevelKeys(line);
    const wrong = Object.keys(FIELDS).filter((field) => !FIELDS[field](value[field]));
    if (
      wrong.length > 0 || keys.length !== Object.keys(FIELDS).length || new Set(keys).size !== keys.length
    ) {
      const what = wrong.length > 0 ? wrong.join(", ") : "its fields";
      fail(
        Number.isSafeInteger(entry.seq) ? entry.seq : "?",
        "row changed",
        `line ${lineNumber} is not as exported: ${what}`,
      );
    }
    if (expected === null) {
      // An export from a later seq trusts the hash of the row before it.
      expected = first = entry.seq;
      tenant = entry.tenant_id;
      if (entry.seq > 1) previous = fromHex(entry.prev_hash);
    }
    if (entry.seq > expected) fail(expected, "row missing", `the next line has seq ${entry.seq}`);
    if (entry.seq < expected) fail(entry.seq, "row inserted", `seq ${entry.seq} again after ${expected - 1}`);
    if (entry.tenant_id !== tenant) fail(entry.seq, "row inserted", `a row of tenant ${entry.tenant_id}`);
    if (entry.prev_hash !== hex(previous)) {
      fail(entry.seq, "row changed", "its prev_hash is not the hash before it");
    }
    const details = entry.details as Record<string, unknown>;
    if (entry.details_text === null || entry.details_salt === null) {
      // Redacted: the chain covers the details through details_sha256 only,
      // and the line may show nothing of their values.
      if (entry.details_text !== entry.details_salt) {
        fail(entry.seq, "row changed", "half its details are redacted");
      }
      if (!redactedShape(details)) {
        fail(entry.seq, "row changed", "a redacted entry shows more than its columns");
      }
      redacted++;
    } else {
      const salted = concat(fromHex(entry.details_salt), encoder.encode(entry.details_text));
      if (hex(await sha256(salted)) !== entry.details_sha256) {
        fail(entry.seq, "row changed", "its details do not hash to details_sha256");
      }
      const shown = (parseExact(line) as Record<string, unknown>).details;
      if (!sameJson(shown, parsedOrUndefined(entry.details_text))) {
        fail(entry.seq, "row changed", "the details it shows are not the details hashed");
      }
    }
    const hash = await sha256(concat(previous, recordOf(entry)));
    if (hex(hash) !== entry.chain_hash) fail(entry.seq, "row changed", "its chain_hash does not follow");
    if (anchor && entry.seq === anchor.seq && entry.chain_hash !== anchor.hash) {
      fail(entry.seq, "anchor mismatch", `the anchor says ${anchor.hash}`);
    }
    previous = hash;
    expected = entry.seq + 1;
  }
  const last = expected === null ? 0 : expected - 1;
  if (anchor && anchor.seq > last) fail(anchor.seq, "row missing", `the export ends at seq ${last}`);
  if (trailer && last > 0 && trailer.next_from_seq !== last + 1) {
    fail(
      last + 1,
      "row missing",
      `the export ends at seq ${last} but says it goes on at ${trailer.next_from_seq}`,
    );
  }
  if (!trailer || trailer.end !== "complete") {
    const why = trailer ? `it was interrupted: ${trailer.detail}` : "it has no end line";
    console.log(`incomplete: verified through seq ${last}, but ${why}; resume with from_seq=${last + 1}`);
    Deno.exit(1);
  }
  const note = redacted > 0
    ? ` (${redacted} rows redacted: their details are covered by details_sha256 only)`
    : "";
  const range = last === 0 ? "an empty chain" : `seq ${first}-${last}`;
  console.log(`verified ${range}; head ${last}:${hex(previous)}${note}`);
}

if (import.meta.main) await main();
