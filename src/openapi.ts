/**
 * The OpenAPI 3.1 document, generated from the route table and the same zod
 * schemas that validate requests, with a curl example for each operation
 * (src/docs.ts renders it for people).
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

// A value the schema accepts, for the curl examples: a required field's
// default, first allowed value or a placeholder of its type and format.
function exampleOf(schema: JsonSchema): unknown {
  if (schema.default !== undefined) return schema.default;
  if (schema.const !== undefined) return schema.const;
  if (Array.isArray(schema.enum)) return schema.enum[0];
  const choices = (schema.anyOf ?? schema.oneOf) as JsonSchema[] | undefined;
  if (choices) return exampleOf(choices.find((choice) => choice.type !== "null") ?? choices[0]);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  switch (type) {
    case "object": {
      const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
      const required = (schema.required ?? []) as string[];
      return Object.fromEntries(required.map((name) => [name, exampleOf(properties[name] ?? {})]));
    }
    case "array":
      return [exampleOf((schema.items ?? {}) as JsonSchema)];
    case "integer":
    case "number":
      return schema.minimum ?? 1;
    case "boolean":
      return true;
    case "string":
      return ({
        uuid: "00000000-0000-4000-8000-000000000000",
        email: "someone@example.com",
        "date-time": "2027-01-01T00:00:00Z",
      } as Record<string, string>)[String(schema.format)] ??
        (schema.pattern === "^[0-9a-f]{64}$" ? "0".repeat(64) : "text");
    default:
      return {};
  }
}

// How to call the operation with curl, shown in its description.
function curlExample(route: Route, path: string): string {
  // Path parameters as shell variables: curl would read {document_id} as a
  // pattern of its own.
  const url = path.replace(/\{([a-z_]+)\}/g, (_, name: string) => `$${name.toUpperCase()}`);
  const lines = [`curl -X ${route.method} "$BASE_URL${url}"`];
  if (route.access === "tenant") lines.push(`-H "Authorization: Bearer $TENANCY_API_KEY"`);
  if (route.access === "admin") lines.push(`-H "Authorization: Bearer $PLATFORM_ADMIN_TOKEN"`);
  if (route.body) {
    const body = JSON.stringify(exampleOf(schemaOf(route.body, "input"))).replaceAll("'", "'\\''");
    lines.push(`-H "Content-Type: application/json"`, `-d '${body}'`);
  }
  return "```sh\n" + lines.join(" \\\n  ") + "\n```";
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
      description: `${description}\n\n${curlExample(route, path)}`,
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
