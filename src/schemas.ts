/**
 * zod schemas for every request and response. They validate requests and, via
 * zod's JSON Schema output, become the OpenAPI document, so the two cannot
 * drift apart. Bodies are strict: an unknown field (a tenant_id, say) is a 400.
 */
import { z } from "zod";
import { parseCursor } from "./http/cursor.ts";
import { isRawNumber } from "./http/json.ts";
import { PERMISSIONS } from "./http/router.ts";

// Any 8-4-4-4-12 hex id, as PostgreSQL's uuid type accepts (not only version 4).
const uuid = z.guid();
// PostgreSQL has no year 0 (ISO 0000 is 1 BC written another way) and refuses it.
const timestamp = z.iso.datetime({ offset: true }).refine(
  (value) => !value.startsWith("0000-"),
  "Must be a date in year 0001 or later",
);

/** Deepest nesting of arrays and objects PostgreSQL's jsonb functions are given. */
const MAX_JSON_DEPTH = 32;

// Text PostgreSQL can store exactly: no NUL character, no lone surrogate.
function storableText(value: string): boolean {
  return !value.includes("\u0000") && value.isWellFormed();
}

/**
 * A string of `min` to `max` characters that PostgreSQL stores exactly.
 *
 * @param min fewest characters
 * @param max most characters
 * @returns the zod schema
 */
export function text(min: number, max: number) {
  return z.string().min(min).max(max).refine(
    storableText,
    "Must not contain NUL characters or unpaired surrogates",
  );
}

// What jsonb would refuse or choke on, found with a stack rather than
// recursion, since the value may nest deeper than the JS stack allows.
function jsonbProblem(value: object): string | null {
  const pending: [unknown, number][] = [[value, 1]];
  while (pending.length > 0) {
    const [item, depth] = pending.pop()!;
    if (typeof item === "string" && !storableText(item)) {
      return "Must not contain NUL characters or unpaired surrogates";
    }
    // A number a double cannot hold is kept as its text (see http/json.ts).
    if (item === null || typeof item !== "object" || isRawNumber(item)) continue;
    if (depth > MAX_JSON_DEPTH) return `Must nest at most ${MAX_JSON_DEPTH} levels deep`;
    for (const [key, child] of Object.entries(item)) pending.push([key, depth], [child, depth + 1]);
  }
  return null;
}

// The object is passed on as parsed: z.record would copy it and silently drop
// a "__proto__" key. Nesting is bounded because jsonb operators recurse and a
// deep value would fail in PostgreSQL (stack depth limit exceeded) as a 500.
const jsonObject = z.custom<Record<string, unknown>>().superRefine((value, ctx) => {
  const problem = typeof value !== "object" || value === null || Array.isArray(value)
    ? "Must be a JSON object"
    : jsonbProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
}).meta({ type: "object", additionalProperties: {} });
const tier = z.enum(["free", "pro", "enterprise"]);
const role = z.enum(["tenant_admin", "member", "viewer"]);
const permission = z.enum(PERMISSIONS);
const hostname = z.string().max(253).regex(
  /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/,
  "Must be a lower-case hostname such as acme.example",
);

function listQuery(defaultLimit: number) {
  return {
    limit: z.coerce.number().int().min(1).max(100).default(defaultLimit)
      .meta({ description: "Page size, 1-100" }),
    cursor: z.string().max(512).transform((value, ctx) => {
      const cursor = parseCursor(value);
      if (!cursor) ctx.addIssue({ code: "custom", message: "Not a cursor issued by this API" });
      return cursor ?? z.NEVER;
    }).optional()
      .meta({ description: "next_cursor of the previous page" }),
  };
}

function nonEmpty<T extends z.ZodObject>(schema: T) {
  return schema.refine((value) => Object.keys(value).length > 0, "Send at least one field to change");
}

// --- path parameters -------------------------------------------------------

export const UserPath = z.strictObject({ user_id: uuid });
export const DocumentPath = z.strictObject({ document_id: uuid });
export const KeyPath = z.strictObject({ key_id: uuid });
export const TenantPath = z.strictObject({ tenant_id: uuid });
export const TenantKeyPath = z.strictObject({ tenant_id: uuid, key_id: uuid });
export const OperatorPath = z.strictObject({ operator_id: uuid });
export const PlanPath = z.strictObject({ plan_id: uuid });
export const ApprovalPath = z.strictObject({ approval_id: uuid });
const limit = (max: number) => z.number().int().min(0).max(max);
export const UpdatePlan = nonEmpty(z.strictObject({
  max_documents: limit(2e9).optional(),
  max_users: limit(2e9).optional(),
  max_api_keys: limit(2e9).optional(),
  max_metadata_bytes: z.number().int().min(2).max(1048576).optional(),
  requests_per_minute: z.number().int().min(1).max(10000000).optional(),
}));

