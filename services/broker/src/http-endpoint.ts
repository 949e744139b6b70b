import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { handleOpsRequest } from '@plantwatt/runtime'
import type { Registry } from 'prom-client'
import { createWebSocketStream, WebSocketServer } from 'ws'
import type { Broker } from './broker.ts'

/**
 * The HTTP side of a broker running as its own role (`plantwatt broker`): /healthz, /readyz,
 * /metrics and MQTT over WebSocket at /mqtt. In `plantwatt up` the gateway serves these instead.
 */
export async function listenBrokerHttp(
  broker: Broker,
  registry: Registry,
  options: { host: string; port: number; isReady: () => boolean },
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new WebSocketServer({
    noServer: true,
    maxPayload: 300 * 1024,
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false),
  })
  const server: Server = createServer((request: IncomingMessage, response: ServerResponse) => {
    if (handleOpsRequest(request, response, { registry, isReady: options.isReady })) return
    response
      .writeHead(404, { 'content-type': 'application/json' })
      .end('{"error":{"code":"not_found","message":"no such route"}}')
  })
  server.on('upgrade', (request, socket, head) => {
    if ((request.url ?? '').split('?')[0] !== '/mqtt') {
      socket.end('HTTP/1.1 404 Not Found\r\n\r\n')
      return
    }
    sockets.handleUpgrade(request, socket, head, (ws) => {
      const stream = createWebSocketStream(ws)
      stream.on('error', () => stream.destroy())
      broker.handleStream(stream, request.socket.remoteAddress ?? 'unknown', request)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => resolve())
  })
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      for (const client of sockets.clients) client.terminate()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
