import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import websocket from '@fastify/websocket'
import {
  ALERTS_SYNC_TOPIC,
  ALERTS_TOPIC,
  type AlertEvents,
  BUCKETS_FILTER,
  type BucketUpdate,
  type Bus,
  decodeMessage,
  encodeMessage,
  LIVE_FILTER,
  LIVE_SYNC_TOPIC,
  type LiveUpdate,
  QueryClient,
  SETPOINTS_SYNC_TOPIC,
  SETPOINTS_TOPIC,
  type SetpointEvents,
  type Unsubscribe,
} from '@plantwatt/bus'
import type { Alert, SetpointEvent } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { createWebSocketStream } from 'ws'
import { presentedToken, requireRole } from './access.ts'
import { BucketHub } from './bucket-hub.ts'
import { registerDashboard } from './dashboard.ts'
import { errorBody, errorNameForStatus } from './errors.ts'
import { EventReplica } from './event-replica.ts'
import type { GatewayContext, TokenAdmin } from './gateway-context.ts'
import { registerGatewayMetrics } from './gateway-metrics.ts'
import { LiveHub } from './live-hub.ts'
import { registerAdminRoutes } from './routes-admin.ts'
import { registerAsyncApiRoute } from './routes-asyncapi.ts'
import { registerDataRoutes } from './routes-data.ts'
import { registerEventRoutes } from './routes-events.ts'
import { DEFAULT_WS_LIMITS, WsConnection, type WsLimits } from './ws-connection.ts'

export interface GatewayOptions {
  plant: PlantIndex
  bus: Bus
  tokens: TokenAdmin
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
  ws?: Partial<WsLimits>
  /** Alert and setpoint events held for `since` (CONTRACT.md §5: at least 10,000; tests use fewer). */
  eventCapacity?: number
  /** HTTP requests per minute per token (or per address without one). */
  httpRequestsPerMinute?: number
  heartbeatIntervalMs?: number
  liveFlushIntervalMs?: number
  ackWaitMs?: number
  now?: () => number
}

export interface Gateway {
  readonly app: FastifyInstance
  readonly live: LiveHub
  start(): Promise<void>
  listen(options: { host: string; port: number }): Promise<number>
  close(): Promise<void>
}

const isOpenAlert = (alert: Alert) => alert.state !== 'cleared'
const SETTLED: ReadonlySet<SetpointEvent['status']> = new Set(['applied', 'rejected', 'failed', 'reverted', 'held'])

