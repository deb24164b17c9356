/**
 * Platform operations, run as uber_admin by named operators (each with a
 * credential of their own; PLATFORM_ADMIN_TOKEN bootstraps the first):
 * provisioning and deactivating tenants, issuing and revoking their keys,
 * reading the audit trail across tenants, managing the operators, and the
 * plans (each tier's limits).
 */
import type { z } from "zod";
import { dbRoute, type Route } from "../http/router.ts";
import {
  AdminAuditLogListQuery,
  AdminTenant,
  AuditLog,
  CreateApiKey,
  CreateOperator,
  CreateTenant,
  NewApiKey,
  NewOperator,
  Operator,
  OperatorPath,
  pageOf,
  PageQuery,
  Plan,
  PlanPath,
  TenantKeyPath,
  TenantPath,
  UpdatePlan,
  UpdateTenant,
} from "../schemas.ts";
import { oneOr404, page } from "./reply.ts";

type Path = z.infer<typeof TenantPath>;
type None = Record<string, never>;

/** Platform routes (/v1/admin/*), run as uber_admin for a named operator. */
export const adminRoutes: Route[] = [
  dbRoute<None, z.infer<typeof PageQuery>>({
    method: "GET",
    path: "/v1/admin/tenants",
    tag: "Platform",
    summary: "List tenants, newest first",
    access: "admin",
    query: PageQuery,
    response: pageOf(AdminTenant),
    run: ({ tx, query }) => {
      return tx`select * from platform.list_tenants(${query.limit}, ${query.cursor?.after ?? null}, ${
        query.cursor?.id ?? null
      })`;
    },
    reply: (rows, { query }) => page(rows, query.limit, { after: "created_at", id: "tenant_id" }),
  }),
  dbRoute<None, None, z.infer<typeof CreateTenant>>({
    method: "POST",
    path: "/v1/admin/tenants",
    tag: "Platform",
    summary: "Provision a tenant, its configuration seeded from template_name when given",
    access: "admin",
    body: CreateTenant,
    response: AdminTenant,
    status: 201,
    run: ({ tx, body }) =>
      tx`select * from platform.create_tenant(
        ${body.name}, ${body.domain ?? null}, ${body.subscription_tier ?? null}, ${
        body.template_name ?? null
      })`,
    reply: (rows) => oneOr404(rows, "tenant"),
  }),
  dbRoute<Path>({
    method: "GET",
    path: "/v1/admin/tenants/:tenant_id",
    tag: "Platform",
    summary: "Get a tenant",
    access: "admin",
    params: TenantPath,
    response: AdminTenant,
    run: ({ tx, params }) => tx`select * from platform.tenants where tenant_id = ${params.tenant_id}`,
    reply: (rows) => oneOr404(rows, "tenant"),
  }),
  dbRoute<Path, None, z.infer<typeof UpdateTenant>>({
    method: "PATCH",
    path: "/v1/admin/tenants/:tenant_id",
    tag: "Platform",
    summary: "Change a tenant's name, domain or subscription tier",
    access: "admin",
    params: TenantPath,
    body: UpdateTenant,
    response: AdminTenant,
    run: ({ tx, params, body }) =>
      tx`select * from platform.update_tenant(
        ${params.tenant_id}, ${body.name ?? null}, ${body.domain ?? null}, ${body.domain === null},
        ${body.subscription_tier ?? null})`,
    reply: (rows) => oneOr404(rows, "tenant"),
  }),
  dbRoute<Path>({
    method: "DELETE",
    path: "/v1/admin/tenants/:tenant_id",
    tag: "Platform",
    summary: "Deactivate a tenant: its keys stop working at once; its data and audit trail are kept",
    access: "admin",
    params: TenantPath,
    response: AdminTenant,
    run: ({ tx, params }) => tx`select * from platform.deactivate_tenant(${params.tenant_id})`,
    reply: (rows) => oneOr404(rows, "tenant"),
  }),
  dbRoute<Path, None, z.infer<typeof CreateApiKey>>({
    method: "POST",
    path: "/v1/admin/tenants/:tenant_id/api-keys",
    tag: "Platform",
    summary: "Issue an API key for a tenant; the key is shown only here",
    access: "admin",
    oneTimeSecret: "key",
    params: TenantPath,
    body: CreateApiKey,
    response: NewApiKey,
    status: 201,
    run: ({ tx, params, body }) =>
      tx`select * from platform.create_api_key(
        ${params.tenant_id}, ${body.name}, ${body.permissions}, ${body.user_id ?? null}, ${
        body.expires_at ?? null
      })`,
    reply: (rows) => oneOr404(rows, "tenant"),
  }),
  dbRoute<z.infer<typeof TenantKeyPath>>({
    method: "DELETE",
    path: "/v1/admin/tenants/:tenant_id/api-keys/:key_id",
    tag: "Platform",
    summary: "Revoke one API key of a tenant; it stops working at once",
    access: "admin",
    params: TenantKeyPath,
    status: 204,
    run: ({ tx, params }) =>
      tx`select key_id from platform.revoke_api_key(${params.tenant_id}, ${params.key_id})`,
    reply: (rows) => {
      oneOr404(rows, "API key");
      return null;
    },
  }),
  dbRoute<None, z.infer<typeof AdminAuditLogListQuery>>({
    method: "GET",
    path: "/v1/admin/audit-logs",
    tag: "Platform",
    summary: "List audit entries across tenants, newest first, optionally for one tenant",
    access: "admin",
    query: AdminAuditLogListQuery,
    response: pageOf(AuditLog),
    run: ({ tx, query }) => {
      return tx`select * from platform.list_audit_logs(
        ${query.limit}, ${query.cursor?.after ?? null}, ${query.cursor?.id ?? null}, ${
        query.tenant_id ?? null
      })`;
    },
    reply: (rows, { query }) => page(rows, query.limit, { after: "timestamp", id: "log_id" }),
  }),
  dbRoute({
    method: "GET",
    path: "/v1/admin/operators",
    tag: "Platform",
    summary: "List platform operators, active and revoked, newest first (at most 100)",
    access: "admin",
    response: pageOf(Operator),
    run: ({ tx }) =>
      tx`select * from platform.operators order by created_at desc, operator_id desc limit 100`,
    reply: (rows) => ({ items: rows, next_cursor: null }),
  }),
  dbRoute<None, None, z.infer<typeof CreateOperator>>({
    method: "POST",
    path: "/v1/admin/operators",
    tag: "Platform",
    summary: "Create a named operator; its credential is shown only here",
    access: "admin",
    oneTimeSecret: "token",
    body: CreateOperator,
    response: NewOperator,
    status: 201,
    run: ({ tx, body }) => tx`select * from platform.create_operator(${body.name})`,
    reply: (rows) => oneOr404(rows, "operator"),
  }),
  dbRoute<z.infer<typeof OperatorPath>>({
    method: "DELETE",
    path: "/v1/admin/operators/:operator_id",
    tag: "Platform",
    summary: "Revoke an operator's credential; it stops working at once. The last active operator stays",
    access: "admin",
    params: OperatorPath,
    status: 204,
    run: ({ tx, params }) => tx`select operator_id from platform.revoke_operator(${params.operator_id})`,
    reply: (rows) => {
      oneOr404(rows, "operator");
      return null;
    },
  }),
  dbRoute({
    method: "GET",
    path: "/v1/admin/plans",
    tag: "Platform",
    summary: "The plans: each subscription tier's limits",
    access: "admin",
    response: pageOf(Plan),
    run: ({ tx }) => tx`select * from platform.plans order by max_documents, tier`,
    reply: (rows) => ({ items: rows, next_cursor: null }),
  }),
  dbRoute<z.infer<typeof PlanPath>, None, z.infer<typeof UpdatePlan>>({
    method: "PATCH",
    path: "/v1/admin/plans/:plan_id",
    tag: "Platform",
    summary: "Change a plan's limits; every tenant on its tier has them from its next request",
    access: "admin",
    params: PlanPath,
    body: UpdatePlan,
    response: Plan,
    run: ({ tx, params, body }) =>
      tx`select * from platform.update_plan(${params.plan_id}, ${body.max_documents ?? null}, ${
        body.max_users ?? null
      },
        ${body.max_api_keys ?? null}, ${body.max_metadata_bytes ?? null}, ${
        body.requests_per_minute ?? null
      })`,
    reply: (rows) => oneOr404(rows, "plan"),
  }),
];
