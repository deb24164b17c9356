/**
 * API keys of the caller's tenant. A new key is returned once, in the create
 * response; afterwards only its prefix is ever shown.
 */
import type { z } from "zod";
import { dbRoute, type Route } from "../http/router.ts";
import { ApiKey, CreateApiKey, KeyPath, NewApiKey, pageOf, PageQuery } from "../schemas.ts";
import { pendingOr, unlessHeldForApproval } from "./approvals.ts";
import { oneOr404, page } from "./reply.ts";

type List = z.infer<typeof PageQuery>;

/** Routes of /v1/api-keys: list, issue (key shown once) and revoke. */
export const apiKeyRoutes: Route[] = [
  dbRoute<Record<string, never>, List>({
    method: "GET",
    path: "/v1/api-keys",
    tag: "API keys",
    summary: "List API keys (never the keys themselves), newest first",
    access: "tenant",
    permission: "keys:read",
    query: PageQuery,
    response: pageOf(ApiKey),
    run: ({ tx, query }) => {
      return tx`select * from api.list_api_keys(${query.limit}, ${query.cursor?.after ?? null}, ${
        query.cursor?.id ?? null
      })`;
    },
    reply: (rows, { query }) => page(rows, query.limit, { after: "created_at", id: "key_id" }),
  }),
  dbRoute<Record<string, never>, Record<string, never>, z.infer<typeof CreateApiKey>>({
    method: "POST",
    path: "/v1/api-keys",
    tag: "API keys",
    summary:
      "Issue an API key with at most the calling key's permissions, lifetime and user; the key is shown only here " +
      "(202 with a pending approval request when the tenant requires two people for a key that may issue keys)",
    access: "tenant",
    permission: "keys:write",
    oneTimeSecret: "key",
    body: CreateApiKey,
    response: NewApiKey,
    status: 201,
    run: ({ tx, body }) =>
      unlessHeldForApproval(tx, "create_api_key", body, () =>
        tx`select * from api.create_api_key(
          ${body.name}, ${body.permissions}, ${body.user_id ?? null}, ${body.expires_at ?? null})`),
    reply: (rows) => pendingOr(rows, (made) => oneOr404(made, "API key")),
  }),
  dbRoute<z.infer<typeof KeyPath>>({
    method: "DELETE",
    path: "/v1/api-keys/:key_id",
    tag: "API keys",
    summary: "Revoke an API key; it stops working at once",
    access: "tenant",
    permission: "keys:write",
    params: KeyPath,
    status: 204,
    run: ({ tx, params }) => tx`select key_id from api.revoke_api_key(${params.key_id})`,
    reply: (rows) => {
      oneOr404(rows, "API key");
      return null;
    },
  }),
];
