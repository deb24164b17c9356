/**
 * The caller's own tenant, its configuration, and the template catalog.
 */
import { dbRoute, type Route } from "../http/router.ts";
import { pageOf, PatchConfig, Template, TenantConfig, TenantWithPlan } from "../schemas.ts";
import type { z } from "zod";
import { pendingOr, unlessHeldForApproval } from "./approvals.ts";
import { oneOr404 } from "./reply.ts";

/** Routes of the caller's tenant, its configuration and the template catalog. */
export const tenantRoutes: Route[] = [
  dbRoute({
    method: "GET",
    path: "/v1/tenant",
    tag: "Tenant",
    summary: "The tenant the API key belongs to, with its plan's limits and its usage of them",
    access: "tenant",
    response: TenantWithPlan,
    run: ({ tx }) => tx`select t.*, api.current_plan() as plan from api.current_tenant() t`,
    reply: (rows) => oneOr404(rows, "tenant"),
  }),
  dbRoute({
    method: "GET",
    path: "/v1/config",
    tag: "Tenant",
    summary: "The tenant's configuration",
    access: "tenant",
    permission: "config:read",
    response: TenantConfig,
    run: ({ tx }) => tx`select * from api.current_tenant_config()`,
    reply: (rows) => oneOr404(rows, "configuration"),
  }),
  dbRoute<Record<string, never>, Record<string, never>, z.infer<typeof PatchConfig>>({
    method: "PATCH",
    path: "/v1/config",
    tag: "Tenant",
    summary:
      "Merge settings into the tenant's configuration (a key set to null is removed; 202 with a pending " +
      "approval request when the tenant requires two people)",
    access: "tenant",
    permission: "config:write",
    body: PatchConfig,
    response: TenantConfig,
    run: ({ tx, body }) =>
      unlessHeldForApproval(
        tx,
        "update_tenant_config",
        body,
        () => tx`select * from api.update_tenant_config(${tx.json(body.settings as never)})`,
      ),
    reply: (rows) => pendingOr(rows, (made) => oneOr404(made, "configuration")),
  }),
  dbRoute({
    method: "GET",
    path: "/v1/templates",
    tag: "Tenant",
    summary: "The template catalog",
    access: "tenant",
    response: pageOf(Template),
    run: ({ tx }) => tx`select * from api.templates order by name`,
    reply: (rows) => ({ items: rows, next_cursor: null }),
  }),
];
