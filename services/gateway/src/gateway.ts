import { randomBytes } from 'node:crypto'
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
  decodeLiveBatch,
  decodeMessage,
  encodeMessage,
  LIVE_FILTER,
  QueryClient,
  SETPOINTS_SYNC_TOPIC,
  SETPOINTS_TOPIC,
  type SetpointEvents,
  type Unsubscribe,
} from '@plantwatt/bus'
import type { Alert, SetpointEvent } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify'
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
import { LiveInterestAnnouncer } from './live-interest.ts'
import { registerAdminRoutes } from './routes-admin.ts'
import { registerAsyncApiRoute } from './routes-asyncapi.ts'
import { registerDataRoutes } from './routes-data.ts'
import { registerDeviceNameRoutes } from './routes-device-names.ts'
import { registerEventRoutes } from './routes-events.ts'
import { registerReportRoutes } from './routes-reports.ts'
import { WsAdmission } from './ws-admission.ts'
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
  /**
   * HTTP requests (and /ws upgrades) per minute per verified token, or per address without a valid
   * one (default 1200).
   */
  httpRequestsPerMinute?: number
  /** /mqtt upgrades per minute per address (default 6000). */
  mqttUpgradesPerMinute?: number
  heartbeatIntervalMs?: number
  liveFlushIntervalMs?: number
  /**
   * This gateway's instance id towards the processor (its live interests are its own, issue 14);
   * default: random at each start, so a restarted gateway's old interests simply expire.
   */
  instanceId?: string
  /** The processor forgets this gateway's live interests after this long without a word (default 30 s). */
  liveInterestLeaseMs?: number
  /** How often that lease is renewed (default a third of it). */
  liveInterestHeartbeatMs?: number
  ackWaitMs?: number
  now?: () => number
}

export interface Gateway {
  readonly app: FastifyInstance
  readonly live: LiveHub
  readonly instanceId: string
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
  const instanceId = options.instanceId ?? `gw-${randomBytes(6).toString('hex')}`
  const live: LiveHub = new LiveHub({ plant, onWatchChange: (scope) => interest.touch(scope) })
  const interest = new LiveInterestAnnouncer({
    bus,
    logger,
    gateway: instanceId,
    watched: () => live.watchedScopes(),
    isWatched: (scope) => live.isWatched(scope),
    leaseMs: options.liveInterestLeaseMs,
    heartbeatMs: options.liveInterestHeartbeatMs,
  })
  const buckets = new BucketHub()
  const queries = await QueryClient.open(bus)
  const connections = new Set<WsConnection>()
  const admission = new WsAdmission(limits)
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
    closeConnectionsOf(tokenId) {
      for (const connection of connections) {
        if (connection.tokenId === tokenId) connection.close(1008, 'token revoked')
      }
    },
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
  // The rate limits run as the first onRequest hook of every route (issue 12 finding 6): before
  // the token check, so a flood of bad tokens is refused with 429 like any other, and on the
  // upgrade requests of /ws and /mqtt. @fastify/rate-limit keeps its keys in an LRU of 5,000.
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) => ({
      statusCode: 429,
      message: `too many requests: at most ${context.max} a minute, retry in ${context.after}`,
    }),
    onExceeded: (request, key) => {
      counters.httpRateLimited()
      logger.debug({ key: key.split(':')[0], ip: request.ip, url: request.url.split('?')[0] }, 'rate limited')
    },
  })
  const apiLimit = app.rateLimit({
    max: options.httpRequestsPerMinute ?? 1200,
    timeWindow: 60_000,
    // Per verified token (many operators may share one NAT address); everything else per address,
    // so that each random guess does not get an allowance of its own.
    keyGenerator: (request) => {
      const token = presentedToken(request, true)
      const principal = token === undefined ? undefined : tokens.verify(token)
      return principal ? `token:${principal.id}` : `address:${request.ip}`
    },
  })
  // MQTT over WebSocket has no token: devices are limited per address, with an allowance of their
  // own (NB-IoT fleets share operator NAT addresses; authentication is the broker's, §4).
  const mqttLimit = app.rateLimit({
    max: options.mqttUpgradesPerMinute ?? 6000,
    timeWindow: 60_000,
    keyGenerator: (request) => `mqtt:${request.ip}`,
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
  // After @fastify/websocket's own onRequest hook, which marks upgrades so that a refused one has
  // its socket destroyed once answered.
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?', 1)[0]!
    if (path === '/mqtt') return mqttLimit.call(app, request, reply)
    if ((path.startsWith('/api/') && path !== '/api/v1/openapi.json') || path === '/ws')
      return apiLimit.call(app, request, reply)
  })
  // API answers are per token and some carry secrets (the 201 with a new token): no browser or
  // proxy cache may keep them (issue 12 finding 18). onSend sees every answer, errors and 429s too.
  app.addHook('onSend', async (request, reply) => {
    if (request.url.startsWith('/api/')) reply.header('cache-control', 'no-store')
  })

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
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger())
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
  registerReportRoutes(app, context, guards.viewer)
  registerEventRoutes(app, context, guards)
  registerAdminRoutes(app, context, guards.admin)
  registerDeviceNameRoutes(app, context, guards.admin)

  // Past a token's or an address's connection limit the upgrade is refused with 429 (issue 12
  // finding 16); admit() checks again once upgraded, as upgrades run concurrently.
  const refuseOverLimit = async (request: FastifyRequest, reply: FastifyReply) => {
    const refused = admission.refusal(request.principal!.id, request.ip)
    if (refused === undefined) return
    counters.httpRateLimited()
    logger.info({ tokenId: request.principal!.id, ip: request.ip }, 'websocket refused: connection limit')
    return reply.code(429).send(errorBody('rate_limited', refused))
  }
  app.get(
    '/ws',
    { websocket: true, onRequest: [requireRole(tokens, 'viewer', true), refuseOverLimit], schema: { hide: true } },
    (socket, request) => {
      const principal = request.principal!
      // The token may have been revoked while the upgrade was under way (after its check).
      if (!tokens.has(principal.id)) return socket.close(1008, 'token revoked')
      const place = admission.admit(principal.id, request.ip)
      if ('refused' in place) {
        counters.httpRateLimited()
        return socket.close(1008, place.refused)
      }
      socket.on('close', place.release)
      const connection = new WsConnection({
        socket,
        principal,
        quota: admission.quota(principal.id),
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
    instanceId,
    async start() {
      unsubscribes.push(
        await bus.subscribe(LIVE_FILTER, (_topic, payload) => live.apply(decodeLiveBatch(payload))),
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
      // Tell the processor what this gateway watches (nothing yet, unless restarted in place), and
      // ask for the held events, so the first snapshot and the first `since` are complete.
      await interest.start()
      alerts.start()
      setpoints.start()
      // Frames go out as updates arrive (LiveHub.apply), or the moment the one-a-second guard
      // lets them (its own timer); these rounds send what a client that was behind missed.
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
      live.close()
      await interest.stop()
      for (const unsubscribe of unsubscribes.splice(0)) await unsubscribe()
      for (const connection of connections) connection.close(1001, 'server shutting down')
      await queries.close()
      await app.close()
    },
  }
}
