/**
 * The API's own page at `/openapi` (Swagger UI) and its document at `/openapi/json`. The page's scripts and styles
 * come from the swagger-ui-dist package installed with the server (pinned in package.json) and are served from
 * here, never from a CDN: the page works on a LAN with no internet, and its Content-Security-Policy lets it load
 * nothing from anywhere else.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { Elysia } from 'elysia'
import { Type } from '@sinclair/typebox'
import { notFound } from './errors.ts'
import type { RouteDoc } from './openapi.ts'

export const API_PAGE_PATH = '/openapi'
export const API_DOCUMENT_PATH = '/openapi/json'
export const API_ASSETS_PATH = '/openapi/assets'

/** Swagger UI's settings. No validator badge (it would send the document to a public validator). */
const INIT_JS = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({ url: '${API_DOCUMENT_PATH}', dom_id: '#swagger-ui', deepLinking: true, validatorUrl: null, docExpansion: 'list', defaultModelsExpandDepth: 0 })
})
`

/** Everything the page loads: the package's files and the settings above. */
const ASSETS: Record<string, { type: string; file?: string; text?: string }> = {
  'swagger-ui-bundle.js': { type: 'text/javascript; charset=utf-8', file: 'swagger-ui-bundle.js' },
  'swagger-ui.css': { type: 'text/css; charset=utf-8', file: 'swagger-ui.css' },
  'init.js': { type: 'text/javascript; charset=utf-8', text: INIT_JS },
}

// The page may run nothing inline and reach nothing but this server; Swagger UI sets inline styles, and shows
// data: images.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

function page(title: string): string {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<link rel="stylesheet" href="${API_ASSETS_PATH}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="${API_ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="${API_ASSETS_PATH}/init.js"></script>
</body>
</html>
`
}

let packageDir: string | undefined
/** An asset's bytes, read from the installed package on first use and kept (the bundle is ~1.7 MB). */
const cache = new Map<string, Uint8Array>()
function asset(name: string): Uint8Array | undefined {
  const a = ASSETS[name]
  if (!a) return undefined
  let bytes = cache.get(name)
  if (!bytes) {
    if (a.text !== undefined) bytes = new TextEncoder().encode(a.text)
    else {
      packageDir ??= dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'))
      bytes = new Uint8Array(readFileSync(join(packageDir, a.file!)))
    }
    cache.set(name, bytes)
  }
  return bytes
}

const Html = Type.String({ contentMediaType: 'text/html', description: 'the API page (Swagger UI)' })
const Document = Type.Object({}, { additionalProperties: true, description: 'this OpenAPI document' })

/** The page, its assets and the document (`document` is built on the first request, once every route exists). */
export function apiPage(title: string, document: () => object) {
  let json: string | undefined
  const html = page(title)
  return new Elysia({ name: 'control/api-page', seed: title })
    .get(API_DOCUMENT_PATH, () => new Response((json ??= JSON.stringify(document())), { headers: { 'content-type': 'application/json' } }), {
      // Returned as a Response: the answer is the document itself, not checked against a schema on the way out.
      response: { 200: Document },
      detail: { tags: ['service'], operationId: 'getOpenApi', summary: 'This OpenAPI document' } satisfies RouteDoc,
    })
    .get(API_PAGE_PATH, () => new Response(html, { headers: { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': CSP } }), {
      response: { 200: Html },
      detail: { tags: ['service'], operationId: 'getApiPage', summary: 'The API page (Swagger UI, served from this server)' } satisfies RouteDoc,
    })
    .get(
      `${API_ASSETS_PATH}/:file`,
      ({ params }) => {
        const bytes = asset(params.file)
        if (!bytes) throw notFound('NOT_FOUND', `no asset ${params.file}`)
        return new Response(bytes, { headers: { 'content-type': ASSETS[params.file]!.type, 'cache-control': 'public, max-age=3600' } })
      },
      { detail: { hide: true } satisfies RouteDoc },
    )
}
