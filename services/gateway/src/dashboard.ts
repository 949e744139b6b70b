import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { extname } from 'node:path'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errorBody } from './errors.ts'

declare module 'fastify' {
  interface FastifySchema {
    /** Leaves a route out of the OpenAPI document (the convention of @fastify/swagger). */
    hide?: boolean
  }
}

/** The dashboard's static files: plain ES modules and CSS, no build step. */
const DASHBOARD_DIR = new URL('../dashboard/', import.meta.url)

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
}

/**
 * The page loads only its own files and speaks only to its own origin (/api/v1 and /ws; CSP's
 * 'self' covers ws: and wss: to the same host), so an injected string in a plant name or alert
 * message cannot load or send anything elsewhere. Scripts set styles through the CSSOM only.
 */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
}

interface StaticFile {
  body: Buffer
  type: string
  etag: string
}

function loadFile(name: string): StaticFile {
  const body = readFileSync(new URL(name, DASHBOARD_DIR))
  const type = CONTENT_TYPES[extname(name)]
  if (!type) throw new Error(`dashboard: no content type for ${name}`)
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` }
}

function send(file: StaticFile, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  // The file names carry no version, so browsers revalidate every time ("no-cache") and get a
  // 304 while the ETag (the content's hash) matches: a new release is seen at the next load.
  reply.headers({ ...SECURITY_HEADERS, 'cache-control': 'no-cache', etag: file.etag })
  if (request.headers['if-none-match'] === file.etag) return reply.code(304).send()
  return reply.type(file.type).send(file.body)
}

/**
 * The operators' dashboard at `/` (CONTRACT.md §6): static files, no token needed to load the
 * page (the page asks for one and speaks /ws and /api/v1 with it). The files are read once here,
 * so a missing or unknown file fails the boot, and serving costs no disk access.
 */
export async function registerDashboard(app: FastifyInstance): Promise<void> {
  const index = loadFile('index.html')
  const assets = new Map<string, StaticFile>()
  for (const name of readdirSync(DASHBOARD_DIR)) {
    if (name !== 'index.html' && CONTENT_TYPES[extname(name)]) assets.set(name, loadFile(name))
  }

  // Static routes are hidden from the OpenAPI document: they are not part of the API.
  app.get('/', { schema: { hide: true } }, async (request, reply) => send(index, request, reply))
  app.get('/dashboard/:file', { schema: { hide: true } }, async (request, reply) => {
    const file = assets.get((request.params as { file: string }).file)
    if (!file) return reply.code(404).send(errorBody('not_found', 'no such dashboard file'))
    return send(file, request, reply)
  })
}
