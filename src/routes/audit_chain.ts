/**
 * The audit chain: verifying a tenant's chain and exporting it in chain
 * order, for the tenant (audit:read) and for operators. The encoding is
 * documented in the README and in migration 20261201000900.
 */
import type postgres from "postgres";
import type { z } from "zod";
import { dbRoute, type NdjsonPages, type Route } from "../http/router.ts";
import {
  AuditChainEntry,
  AuditExportQuery,
  AuditVerification,
  AuditVerifyQuery,
  TenantPath,
} from "../schemas.ts";

type ExportQuery = z.infer<typeof AuditExportQuery>;
type VerifyQuery = z.infer<typeof AuditVerifyQuery>;

/** Rows a page of the export holds at most (the SQL functions' own maximum; 4 MB of details too). */
const EXPORT_PAGE = 1000;

/**
 * Rows one verification reads: enough for a large trail, few enough for the
 * statement timeout; a longer chain answers complete: false and is verified
 * on from to_seq + 1.
 */
const VERIFY_ROWS = 20_000;

// bigint arrives as text; no tenant's chain comes near 2^53 rows.
const asNumber = (value: unknown) => value === null ? null : Number(value);

function entriesOf(rows: postgres.Row[]): unknown[] {
  return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
}

// A page holds at most EXPORT_PAGE rows, fewer when their details are large:
// the stream ends at the first empty page.
const chainPages: NdjsonPages<ExportQuery> = {
  next(rows, query) {
    const last = rows.at(-1);
    return last ? { query: { from_seq: String(BigInt(last.seq) + 1n) }, more: true } : { query, more: false };
  },
  resume: (query) => ({ next_from_seq: Number(query.from_seq) }),
};

function verificationOf(rows: postgres.Row[]): z.infer<typeof AuditVerification> {
  const [row] = rows;
  return {
    verified: row.verified,
    from_seq: Number(row.from_seq),
    to_seq: asNumber(row.to_seq),
    rows_checked: Number(row.rows_checked),
    complete: row.complete,
    head_seq: asNumber(row.head_seq),
    head_hash: row.head_hash,
    broken_at_seq: asNumber(row.broken_at_seq),
    reason: row.reason,
  };
}

function anchorOf(query: VerifyQuery): [string | null, string | null] {
  if (!query.anchor) return [null, null];
  const [seq, hash] = query.anchor.split(":");
  return [seq, hash];
}

const VERIFY_SUMMARY =
  "Verify the audit chain: its head, or the first sequence number where it breaks and why";
const EXPORT_SUMMARY = "Export the audit chain as NDJSON, in sequence order, resumable with from_seq";

/** Routes of /v1/audit-logs/verify and /export, and their platform counterparts. */
export const auditChainRoutes: Route[] = [
  dbRoute<Record<string, never>, VerifyQuery>({
    method: "GET",
    path: "/v1/audit-logs/verify",
    tag: "Audit",
    summary: VERIFY_SUMMARY,
    access: "tenant",
    permission: "audit:read",
    query: AuditVerifyQuery,
    response: AuditVerification,
    run: ({ tx, query }) => {
      const [anchorSeq, anchorHash] = anchorOf(query);
      return tx`select * from api.verify_audit_chain(${query.from_seq}, ${VERIFY_ROWS}, ${anchorSeq}, ${anchorHash})`;
    },
    reply: verificationOf,
  }),
  dbRoute<Record<string, never>, ExportQuery>({
    method: "GET",
    path: "/v1/audit-logs/export",
    tag: "Audit",
    summary: EXPORT_SUMMARY,
    access: "tenant",
    permission: "audit:read",
    query: AuditExportQuery,
    response: AuditChainEntry,
    ndjson: chainPages,
    run: ({ tx, query }) => tx`select * from api.export_audit_logs(${query.from_seq}, ${EXPORT_PAGE})`,
    reply: entriesOf,
  }),
  dbRoute<z.infer<typeof TenantPath>, VerifyQuery>({
    method: "GET",
    path: "/v1/admin/tenants/:tenant_id/audit-logs/verify",
    tag: "Platform",
    summary: `${VERIFY_SUMMARY} (any tenant)`,
    access: "admin",
    params: TenantPath,
    query: AuditVerifyQuery,
    response: AuditVerification,
    run: ({ tx, params, query }) => {
      const [anchorSeq, anchorHash] = anchorOf(query);
      return tx`select * from platform.verify_audit_chain(${params.tenant_id}, ${query.from_seq}, ${VERIFY_ROWS},
        ${anchorSeq}, ${anchorHash})`;
    },
    reply: verificationOf,
  }),
  dbRoute<z.infer<typeof TenantPath>, ExportQuery>({
    method: "GET",
    path: "/v1/admin/tenants/:tenant_id/audit-logs/export",
    tag: "Platform",
    summary: `${EXPORT_SUMMARY} (any tenant, unredacted)`,
    access: "admin",
    params: TenantPath,
    query: AuditExportQuery,
    response: AuditChainEntry,
    ndjson: chainPages,
    run: ({ tx, params, query }) =>
      tx`select * from platform.export_audit_logs(${params.tenant_id}, ${query.from_seq}, ${EXPORT_PAGE})`,
    reply: entriesOf,
  }),
];
