import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import websocket from '@fastify/websocket'
import {
  type Bus,
  decodeMessage,
  encodeMessage,
  LIVE_FILTER,
  LIVE_SYNC_TOPIC,
  type LiveUpdate,
  type Unsubscribe,
} from '@plantwatt/bus'
import type { PlantIndex } from '@plantwatt/plant'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { createWebSocketStream } from 'ws'
import { mayAccessScope, requireRole, type TokenVerifier } from './access.ts'
import { registerDashboard } from './dashboard.ts'
import { errorBody } from './errors.ts'
import { LiveHub } from './live-hub.ts'
import { plantView } from './plant-view.ts'
import { WsConnection } from './ws-connection.ts'

export interface GatewayOptions {
  plant: PlantIndex
  bus: Bus
  tokens: TokenVerifier
  logger: Logger
  /** The composition root's readiness (CONTRACT.md §6 /readyz). */
  isReady: () => boolean
  /** Prometheus registry served at /metrics (every role of the process registers in it). */
  registry: Registry
  /**
   * MQTT over WebSocket at /mqtt (CONTRACT.md §6): the broker's handler for a connection, when a
   * broker runs in this process. Device authentication is the broker's, as on TCP.
   */
  mqttOverWebSocket?: (stream: Duplex, address: string, request: IncomingMessage) => void
  /** Frames a stalled client may have queued before live frames are skipped. */
  maxBufferedBytes?: number
  maxSubscriptionsPerConnection?: number
  heartbeatIntervalMs?: number
  liveFlushIntervalMs?: number
}

export interface Gateway {
  readonly app: FastifyInstance
  readonly live: LiveHub
  start(): Promise<void>
  listen(options: { host: string; port: number }): Promise<number>
  close(): Promise<void>
}

/**
 * The gateway's composition root: fastify with the HTTP API, /ws and (later) the dashboard.
 * Built without listening, so tests can use inject() or listen on port 0 (STYLE.md, fastify).
 */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const { plant, bus, tokens, logger } = options
  const live = new LiveHub({ plant })
  const connections = new Set<WsConnection>()
  const app = Fastify({
    loggerInstance: logger.child({ role: 'gateway' }) as FastifyBaseLogger,
    // One log line per request would drown the live-figure logs; errors are logged by our handler.
    logController: new LogController({ disableRequestLogging: true }),
  })
  await app.register(websocket, {
    options: {
      // Large enough for one MQTT packet at the broker's limit on /mqtt; /ws frames are small.
      maxPayload: 300 * 1024,
      // MQTT over WebSocket clients ask for the "mqtt" subprotocol (MQTT 3.1.1 §6).
      handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
    },
  })
  app.decorateRequest('principal', undefined)

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody('not_found', `no route ${request.method} ${request.url.split('?')[0]}`))
  })
  app.setErrorHandler((error: Error & { statusCode?: number; validation?: unknown }, _request, reply) => {
    if (error.validation) return reply.code(400).send(errorBody('bad_request', error.message))
    logger.error({ err: error }, 'request failed')
    reply.code(error.statusCode ?? 500).send(errorBody('internal', 'internal error'))
  })

  await registerDashboard(app)

  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    if (options.isReady()) return { status: 'ready' }
    return reply.code(503).send(errorBody('not_ready', 'not ready'))
  })

  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', options.registry.contentType)
    return options.registry.metrics()
  })

  const mqttOverWebSocket = options.mqttOverWebSocket
  if (mqttOverWebSocket) {
    app.get('/mqtt', { websocket: true }, (socket, request) => {
      // Binary MQTT packets both ways; the stream's backpressure reaches aedes.
      const stream = createWebSocketStream(socket)
      stream.on('error', () => stream.destroy())
      mqttOverWebSocket(stream, request.ip, request.raw)
    })
  }

  const viewer = requireRole(tokens, 'viewer')
  app.get('/api/v1/plant', { onRequest: viewer }, async (request) =>
    plantView(plant, request.principal!, (scope) => live.equipmentLive(scope)),
  )
  app.get(
    '/api/v1/live',
    {
      onRequest: viewer,
      schema: {
        querystring: {
          type: 'object',
          required: ['scope'],
          properties: { scope: { type: 'string', minLength: 1, maxLength: 200 } },
        },
      },
    },
    async (request, reply) => {
      const { scope } = request.query as { scope: string }
      if (!plant.scope(scope)) return reply.code(404).send(errorBody('unknown_scope', `no scope "${scope}"`))
      if (!mayAccessScope(request.principal!, scope)) {
        return reply.code(403).send(errorBody('forbidden', `this token may not see "${scope}"`))
      }
      return { type: 'live', ...live.current(scope) }
    },
  )

  app.get('/ws', { websocket: true, onRequest: requireRole(tokens, 'viewer', true) }, (socket, request) => {
    const connection = new WsConnection({
      socket,
      principal: request.principal!,
      plant,
      live,
      logger,
      maxBufferedBytes: options.maxBufferedBytes ?? 1024 * 1024,
      maxSubscriptions: options.maxSubscriptionsPerConnection ?? 100,
    })
    connections.add(connection)
    socket.on('close', () => connections.delete(connection))
  })

  const unsubscribes: Unsubscribe[] = []
  const timers: NodeJS.Timeout[] = []

  return {
    app,
    live,
    async start() {
      unsubscribes.push(
        await bus.subscribe(LIVE_FILTER, (_topic, payload) => live.apply(decodeMessage<LiveUpdate>(payload))),
      )
      // Ask the processor for every scope's figures, so the first snapshot is complete.
      await bus.publish(LIVE_SYNC_TOPIC, encodeMessage({}))
      // Rounds every 100 ms keep frame delay low while each subscription still gets at
      // most one frame a second.
      timers.push(setInterval(() => live.flush(), options.liveFlushIntervalMs ?? 100))
      timers.push(
        setInterval(() => {
          for (const connection of connections) connection.heartbeat()
        }, options.heartbeatIntervalMs ?? 30_000),
      )
      for (const timer of timers) timer.unref()
    },
    async listen({ host, port }) {
      await app.listen({ host, port })
      return (app.server.address() as AddressInfo).port
    },
    async close() {
      for (const timer of timers.splice(0)) clearInterval(timer)
      for (const unsubscribe of unsubscribes.splice(0)) await unsubscribe()
      await app.close()
    },
  }
}
