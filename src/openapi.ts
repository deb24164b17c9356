/**
 * The OpenAPI 3.1 document, generated from the route table and the same zod
 * schemas that validate requests, and a plain HTML rendering of it for people.
 */
import { z } from "zod";
import type { Route } from "./http/router.ts";
import { Problem } from "./schemas.ts";

type JsonSchema = Record<string, unknown>;

function schemaOf(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const json = z.toJSONSchema(schema, { io, unrepresentable: "any", target: "draft-2020-12" }) as JsonSchema;
  delete json.$schema;
  return json;
}

function parametersOf(schema: z.ZodType | undefined, location: "path" | "query") {
  if (!schema) return [];
  const json = schemaOf(schema, "input");
  const properties = (json.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => ({
    name,
    in: location,
    required: location === "path" || required.has(name),
    description: property.description,
    schema: property,
  }));
}

function problemResponses(route: Route): Record<string, unknown> {
  const statuses = ["400", "500", "503"];
  if (route.access !== "public") statuses.push("401");
  if (route.access === "tenant" && route.permission) statuses.push("403");
  // A tenant's requests per minute (its plan's), with Retry-After.
  if (route.access === "tenant") statuses.push("429");
  if (route.params || route.method !== "GET") statuses.push("404");
  if (route.body) statuses.push("409", "413", "415", "422");
  const problem = { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } };
  return Object.fromEntries(
    statuses.sort().map((status) => [status, { description: "Problem", content: problem }]),
  );
}

/**
 * Builds the OpenAPI document.
 *
 * @param routes the route table
 * @returns an OpenAPI 3.1 document
 */
export function openApiDocument(routes: Route[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.path.replace(/:([a-z_]+)/g, "{$1}");
    const status = String(route.status ?? 200);
    const success = route.response
      ? {
        description: "Success",
        content: { "application/json": { schema: schemaOf(route.response, "output") } },
      }
      : { description: status === "204" ? "No content" : "Success" };
    const security = route.access === "tenant"
      ? [{ apiKey: [] }]
      : route.access === "admin"
      ? [{ platformAdmin: [] }]
      : [];
    const description = route.access === "tenant"
      ? `Needs an API key${route.permission ? ` with \`${route.permission}\` (or \`*\`)` : ""}.`
      : route.access === "admin"
      ? "Needs PLATFORM_ADMIN_TOKEN; runs as uber_admin."
      : "No authentication.";
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = {
      tags: [route.tag],
      summary: route.summary,
      description,
      security,
      parameters: [...parametersOf(route.params, "path"), ...parametersOf(route.query, "query")],
      ...(route.body
        ? {
          requestBody: {
            required: true,
            content: { "application/json": { schema: schemaOf(route.body, "input") } },
          },
        }
        : {}),
      responses: { [status]: success, ...problemResponses(route) },
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Tenancy API",
      version: "1.0.0",
      description:
        "Multi-tenant data foundation on PostgreSQL. Tenant isolation is enforced by row-level security; " +
        "every response carries x-request-id.",
    },
    paths,
    components: {
      schemas: { Problem: schemaOf(Problem, "output") },
      securitySchemes: {
        apiKey: { type: "http", scheme: "bearer", description: "Tenant API key (tnk_...)" },
        platformAdmin: { type: "http", scheme: "bearer", description: "PLATFORM_ADMIN_TOKEN" },
      },
    },
  };
}

function escapeHtml(value: unknown): string {
  return String(value ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Renders the OpenAPI document as one self-contained HTML page (no scripts,
 * nothing fetched from elsewhere).
 *
 * @param document the OpenAPI document
 * @returns the HTML page
 */
export function docsPage(document: Record<string, unknown>): string {
  const info = document.info as { title: string; description: string };
  const sections: string[] = [];
  for (
    const [path, operations] of Object.entries(document.paths as Record<string, Record<string, JsonSchema>>)
  ) {
    for (const [method, operation] of Object.entries(operations)) {
      const parameters = (operation.parameters as JsonSchema[]).map((p) =>
        `<tr><td><code>${escapeHtml(p.name)}</code></td><td>${escapeHtml(p.in)}</td>` +
        `<td>${p.required ? "yes" : "no"}</td><td><code>${
          escapeHtml(JSON.stringify(p.schema))
        }</code></td></tr>`
      ).join("");
      const body = operation.requestBody
        ? `<details><summary>Request body</summary><pre>${
          escapeHtml(JSON.stringify(operation.requestBody, null, 2))
        }</pre></details>`
        : "";
      sections.push(
        `<section id="${escapeHtml(method + path)}"><h3><span class="m">${method.toUpperCase()}</span> ` +
          `<code>${escapeHtml(path)}</code></h3><p>${escapeHtml(operation.summary)}. ${
            escapeHtml(operation.description)
          }</p>` +
          (parameters
            ? `<table><tr><th>Parameter</th><th>In</th><th>Required</th><th>Schema</th></tr>${parameters}</table>`
            : "") +
          body +
          `<details><summary>Responses</summary><pre>${
            escapeHtml(JSON.stringify(operation.responses, null, 2))
          }</pre></details></section>`,
      );
    }
  }
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(info.title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
.m{display:inline-block;min-width:4.5rem;font-family:monospace}section{border-top:1px solid #ddd;padding:.5rem 0}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .4rem;text-align:left;vertical-align:top}
pre{background:#f6f6f6;padding:.5rem;overflow:auto}</style></head><body>
<h1>${escapeHtml(info.title)}</h1><p>${escapeHtml(info.description)}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a></p>${sections.join("\n")}</body></html>`;
}