// --- query strings -----------------------------------------------------------

export const PageQuery = z.strictObject(listQuery(20));
export const DocumentListQuery = z.strictObject({
  ...listQuery(20),
  user_id: uuid.optional(),
  created_after: timestamp.optional().meta({ description: "Inclusive lower bound on created_at" }),
  created_before: timestamp.optional().meta({ description: "Exclusive upper bound on created_at" }),
});
export const AuditLogListQuery = z.strictObject({
  ...listQuery(50),
  user_id: uuid.optional(),
  action: z.enum(["insert", "update", "delete"]).optional(),
  resource_type: z.string().regex(/^[a-z_]{1,100}$/).optional(),
  since: timestamp.optional().meta({ description: "Inclusive lower bound on timestamp" }),
  until: timestamp.optional().meta({ description: "Exclusive upper bound on timestamp" }),
});
const seq = z.string().regex(
  /^[1-9][0-9]{0,14}$/,
  "A sequence number: a positive integer of at most 15 digits",
)
  .meta({ description: "Sequence number in the tenant's audit chain, from 1" });
export const AuditExportQuery = z.strictObject({
  from_seq: seq.default("1").meta({
    description: "First sequence number to export (to resume: next_from_seq)",
  }),
});
export const AuditVerifyQuery = z.strictObject({
  from_seq: seq.default("1").meta({
    description: "First sequence number to verify; the row before it is trusted (default 1: the whole chain)",
  }),
  anchor: z.string().regex(/^[1-9][0-9]{0,14}:[0-9a-f]{64}$/, "An anchor is SEQ:HASH, the hash 64 hex digits")
    .optional().meta({
      description: "A head stored earlier, SEQ:HASH: verification fails if the chain no longer has it",
    }),
});
export const AdminAuditLogListQuery = z.strictObject({ ...listQuery(50), tenant_id: uuid.optional() });

// --- request bodies ----------------------------------------------------------

export const CreateUser = z.strictObject({ email: z.email().max(320), role: role.optional() });
export const UpdateUser = nonEmpty(
  z.strictObject({ email: z.email().max(320).optional(), role: role.optional() }),
);

export const CreateDocument = z.strictObject({
  user_id: uuid.optional().meta({
    description:
      "Author: a user of the same tenant. A key bound to a user authors as that user (omit it or send " +
      "that user's id); a key bound to no user must name the author",
  }),
  title: text(1, 500),
  content_hash: z.string().regex(/^[0-9a-f]{64}$/, "Must be a SHA-256 as 64 lower-case hex digits"),
  metadata: jsonObject.optional(),
});
export const UpdateDocument = nonEmpty(z.strictObject({
  title: text(1, 500).optional(),
  content_hash: z.string().regex(/^[0-9a-f]{64}$/, "Must be a SHA-256 as 64 lower-case hex digits")
    .optional(),
  metadata: jsonObject.optional(),
}));

export const CreateApiKey = z.strictObject({
  name: text(1, 200),
  permissions: z.array(permission).min(1).max(PERMISSIONS.length),
  user_id: uuid.optional().meta({ description: "Bind the key to this user of the tenant" }),
  expires_at: timestamp.optional(),
});

// Settings the database acts on are checked here for a clear 400; the
// database checks them again (api.update_tenant_config).
const wholeDays = (value: unknown) =>
  Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 36500;
const KNOWN_SETTINGS: Record<string, { check: (value: unknown) => boolean; expected: string }> = {
  api_key_max_lifetime_days: {
    check: wholeDays,
    expected: "a whole number of days from 1 to 36,500 (null removes the cap)",
  },
  audit_retention_days: {
    check: (value) => wholeDays(value) && (value as number) >= 365,
    expected: "a whole number of days from 365 to 36,500 (null keeps the trail for ever)",
  },
  require_two_person_approval: {
    check: (value) => typeof value === "boolean",
    expected: "true or false",
  },
  currency: {
    check: (value) => typeof value === "string" && /^[A-Z]{3}$/.test(value),
    expected: "three capital letters (ISO 4217), e.g. EUR",
  },
  data_residency: {
    check: (value) => typeof value === "string" && /^[a-z]{2}(-[a-z0-9]{1,8})?$/.test(value),
    expected: "a lower-case region code such as eu or us-east",
  },
};

