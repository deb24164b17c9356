/**
 * Documents of the caller's tenant. An author from another tenant is rejected
 * by the composite foreign key, whatever the body says.
 */
import type { z } from "zod";
import { dbRoute, type Route } from "../http/router.ts";
import {
  CreateDocument,
  Document,
  DocumentListQuery,
  DocumentPath,
  pageOf,
  UpdateDocument,
} from "../schemas.ts";
import { oneOr404, page } from "./reply.ts";

type Path = z.infer<typeof DocumentPath>;
type List = z.infer<typeof DocumentListQuery>;

/** Routes of /v1/documents: list with filters, create, read, change, delete. */
export const documentRoutes: Route[] = [
  dbRoute<Record<string, never>, List>({
    method: "GET",
    path: "/v1/documents",
    tag: "Documents",
    summary: "List documents, newest first, optionally by author and creation time",
    access: "tenant",
    permission: "documents:read",
    query: DocumentListQuery,
    response: pageOf(Document),
    run: ({ tx, query }) => {
      return tx`
        select * from api.list_documents(
          ${query.limit}, ${query.cursor?.after ?? null}, ${query.cursor?.id ?? null}, ${
        query.user_id ?? null
      },
          ${query.created_after ?? null}, ${query.created_before ?? null})`;
    },
    reply: (rows, { query }) => page(rows, query.limit, { after: "created_at", id: "document_id" }),
  }),
  dbRoute<Record<string, never>, Record<string, never>, z.infer<typeof CreateDocument>>({
    method: "POST",
    path: "/v1/documents",
    tag: "Documents",
    summary:
      "Store a document; a key bound to a user authors as that user, an unbound key names the author " +
      "(422 when user_id is not a user of this tenant, or missing for an unbound key)",
    access: "tenant",
    permission: "documents:write",
    body: CreateDocument,
    response: Document,
    status: 201,
    run: ({ tx, body }) =>
      tx`select * from api.create_document(
        ${body.user_id ?? null}, ${body.title}, ${body.content_hash}, ${
        tx.json((body.metadata ?? {}) as never)
      })`,
    reply: (rows) => oneOr404(rows, "document"),
  }),
  dbRoute<Path>({
    method: "GET",
    path: "/v1/documents/:document_id",
    tag: "Documents",
    summary: "Get a document",
    access: "tenant",
    permission: "documents:read",
    params: DocumentPath,
    response: Document,
    run: ({ tx, params }) => tx`select * from api.get_document(${params.document_id})`,
    reply: (rows) => oneOr404(rows, "document"),
  }),
  dbRoute<Path, Record<string, never>, z.infer<typeof UpdateDocument>>({
    method: "PATCH",
    path: "/v1/documents/:document_id",
    tag: "Documents",
    summary: "Change a document's title, content hash or metadata",
    access: "tenant",
    permission: "documents:write",
    params: DocumentPath,
    body: UpdateDocument,
    response: Document,
    run: ({ tx, params, body }) =>
      tx`select * from api.update_document(
        ${params.document_id}, ${body.title ?? null}, ${body.content_hash ?? null},
        ${body.metadata === undefined ? null : tx.json(body.metadata as never)})`,
    reply: (rows) => oneOr404(rows, "document"),
  }),
  dbRoute<Path>({
    method: "DELETE",
    path: "/v1/documents/:document_id",
    tag: "Documents",
    summary: "Delete a document",
    access: "tenant",
    permission: "documents:write",
    params: DocumentPath,
    status: 204,
    run: ({ tx, params }) => tx`select document_id from api.delete_document(${params.document_id})`,
    reply: (rows) => {
      oneOr404(rows, "document");
      return null;
    },
  }),
];
