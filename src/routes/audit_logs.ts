/**
 * The caller's tenant's audit trail, read-only.
 */
import type { z } from "zod";
import { dbRoute, type Route } from "../http/router.ts";
import { AuditLog, AuditLogListQuery, pageOf } from "../schemas.ts";
import { page } from "./reply.ts";

/** Route of /v1/audit-logs: the tenant's audit trail, newest first. */
export const auditLogRoutes: Route[] = [
  dbRoute<Record<string, never>, z.infer<typeof AuditLogListQuery>>({
    method: "GET",
    path: "/v1/audit-logs",
    tag: "Audit",
    summary: "List audit entries, newest first",
    access: "tenant",
    permission: "audit:read",
    query: AuditLogListQuery,
    response: pageOf(AuditLog),
    run: ({ tx, query }) => {
      return tx`
        select * from api.list_audit_logs(
          ${query.limit}, ${query.cursor?.after ?? null}, ${query.cursor?.id ?? null}, ${
        query.user_id ?? null
      }, ${query.action ?? null},
          ${query.resource_type ?? null}, ${query.since ?? null}, ${query.until ?? null})`;
    },
    reply: (rows, { query }) => page(rows, query.limit, { after: "timestamp", id: "log_id" }),
  }),
];