export const PatchConfig = z.strictObject({
  settings: jsonObject.superRefine((settings, ctx) => {
    // Not an object: jsonObject has said so already.
    if (typeof settings !== "object" || settings === null || Array.isArray(settings)) return;
    for (const [name, { check, expected }] of Object.entries(KNOWN_SETTINGS)) {
      if (!(name in settings) || settings[name] === null || check(settings[name])) continue;
      ctx.addIssue({ code: "custom", path: [name], message: `${name} is ${expected}` });
    }
  }).meta({
    description: "Merged into the settings; a key set to null is removed. api_key_max_lifetime_days (days, " +
      "1-36500) caps the expiry of every key issued from then on; audit_retention_days (days, 365-36500) is how " +
      "long the audit trail is kept; require_two_person_approval (boolean), currency (ISO 4217) and " +
      "data_residency (region code) are checked too; other keys are kept as sent",
  }),
});

export const CreateTenant = z.strictObject({
  name: text(1, 200),
  domain: hostname.optional(),
  subscription_tier: tier.optional(),
  template_name: text(1, 200).optional().meta({ description: "Seed the configuration from this template" }),
});
export const CreateOperator = z.strictObject({
  name: z.string().regex(
    /^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,99}$/,
    "Must be 1-100 of A-Z a-z 0-9 space . _ @ -, starting with a letter or digit",
  )
    .meta({ description: "Who the operator is, e.g. an e-mail address; unique among active operators" }),
});
export const UpdateTenant = nonEmpty(z.strictObject({
  name: text(1, 200).optional(),
  domain: hostname.nullable().optional().meta({ description: "null removes the domain" }),
  subscription_tier: tier.optional(),
}));

// --- responses -----------------------------------------------------------------

