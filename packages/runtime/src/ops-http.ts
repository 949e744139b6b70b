import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

// The operations endpoints of a role that has no API of its own (`plantwatt broker`,
// `plantwatt processor`): /healthz, /readyz and /metrics (CONTRACT.md §6), no token. In
// `plantwatt up` and `plantwatt gateway` the gateway serves them instead.

/** What /metrics needs of a Prometheus registry (prom-client's Registry is one). */
export interface MetricsSource {
  contentType: string
  metrics(): Promise<string>
}

export interface OpsOptions {
  registry: MetricsSource
  isReady: () => boolean
}

function respond(response: ServerResponse, status: number, type: string, body: string): void {
  response.writeHead(status, { 'content-type': type }).end(body)
}

/** Handles a request for one of the three endpoints; false when the path is not one of them. */
export function handleOpsRequest(request: IncomingMessage, response: ServerResponse, options: OpsOptions): boolean {
  const path = (request.url ?? '/').split('?')[0]
  if (path !== '/healthz' && path !== '/readyz' && path !== '/metrics') return false
  if (request.method !== 'GET') {
    respond(response, 405, 'application/json', '{"error":{"code":"method_not_allowed","message":"GET only"}}')
  } else if (path === '/healthz') {
    respond(response, 200, 'application/json', '{"status":"ok"}')
  } else if (path === '/readyz') {
    if (options.isReady()) respond(response, 200, 'application/json', '{"status":"ready"}')
    else respond(response, 503, 'application/json', '{"error":{"code":"not_ready","message":"not ready"}}')
  } else {
    options.registry.metrics().then(
      (text) => respond(response, 200, options.registry.contentType, text),
      () => respond(response, 500, 'application/json', '{"error":{"code":"internal","message":"metrics failed"}}'),
    )
  }
  return true
}

/** A server with only the operations endpoints, e.g. for `plantwatt processor --http-port`. */
export async function listenOps(
  options: OpsOptions & { host: string; port: number },
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((request, response) => {
    if (!handleOpsRequest(request, response, options)) {
      respond(response, 404, 'application/json', '{"error":{"code":"not_found","message":"no such route"}}')
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => resolve())
  })
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
