/**
 * Two-person approval (migration 20261201001500): the changes a tenant with
 * require_two_person_approval holds back are answered 202 with a pending
 * request, which another user's key approves (performing the change, once)
 * or rejects. The database decides what needs approval and who may decide;
 * these routes only ask it.
 */
import type postgres from "postgres";
import type { z } from "zod";
import type { PendingQuery, Sql } from "../db.ts";
import { Accepted, dbRoute, type Route } from "../http/router.ts";
import { Approval, ApprovalDecision, ApprovalPath, pageOf } from "../schemas.ts";
import { oneOr404 } from "./reply.ts";

const PENDING = Symbol("a pending approval request");

/**
 * Runs a change, unless the tenant holds it back for approval: then records
 * the pending request instead. Reply with `pendingOr`.
 *
 * @param tx the request's transaction
 * @param operation create_api_key, update_tenant_config, delete_user or update_user_role
 * @param payload the change's arguments, as the approval will perform them
 * @param change the change itself
 * @returns the change's rows, or the pending request's
 */
export async function unlessHeldForApproval(
  tx: Sql,
  operation: string,
  payload: Record<string, unknown>,
  change: () => PendingQuery,
): Promise<postgres.Row[]> {
  const pending = await tx`select * from api.request_approval(${operation}, ${tx.json(payload as never)})`;
  if (pending.length === 0) return await change();
  // A key asked for comes with its secret, shown to the requester only: it
  // works once the request is approved.
  const rows = pending.map(({ approval, key }) => key ? { ...approval, key } : approval);
  return Object.assign(rows, { [PENDING]: true }) as unknown as postgres.Row[];
}

/**
 * The reply of a change that may have been held back: 202 with the pending
 * request, or what `reply` makes of the change's rows.
 *
 * @param rows what unlessHeldForApproval returned
 * @param reply the route's reply when the change was made
 * @returns the body, or an Accepted one
 */
export function pendingOr(rows: postgres.Row[], reply: (rows: postgres.Row[]) => unknown): unknown {
  return (rows as { [PENDING]?: boolean })[PENDING] ? new Accepted(rows[0]) : reply(rows);
}

// The decision and what the change returned (never a key's secret: the
// requester was given it when asking).
function decisionOf(rows: postgres.Row[]) {
  const { approval, result } = oneOr404(rows, "approval request");
  return { ...approval, result };
}

type Path = z.infer<typeof ApprovalPath>;

/** Routes of the approval requests. */
export const approvalRoutes: Route[] = [
  dbRoute({
    method: "GET",
    path: "/v1/approvals",
    tag: "Approvals",
    summary: "The tenant's approval requests, newest first (at most 100)",
    access: "tenant",
    response: pageOf(Approval),
    run: ({ tx }) => tx`select * from api.list_approvals()`,
    reply: (rows) => ({ items: rows, next_cursor: null }),
  }),
  dbRoute<Path>({
    method: "GET",
    path: "/v1/approvals/:approval_id",
    tag: "Approvals",
    summary: "One approval request",
    access: "tenant",
    params: ApprovalPath,
    response: Approval,
    run: ({ tx, params }) => tx`select * from api.get_approval(${params.approval_id})`,
    reply: (rows) => oneOr404(rows, "approval request"),
  }),
  dbRoute<Path>({
    method: "POST",
    path: "/v1/approvals/:approval_id/approve",
    tag: "Approvals",
    summary:
      "Approve a pending request, by a key of another user that may make the change: it is made now, once",
    access: "tenant",
    params: ApprovalPath,
    response: ApprovalDecision,
    run: ({ tx, params }) => tx`select * from api.decide_approval(${params.approval_id}, true)`,
    reply: decisionOf,
  }),
  dbRoute<Path>({
    method: "POST",
    path: "/v1/approvals/:approval_id/reject",
    tag: "Approvals",
    summary: "Reject a pending request, by a key of another user that may make the change",
    access: "tenant",
    params: ApprovalPath,
    response: ApprovalDecision,
    run: ({ tx, params }) => tx`select * from api.decide_approval(${params.approval_id}, false)`,
    reply: decisionOf,
  }),
];