/**
 * The gateway's composition root: fastify with the HTTP API, /ws and the dashboard, fed by the
 * processor over the bus. Built without listening, so tests can use inject() or listen on port 0
 * (STYLE.md, fastify).
 */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const { plant, bus, tokens, logger } = options
  const now = options.now ?? Date.now
  const limits: WsLimits = { ...DEFAULT_WS_LIMITS, ...options.ws }
  const capacity = options.eventCapacity ?? 10_000
  const publish = (topic: string) => (after: number) => {
    bus.publish(topic, encodeMessage({ after }), { qos: 1 }).catch((error) => {
      logger.warn({ err: error, topic }, 'sync request failed')
    })
  }
  const alerts = new EventReplica<Alert>({
    capacity,
    idOf: (alert) => alert.id,
    scopeOf: (alert) => alert.scope,
    isOpen: isOpenAlert,
    requestSync: publish(ALERTS_SYNC_TOPIC),
    now,
  })
  const setpoints = new EventReplica<SetpointEvent>({
    capacity,
    idOf: (event) => event.id,
    scopeOf: (event) => event.scope,
    isOpen: (event) => !SETTLED.has(event.status),
    requestSync: publish(SETPOINTS_SYNC_TOPIC),
    now,
  })
  const live = new LiveHub({ plant })
  const buckets = new BucketHub()
  const queries = await QueryClient.open(bus)
  const connections = new Set<WsConnection>()
  const counters = registerGatewayMetrics(options.registry, {
    clients: () => connections.size,
    bufferedBytes: () => {
      let bytes = 0
      for (const connection of connections) bytes += connection.bufferedBytes
      return bytes
    },
    live,
    buckets,
    replicas: { alerts, setpoints },
  })
  const context: GatewayContext = {
    plant,
    bus,
    tokens,
    live,
    alerts,
    setpoints,
    queries,
    logger,
    now,
    ackWaitMs: options.ackWaitMs ?? 5000,
  }

  const app = Fastify({
    loggerInstance: logger.child({ role: 'gateway' }) as FastifyBaseLogger,
    // One log line per request would drown the live-figure logs; errors are logged by our handler.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    // Keep-alive HTTP connections would hold close() for seconds; WebSockets are closed first (1001).
    forceCloseConnections: true,
  })
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'plantwatt',
        version: '1',
        description: 'Live energy, carbon and alerts of a plant (CONTRACT.md §6). WebSocket: GET /ws (§5).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  })
  await app.register(rateLimit, {
    global: true,
    max: options.httpRequestsPerMinute ?? 1200,
    timeWindow: 60_000,
    // Per token where there is one (many operators may share one NAT address), else per address.
    keyGenerator: (request) => presentedToken(request, true) ?? request.ip,
    allowList: (request) => !request.url.startsWith('/api/'),
    errorResponseBuilder: (_request, context) => ({
      statusCode: 429,
      message: `too many requests: at most ${context.max} a minute, retry in ${context.after}`,
    }),
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
    const status = error.statusCode ?? 500
    if (status >= 500) {
      logger.error({ err: error }, 'request failed')
      return reply.code(status).send(errorBody('internal', 'internal error'))
    }
    reply.code(status).send(errorBody(errorNameForStatus(status), error.message))
  })

  await registerDashboard(app)

  const hidden = { schema: { hide: true } }
  app.get('/healthz', hidden, async () => ({ status: 'ok' }))
  app.get('/readyz', hidden, async (_request, reply) => {
    if (options.isReady()) return { status: 'ready' }
    return reply.code(503).send(errorBody('not_ready', 'not ready'))
  })
  app.get('/metrics', hidden, async (_request, reply) => {
    reply.header('content-type', options.registry.contentType)
    return options.registry.metrics()
  })
  app.get('/api/v1/openapi.json', { schema: { hide: true }, config: { rateLimit: false } }, async () => app.swagger())
  registerAsyncApiRoute(app)

  const mqttOverWebSocket = options.mqttOverWebSocket
  if (mqttOverWebSocket) {
    app.get('/mqtt', { websocket: true, schema: { hide: true } }, (socket, request) => {
      // Binary MQTT packets both ways; the stream's backpressure reaches aedes.
      const stream = createWebSocketStream(socket)
      stream.on('error', () => stream.destroy())
      mqttOverWebSocket(stream, request.ip, request.raw)
    })
  }

  const guards = {
    viewer: requireRole(tokens, 'viewer'),
    operator: requireRole(tokens, 'operator'),
    admin: requireRole(tokens, 'admin'),
  }
  registerDataRoutes(app, context, guards.viewer)
  registerEventRoutes(app, context, guards)
  registerAdminRoutes(app, context, guards.admin)

  app.get(
    '/ws',
    { websocket: true, onRequest: requireRole(tokens, 'viewer', true), schema: { hide: true } },
    (socket, request) => {
      const connection = new WsConnection({
        socket,
        principal: request.principal!,
        plant,
        live,
        alerts,
        setpoints,
        buckets,
        logger,
        limits,
        counters,
        now,
      })
      connections.add(connection)
      socket.on('close', () => connections.delete(connection))
    },
  )

  const unsubscribes: Unsubscribe[] = []
  const timers: NodeJS.Timeout[] = []

  return {
    app,
    live,
    async start() {
      unsubscribes.push(
        await bus.subscribe(LIVE_FILTER, (_topic, payload) => live.apply(decodeMessage<LiveUpdate>(payload))),
        await bus.subscribe(BUCKETS_FILTER, (_topic, payload) => buckets.apply(decodeMessage<BucketUpdate>(payload))),
        await bus.subscribe(ALERTS_TOPIC, (_topic, payload) => {
          const message = decodeMessage<AlertEvents>(payload)
          alerts.receive(
            message.events.map(({ seq, alert }) => ({ seq, event: alert })),
            message.sync,
          )
        }),
        await bus.subscribe(SETPOINTS_TOPIC, (_topic, payload) => {
          const message = decodeMessage<SetpointEvents>(payload)
          setpoints.receive(message.events, message.sync)
        }),
      )
      // Ask the processor for every scope's figures and the held events, so the first snapshot
      // and the first `since` are complete.
      await bus.publish(LIVE_SYNC_TOPIC, encodeMessage({}))
      alerts.start()
      setpoints.start()
      // Frames go out as updates arrive (LiveHub.apply); these rounds send what is still pending
      // once the processor has gone quiet, so a last change is never held back.
      timers.push(setInterval(() => live.tick(), options.liveFlushIntervalMs ?? 100))
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
      for (const connection of connections) connection.close(1001, 'server shutting down')
      await queries.close()
      await app.close()
    },
  }
}
