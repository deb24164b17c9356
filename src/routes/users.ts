/**
 * Users of the caller's tenant. Isolation is row-level security's job: these
 * handlers never mention tenant_id.
 */
import type { z } from "zod";
import { dbRoute, type Route } from "../http/router.ts";
import { CreateUser, pageOf, PageQuery, UpdateUser, User, UserPath } from "../schemas.ts";
import { pendingOr, unlessHeldForApproval } from "./approvals.ts";
import { oneOr404, page } from "./reply.ts";

type Path = z.infer<typeof UserPath>;
type List = z.infer<typeof PageQuery>;

/** Routes of /v1/users: list, add, read, change, remove. */
export const userRoutes: Route[] = [
  dbRoute<Record<string, never>, List>({
    method: "GET",
    path: "/v1/users",
    tag: "Users",
    summary: "List users, newest first",
    access: "tenant",
    permission: "users:read",
    query: PageQuery,
    response: pageOf(User),
    run: ({ tx, query }) => {
      return tx`select * from api.list_users(${query.limit}, ${query.cursor?.after ?? null}, ${
        query.cursor?.id ?? null
      })`;
    },
    reply: (rows, { query }) => page(rows, query.limit, { after: "created_at", id: "user_id" }),
  }),
  dbRoute<Record<string, never>, Record<string, never>, z.infer<typeof CreateUser>>({
    method: "POST",
    path: "/v1/users",
    tag: "Users",
    summary: "Add a user",
    access: "tenant",
    permission: "users:write",
    body: CreateUser,
    response: User,
    status: 201,
    run: ({ tx, body }) => tx`select * from api.create_user(${body.email}, ${body.role ?? null})`,
    reply: (rows) => oneOr404(rows, "user"),
  }),
  dbRoute<Path>({
    method: "GET",
    path: "/v1/users/:user_id",
    tag: "Users",
    summary: "Get a user",
    access: "tenant",
    permission: "users:read",
    params: UserPath,
    response: User,
    run: ({ tx, params }) => tx`select * from api.get_user(${params.user_id})`,
    reply: (rows) => oneOr404(rows, "user"),
  }),
  dbRoute<Path, Record<string, never>, z.infer<typeof UpdateUser>>({
    method: "PATCH",
    path: "/v1/users/:user_id",
    tag: "Users",
    summary:
      "Change a user's email or role (a new role: 202 with a pending approval request when the tenant " +
      "requires two people)",
    access: "tenant",
    permission: "users:write",
    params: UserPath,
    body: UpdateUser,
    response: User,
    run: ({ tx, params, body }) => {
      const change = () =>
        tx`select * from api.update_user(${params.user_id}, ${body.email ?? null}, ${body.role ?? null})`;
      return body.role === undefined
        ? change()
        : unlessHeldForApproval(tx, "update_user_role", { user_id: params.user_id, ...body }, change);
    },
    reply: (rows) => pendingOr(rows, (made) => oneOr404(made, "user")),
  }),
  dbRoute<Path>({
    method: "DELETE",
    path: "/v1/users/:user_id",
    tag: "Users",
    summary:
      "Remove a user and the API keys bound to them (409 while they author documents; 202 with a pending " +
      "approval request when the tenant requires two people)",
    access: "tenant",
    permission: "users:write",
    params: UserPath,
    status: 204,
    run: ({ tx, params }) =>
      unlessHeldForApproval(
        tx,
        "delete_user",
        { user_id: params.user_id },
        () => tx`select user_id from api.delete_user(${params.user_id})`,
      ),
    reply: (rows) =>
      pendingOr(rows, (made) => {
        oneOr404(made, "user");
        return null;
      }),
  }),
];