export const Tenant = z.object({
  tenant_id: uuid,
  name: z.string(),
  domain: z.string().nullable(),
  subscription_tier: tier,
  created_at: timestamp,
  updated_at: timestamp,
});
export const AdminTenant = Tenant.extend({ deactivated_at: timestamp.nullable() });
const count = z.number().int().min(0);
export const TenantWithPlan = Tenant.extend({
  plan: z.object({
    tier,
    limits: z.object({
      documents: count,
      users: count,
      api_keys: count.meta({ description: "Keys that are not revoked (expired ones count until revoked)" }),
      metadata_bytes: count.meta({
        description: "Largest metadata of one document, in bytes of its JSON text",
      }),
      requests_per_minute: count,
    }),
    usage: z.object({ documents: count, users: count, api_keys: count }),
  }).meta({ description: "The tier's plan, its limits and what the tenant uses of them" }),
});
export const Plan = z.object({
  plan_id: uuid,
  tier,
  max_documents: count,
  max_users: count,
  max_api_keys: count,
  max_metadata_bytes: count,
  requests_per_minute: count,
  created_at: timestamp,
  updated_at: timestamp,
});
export const User = z.object({
  user_id: uuid,
  tenant_id: uuid,
  email: z.string(),
  role,
  created_at: timestamp,
  updated_at: timestamp,
});
export const Document = z.object({
  document_id: uuid,
  tenant_id: uuid,
  user_id: uuid,
  title: z.string(),
  content_hash: z.string(),
  metadata: jsonObject,
  created_at: timestamp,
  updated_at: timestamp,
});
export const ApiKey = z.object({
  key_id: uuid,
  tenant_id: uuid,
  key_prefix: z.string(),
  name: z.string(),
  permissions: z.array(permission),
  user_id: uuid.nullable(),
  expires_at: timestamp.nullable(),
  revoked_at: timestamp.nullable(),
  last_used_at: timestamp.nullable(),
  created_at: timestamp,
  updated_at: timestamp,
  issued_by_key_id: uuid.nullable().meta({
    description:
      "The key that issued this one; null when a platform operator did. Revoking a key revokes all it issued",
  }),
});
export const NewApiKey = ApiKey.extend({
  key: z.string().meta({ description: "The key itself; shown only in this response" }),
});
export const Approval = z.object({
  approval_id: uuid,
  tenant_id: uuid,
  operation: z.enum(["create_api_key", "update_tenant_config", "delete_user", "update_user_role"]),
  payload: jsonObject.meta({ description: "What the change will do: the request's arguments" }),
  status: z.enum(["pending", "approved", "rejected", "expired"]),
  requested_by_key_id: uuid,
  requested_by_user_id: uuid.nullable(),
  decided_by_key_id: uuid.nullable(),
  decided_by_user_id: uuid.nullable(),
  created_at: timestamp,
  expires_at: timestamp,
  decided_at: timestamp.nullable(),
}).meta({
  description: "A change held back for a second person's approval (require_two_person_approval); " +
    "answered 202 by the route that asked for it",
});
export const ApprovalDecision = Approval.extend({
  result: jsonObject.nullable().meta({
    description:
      "What the approved change returned (the key without its secret, the configuration or the user); " +
      "null when rejected",
  }),
});
export const AuditLog = z.object({
  log_id: uuid,
  tenant_id: uuid,
  user_id: uuid.nullable(),
  api_key_id: uuid.nullable(),
  action: z.string(),
  resource_type: z.string(),
  resource_id: uuid,
  details: jsonObject,
  request_id: z.string().nullable().meta({ description: "Id the service assigned to the request" }),
  timestamp,
  client_request_id: z.string().nullable().meta({ description: "x-request-id the client sent, if any" }),
  operator_id: uuid.nullable().meta({
    description: "Platform operator who made the change; null for API keys",
  }),
});
export const AuditVerification = z.object({
  verified: z.boolean(),
  from_seq: z.number().int(),
  to_seq: z.number().int().nullable().meta({ description: "Last sequence number verified" }),
  rows_checked: z.number().int(),
  complete: z.boolean().meta({
    description: "False when the chain goes on past to_seq: verify again from to_seq + 1",
  }),
  head_seq: z.number().int().nullable().meta({ description: "Sequence number of the head, when verified" }),
  head_hash: z.string().nullable().meta({
    description: "chain_hash of the head, hex: an anchor to store elsewhere",
  }),
  broken_at_seq: z.number().int().nullable().meta({
    description: "First sequence number where the chain breaks",
  }),
  reason: z.enum(["row changed", "row missing", "row inserted", "order changed", "anchor mismatch"])
    .nullable(),
});
export const AuditChainEntry = z.object({
  seq: z.number().int(),
  log_id: uuid,
  tenant_id: uuid,
  user_id: uuid.nullable(),
  api_key_id: uuid.nullable(),
  operator_id: uuid.nullable(),
  action: z.string(),
  resource_type: z.string(),
  resource_id: uuid,
  details: jsonObject.meta({
    description: "As in the audit list: old and new values only where the key may read them",
  }),
  details_text: z.string().nullable().meta({
    description: "The details exactly as PostgreSQL prints them and as hashed (null where redacted)",
  }),
  details_salt: z.string().nullable().meta({
    description: "Hex bytes hashed before details_text (null where redacted)",
  }),
  details_sha256: z.string().meta({ description: "SHA-256 of details_salt and details_text, hex" }),
  request_id: z.string().nullable(),
  client_request_id: z.string().nullable(),
  timestamp: z.string().meta({ description: "UTC, microseconds, as the chain encodes it" }),
  recorded_at: z.string().meta({ description: "When the row was written, as the chain encodes it" }),
  prev_hash: z.string(),
  chain_hash: z.string(),
}).meta({
  description:
    "One line of the export. The last line is {end: complete | interrupted, next_from_seq, ...}; " +
    "the chain's encoding is documented in the README (Audit chain)",
});
export const Operator = z.object({
  operator_id: uuid,
  name: z.string(),
  token_prefix: z.string(),
  created_by: uuid.nullable(),
  created_at: timestamp,
  revoked_at: timestamp.nullable(),
  revoked_by: uuid.nullable(),
});
export const NewOperator = Operator.extend({
  token: z.string().meta({ description: "The operator's credential; shown only in this response" }),
});
export const Template = z.object({
  template_id: uuid,
  name: z.string(),
  industry: z.string(),
  description: z.string(),
  default_config: jsonObject,
  created_at: timestamp,
  updated_at: timestamp,
});
export const TenantConfig = z.object({
  tenant_id: uuid,
  template_id: uuid.nullable(),
  settings: jsonObject,
  created_at: timestamp,
  updated_at: timestamp,
});

/**
 * The list envelope every list route answers with.
 *
 * @param item schema of one item
 * @returns the page schema
 */
export function pageOf(item: z.ZodType) {
  return z.object({ items: z.array(item), next_cursor: z.string().nullable() });
}

export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  request_id: z.string(),
  errors: z.array(z.object({
    location: z.enum(["body", "query", "path", "header"]),
    field: z.string(),
    message: z.string(),
  })).optional(),
});
