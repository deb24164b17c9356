/**
 * The reference page at /docs: Swagger UI (the npm package swagger-ui-dist)
 * rendering /openapi.json, with "Try it out" against this service. Its
 * script and style are served by the service itself (/docs/assets/...), and
 * the page's Content-Security-Policy lets it load and call nothing else.
 */
import bundle from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "text" };
import style from "swagger-ui-dist/swagger-ui.css" with { type: "text" };

// Without its source map (which the service does not serve) a browser's
// developer tools ask for nothing the page does not have.
const withoutSourceMap = (text: string) => text.replace(/\n\/[/*]# sourceMappingURL=\S+\s*(\*\/)?\s*$/, "\n");

// Swagger UI's options: the document to show, no validator badge (it would
// send the document to validator.swagger.io), "Try it out" open on every
// operation, and the curl of each request made.
const initializer = `window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: true,
  displayRequestDuration: true,
  requestSnippetsEnabled: true,
});
`;

const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tenancy API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
`;

const assets: Record<string, { body: string; type: string }> = {
  "swagger-ui-bundle.js": { body: withoutSourceMap(bundle), type: "text/javascript; charset=utf-8" },
  "swagger-ui.css": { body: withoutSourceMap(style), type: "text/css; charset=utf-8" },
  "init.js": { body: initializer, type: "text/javascript; charset=utf-8" },
};

// Scripts and styles from this origin only (Swagger UI sets style
// attributes, hence 'unsafe-inline' for styles); requests to this origin
// only; images from here or inline; no framing.
const POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The names of the page's assets, as /docs/assets/{file} serves them. */
export const DOCS_ASSET_NAMES = Object.keys(assets) as [string, ...string[]];

/** The /docs page. */
export function docsPage(): Response {
  return new Response(page, {
    headers: {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": POLICY,
      "x-content-type-options": "nosniff",
    },
  });
}

// Each asset gzipped once, when first asked for: Swagger UI's script is
// 1.5 MB as text and about a quarter of that compressed.
const gzipped = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

function gzipOf(name: string, body: string): Promise<Uint8Array<ArrayBuffer>> {
  let compressed = gzipped.get(name);
  if (!compressed) {
    const stream = new Blob([body]).stream().pipeThrough(new CompressionStream("gzip"));
    compressed = new Response(stream).bytes();
    gzipped.set(name, compressed);
  }
  return compressed;
}

/**
 * One of the page's assets, by the last segment of its path, gzipped when
 * the client accepts it.
 *
 * @param name e.g. "swagger-ui.css"
 * @param acceptEncoding the request's Accept-Encoding
 * @returns the asset, or undefined when there is none of that name
 */
export async function docsAsset(name: string, acceptEncoding: string): Promise<Response | undefined> {
  const asset = Object.hasOwn(assets, name) ? assets[name] : undefined;
  if (!asset) return undefined;
  const headers = {
    "content-type": asset.type,
    // The assets change only with a new release of the service.
    "cache-control": "public, max-age=3600",
    "x-content-type-options": "nosniff",
    "vary": "accept-encoding",
  };
  // gzip named, and not with q=0.
  if (!/\bgzip\b(?!\s*;\s*q=0(\.0*)?\s*(,|$))/.test(acceptEncoding)) {
    return new Response(asset.body, { headers });
  }
  return new Response(await gzipOf(name, asset.body), {
    headers: { ...headers, "content-encoding": "gzip" },
  });
}
