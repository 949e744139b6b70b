import { EventEmitter } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { type AddressInfo, createServer, type Server } from 'node:net'
import type { Duplex } from 'node:stream'
import {
  type Bus,
  createAedesBus,
  type InternalRole,
  internalMayPublish,
  internalMaySubscribe,
  internalRoleOf,
} from '@plantwatt/bus'
import { DEVICE_ID_PATTERN, deviceTopic, parseDeviceTopic } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'
import { Aedes, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes'
import { BufferList, BufferListStream } from 'bl'
import type { Logger } from 'pino'
import { Registry } from 'prom-client'
import { DevicePolicy } from './device-policy.ts'
import { InternalSessionBound, type QueueSubscriber } from './internal-sessions.ts'
import { type BrokerLimits, DEFAULT_BROKER_LIMITS } from './limits.ts'
import { LoginGuard, type LoginGuardOptions } from './login-guard.ts'
import { BrokerMetrics, type DropReason, type RefusalReason } from './metrics.ts'
import { PacketFramer } from './packet-framer.ts'
import { type PacerClock, PublishPacer, realClock } from './publish-pacer.ts'
import { purgeRetained, type RetainedStore } from './retained.ts'
import { TokenBucket } from './token-bucket.ts'

/** Limits to change from their defaults; `login` too may name only some of its options. */
export type BrokerLimitOptions = Partial<Omit<BrokerLimits, 'login'>> & { login?: Partial<LoginGuardOptions> }

export interface BrokerOptions {
  plant: PlantIndex
  deviceSecret: string
  /**
   * PLANTWATT_INTERNAL_SECRET: the key of plantwatt's own MQTT clients (split-mode processor and
   * gateway, docs/broker.md); unset, it is derived from the device secret.
   */
  internalSecret?: string
  logger: Logger
  limits?: BrokerLimitOptions
  /** Where the metrics go; the gateway serves it at /metrics. */
  registry?: Registry
  /** aedes persistence (sessions, queued QoS 1 downlinks): in memory unless given (Redis, level). */
  persistence?: unknown
  /** aedes emitter: in process unless given (mqemitter-redis for a cluster). */
  mq?: unknown
  /** A stable broker id, for a cluster. */
  id?: string
  /**
   * aedes' heartbeat, ms (default 60 s): brokers of a cluster announce themselves this often, and
   * the wills a broker left behind are published once it has been silent for three heartbeats
   * (checked every four). Tests shorten it.
   */
  heartbeatIntervalMs?: number
  /** Wall clock, ms. */
  now?: () => number
  /**
   * Where device uplinks are made durable before aedes acknowledges them (the ingest journal of
   * `plantwatt up`): an accepted QoS 1 reading is then on disk before its PUBACK, so a crash
   * cannot lose it (see packages/runtime/src/ingest-journal.ts). A failed append refuses the
   * publish, and the device sends it again.
   */
  uplinkJournal?: { append(topic: string, payload: Buffer, done: (error: Error | null) => void): void }
  /**
   * False: a device's uplink taken by the fast path is journaled and acknowledged, not published
   * through aedes (its emitter, the store's offline subscriptions). For a broker where nobody can
   * subscribe to an uplink and the journal is its one reader: a broker worker of `plantwatt up
   * --workers N` (no internal secret, so no internal clients; devices subscribe only to their own
   * `down`). Only with `uplinkJournal`; default true.
   */
  deliverUplinks?: boolean
  /**
   * Asked before a command on a device's own `down` topic is written to it, live or from its
   * stored session: false drops it (and clears it from the session). `plantwatt up --workers N`
   * (issue 16) keeps the pending downlinks with the site owner and every worker's session store
   * may hold a copy of one already delivered through another worker: only those still pending go.
   */
  forwardDownlink?: (deviceId: string, topic: string, payload: Buffer) => boolean
}

export interface Broker {
  /** The in-process bus on this broker, for co-located processor and gateway. */
  readonly bus: Bus
  readonly metrics: BrokerMetrics
  readonly loginGuard: LoginGuard
  /**
   * Emits `dropped` (reason, address) for every connection the broker closes for a rule or limit;
   * `deviceSession` (deviceId, clean) when a device's session is up here; `deviceReady` (deviceId) when a device's session is up here or it subscribes to its `down`
   * topic (a queued command may be sent to it now); `downlinkAcked` (deviceId, topic, payload)
   * when a device acknowledges (PUBACK) a command on its `down` topic.
   */
  readonly events: EventEmitter
  /** Sessions connected now. */
  connectedCount(): number
  /** True while the device has a session connected to this broker, subscribed to its `down` topic. */
  isDeviceReady(deviceId: string): boolean
  listen(options: { host: string; port: number }): Promise<number>
  /** Serves one connection from any duplex stream: MQTT over WebSocket (/mqtt), tests. */
  handleStream(stream: Duplex, address: string, request?: IncomingMessage): void
  /**
   * Stops taking devices' uplinks (QoS 1 on their own `up` topic, the fast path) until
   * resumeReading: each waits as parsed, not journaled and not acknowledged, so its device waits
   * for its PUBACK. For a broker whose uplinks' reader lags (a worker of `plantwatt up --workers
   * N` whose primary has not applied what it forwarded).
   */
  pauseReading(): void
  resumeReading(): void
  close(): Promise<void>
}

/**
 * What the broker keeps per connection, beside aedes' own client. Held by every idle session
 * (40,000 of them, issue 16), so what only some connections need is made on first use: the
 * publish pacer (a device's first publish), the subscribe budget and the subscription set (its
 * first SUBSCRIBE). A token bucket made then starts as full as one made at the connect would
 * still be, so the limits of CONTRACT.md §4 hold exactly as before.
 */
class Connection {
  readonly framer: PacketFramer
  private pacer: PublishPacer | undefined
  private subscribeBudget: TokenBucket | undefined
  /** The filters this client holds, bound by maxSubscriptionsPerClient; made at its first SUBSCRIBE. */
  subscriptions: Set<string> | undefined
  rawClientIdEmpty = false
  /** The will of the CONNECT, checked against the device rules once the client is known. */
  willTopic: string | undefined
  /** The keep-alive of the CONNECT, seconds; 0 means none, and the broker's idle limit applies. */
  keepaliveS = -1
  /** When bytes last arrived (ms): the idle limit's and the keep-alive's clock. */
  lastReadAt: number
  /**
   * True once the broker's sweep, not an aedes timer, watches this session's keep-alive
   * (adoptKeepalive): from its clientReady, for a keep-alive above 0.
   */
  keepaliveOnSweep = false
  internal = false
  /**
   * A device's own `up` topic, set once it has logged in: the one topic its fast-path publishes
   * may name (the device rules of CONTRACT.md §4, decided once per session, not per packet).
   */
  uplinkTopic: string | undefined = undefined
  /** The role of plantwatt's own client; undefined for a device. */
  internalRole: InternalRole | undefined = undefined
  /** Its client id once authenticated, counted in the broker's local internal presence. */
  internalClientId: string | undefined = undefined
  connected = false
  dropped = false
  /**
   * Message ids of uplinks acknowledged in this turn whose PUBACKs are not written yet (the
   * uplink fast path writes them together at the end of the turn); made at the first uplink and
   * reused, so an idle session holds none.
   */
  pendingAcks: number[] | undefined = undefined
  /** True while this connection is in the broker's list of those with PUBACKs to write. */
  acksQueued = false

  constructor(
    readonly stream: Duplex,
    readonly address: string,
    private readonly limits: BrokerLimits,
    now: number,
    private readonly clock: PacerClock,
  ) {
    this.lastReadAt = now
    this.framer = new PacketFramer(limits.maxPacketBytes)
  }

  get publishes(): PublishPacer {
    this.pacer ??= new PublishPacer(
      this.limits.publishRatePerS,
      this.limits.publishBurst,
      this.limits.maxQueuedPublishes,
      this.clock,
      (slowedMs) => {
        // Slowed time is not the client's: its packet timer and idle clock stand still.
        this.framer.standStill(slowedMs)
        this.lastReadAt += slowedMs
      },
    )
    return this.pacer
  }

  /** True while publishes wait for the client's rate: its socket is not being read. */
  get slowed(): boolean {
    return this.pacer?.slowed ?? false
  }

  get subscribeRequests(): TokenBucket {
    this.subscribeBudget ??= new TokenBucket(
      this.limits.subscribeRatePerS,
      this.limits.subscribeBurst,
      this.clock.now(),
    )
    return this.subscribeBudget
  }

  /** The socket closed: what waits is forgotten. */
  close(): void {
    this.pacer?.close()
  }
}

const WILL_REFUSED = 'will not allowed by the device rules'

/** What the persistences store on a will (aedes-persistence putWill): who set it, on which broker. */
interface StoredWill {
  clientId?: string
  brokerId?: string
}

interface WillStore {
  delWill(client: { id: string; brokerId?: string }): Promise<unknown>
}

/**
 * A will, rather than a PUBLISH read from the device: the client's own will at an unclean close,
 * or one read back from the store (the persistences stamp those with the broker that took them).
 */
function isWill(client: Client, packet: PublishPacket): boolean {
  return packet === (client as Client & { will?: unknown }).will || typeof (packet as StoredWill).brokerId === 'string'
}

/** aedes refreshes a client's keep-alive timer as it handles each packet (lib/handlers/index.js). */
function refreshKeepalive(client: Client): void {
  ;(client as Client & { _keepaliveTimer?: NodeJS.Timeout | null })._keepaliveTimer?.refresh()
}

/**
 * What the uplink fast path uses of an aedes 1.2 client (lib/client.js; aedes is pinned): its
 * packet parser, the count of packets of the current socket read still being handled (aedes reads
 * the socket again once it is back to 0, which is what paces a client), and the function that
 * takes one handled packet off that count.
 */
interface AedesClient extends Client {
  _parser: EventEmitter & { client: AedesClient; _list: unknown; _states: readonly string[] }
  _parsingBatch: number
  /** Removes aedes' stream.finished listeners from the socket (lib/client.js). */
  _eos: () => void
  _nextBatch: (error?: Error | null) => void
  _keepaliveInterval: number
  _keepaliveTimer: NodeJS.Timeout | null
  connackSent: boolean
  connecting: boolean
  waitForDrain(callback: (error: Error | null) => void): void
}

function noop(): void {}

/**
 * Listeners shared by every connection, in place of those aedes 1.2 binds per client
 * (lib/client.js: `conn.on('error', this.emit.bind(this, 'error'))`, `conn.on('end',
 * this.close.bind(this))`, the parser's `on('error', this.emit.bind(this, 'error'))`): the same
 * calls, found through the `client` property aedes sets on the socket and on the parser, without
 * three bound functions per idle session.
 */
function onConnError(this: Duplex & { client?: AedesClient }, error: Error): void {
  this.client?.emit('error', error)
}
function onConnEnd(this: Duplex & { client?: AedesClient }): void {
  this.client?.close()
}
function onParserError(this: { client?: AedesClient }, error: Error): void {
  this.client?.emit('error', error)
}

/** Replaces the one listener of `event` aedes bound as `bound <name>` with `shared`; else leaves it. */
function shareListener(
  emitter: EventEmitter,
  event: string,
  boundName: string,
  shared: (...args: never[]) => void,
): void {
  const mine = emitter.listeners(event).filter((listener) => listener.name === `bound ${boundName}`)
  if (mine.length !== 1) return
  emitter.removeListener(event, mine[0] as (...args: unknown[]) => void)
  emitter.on(event, shared as (...args: unknown[]) => void)
}

/**
 * mqtt-packet's parser makes an array of its four state names per parser (parser.js `_states`);
 * one copy serves them all: the parser only reads it.
 */
const PARSER_STATES = Object.freeze(['_parseHeader', '_parseLength', '_parsePayload', '_newPacket'])

/** A device's `down` topic from its `up` topic (the same site and device). */
function downTopicOf(uplinkTopic: string): string {
  return `${uplinkTopic.slice(0, -'up'.length)}down`
}

/** aedes keeps a client's subscriptions by filter (lib/client.js `subscriptions`). */
function hasDownSubscription(client: Client, connection: { uplinkTopic: string | undefined }): boolean {
  if (connection.uplinkTopic === undefined) return false
  const subscriptions = (client as Client & { subscriptions?: Record<string, unknown> }).subscriptions
  return subscriptions?.[downTopicOf(connection.uplinkTopic)] !== undefined
}

/**
 * Replaces each aedes client's `duplicates` map (aedes 1.2 lib/client.js `dedupe`): aedes drops a
 * message for a client whose broker counter is not above the highest it already delivered to it
 * from that broker. Counters are taken when a publish starts, but with a session store that
 * answers asynchronously (LevelDB, Redis) a QoS 1 message waits for its store write before it is
 * emitted, so messages reach the emitter out of counter order, and every one overtaken was
 * dropped: a split-mode processor lost 1–7 of 300 acknowledged readings in most runs, a gateway
 * could lose a QoS 1 alert overtaken by QoS 0 live figures. Without the check delivery is what
 * MQTT QoS 1 promises, at least once: a message both replayed from a resumed session and emitted
 * live may come twice, which every receiver of plantwatt's already tolerates (readings are
 * deduplicated by device, measurement and time; events by seq). One shared object: stores nothing.
 */
const AT_LEAST_ONCE: Record<string, number> = new Proxy(Object.create(null) as Record<string, number>, {
  set: () => true,
})

type ParsedPacket = { cmd: string; qos?: number; topic?: string }

/**
 * The PUBACKs for `messageIds` (MQTT 3.1.1 §3.4: type 4, remaining length 2, the id), in order, in
 * one buffer: one write for all of them.
 */
function pubacksBytes(messageIds: number[]): Buffer {
  const bytes = Buffer.allocUnsafe(4 * messageIds.length)
  for (let k = 0, at = 0; k < messageIds.length; k++, at += 4) {
    const messageId = messageIds[k]!
    bytes[at] = 0x40
    bytes[at + 1] = 0x02
    bytes[at + 2] = messageId >> 8
    bytes[at + 3] = messageId & 0xff
  }
  return bytes
}

/** Bytes a connection has written: a TCP socket counts them; other streams report 0. */
function bytesWritten(stream: Duplex): number {
  return (stream as Duplex & { bytesWritten?: number }).bytesWritten ?? 0
}

function refusal(message: string, returnCode: 2 | 3 | 4 | 5): AuthenticateError {
  const error = new Error(message) as AuthenticateError
  error.returnCode = returnCode
  return error
}

/**
 * The MQTT broker: aedes with the device rules and limits of CONTRACT.md §4 injected as hooks,
 * and a packet framer in front of each connection for the limits aedes 1.x lacks (packet size,
 * unfinished packets).
 */
export async function createBroker(options: BrokerOptions): Promise<Broker> {
  const { plant, logger } = options
  const limits: BrokerLimits = Object.freeze({
    ...DEFAULT_BROKER_LIMITS,
    ...options.limits,
    login: Object.freeze({ ...DEFAULT_BROKER_LIMITS.login, ...options.limits?.login }),
  })
  const now = options.now ?? Date.now
  const policy = new DevicePolicy(plant, options.deviceSecret, options.internalSecret)
  const loginGuard = new LoginGuard(limits.login)
  const connections = new Map<Duplex, Connection>()
  let storedSessions = async () => 0
  const metrics = new BrokerMetrics(
    options.registry ?? new Registry(),
    () => {
      let total = 0
      for (const stream of connections.keys()) total += bytesWritten(stream)
      return total
    },
    () => storedSessions(),
  )
  const pacerClock = realClock(now)
  const connectRate = new TokenBucket(limits.connectRatePerS, limits.connectBurst, now())
  // plantwatt's own clients on this broker, from authentication to the socket's close (a takeover
  // briefly counts two): at most one entry per internal client id, a handful.
  const localInternal = new Map<string, number>()
  let connectedCount = 0
  let closing = false
  const events = new EventEmitter()

  const drop = (connection: Connection | undefined, reason: DropReason, detail: object = {}) => {
    if (!connection || connection.dropped) return
    connection.dropped = true
    metrics.dropped(reason)
    events.emit('dropped', reason, connection.address)
    logger.warn({ address: connection.address, reason, ...detail }, 'dropping MQTT connection')
    connection.stream.destroy()
  }

  /** A device's publish that passed the rules and its rate: its retain flag cleared, counted. */
  const countDevicePublish = (packet: PublishPacket) => {
    if (packet.retain) {
      // Cleared rather than refused (CONTRACT.md §4 leaves the choice): MQTT 3.1.1 can refuse a
      // PUBLISH only by closing the connection, and a device whose library sets retain would
      // then lose every reading. Cleared, the reading is delivered and never stored.
      packet.retain = false
      metrics.retainCleared.inc()
    }
    metrics.messagesInCount++
  }

  /** A device's publish that passed the rules and its rate: counted, made durable, let through. */
  const acceptDevicePublish = (clientId: string, packet: PublishPacket, done: (error?: Error | null) => void) => {
    countDevicePublish(packet)
    // Acks too: they are received as durably as readings (CONTRACT.md §3), so that a replay
    // after a crash hands the tuner the same answers it had.
    if (options.uplinkJournal && (packet.topic.endsWith('/up') || packet.topic.endsWith('/ack'))) {
      return options.uplinkJournal.append(packet.topic, packet.payload as Buffer, (error) => {
        if (error) {
          metrics.messagesRefused.inc({ reason: 'journal_failed' })
          logger.error({ err: error, clientId }, 'uplink not journaled: refused')
        }
        done(error)
      })
    }
    done(null)
  }

  // plantwatt's own clients get least privilege per role (docs/broker.md). A publish outside it is
  // a bug or a stolen credential: it closes the connection, as a device's would; a filter outside
  // it gets 0x80.
  const refuseInternalPublish = (connection: Connection, clientId: string, topic: string): Error | null => {
    if (connection.internalRole !== undefined && internalMayPublish(connection.internalRole, topic)) return null
    drop(connection, 'foreign_publish', { clientId, topic: topic.slice(0, 200) })
    return new Error('publish not allowed')
  }
  const internalSubscription = (connection: Connection, clientId: string, subscription: Subscription) => {
    if (connection.internalRole !== undefined && internalMaySubscribe(connection.internalRole, subscription.topic)) {
      return subscription
    }
    metrics.foreignSubscriptions.inc()
    logger.warn({ clientId, filter: subscription.topic.slice(0, 200) }, 'internal subscription refused')
    return null
  }

  const aedes = await Aedes.createBroker({
    id: options.id,
    ...(options.heartbeatIntervalMs === undefined ? {} : { heartbeatInterval: options.heartbeatIntervalMs }),
    persistence: options.persistence,
    mq: options.mq,
    connectTimeout: limits.packetTimeoutMs,
    // No keepaliveLimit: aedes answers a keep-alive above it, and 0, with CONNACK 6, a code MQTT
    // 3.1.1 reserves. Every legal value is accepted; the idle limit ends keep-alive-0 sessions.
    maxTopicLevels: limits.maxTopicLevels,
    drainTimeout: limits.drainTimeoutMs,
    maxInflightInbound: limits.maxInflightInbound,
    queueLimit: limits.queueLimit,
    // MQTT 3.1 caps client ids at 23 characters; device ids of CONTRACT.md §1 go to 64.
    maxClientsIdLength: 64,

    preConnect(client, packet, done) {
      ;(client as unknown as { duplicates: Record<string, number> }).duplicates = AT_LEAST_ONCE
      // aedes replaces an empty client id with a random one before authenticate sees it;
      // MQTT-3.1.3-8 and CONTRACT.md §4 say refuse it, so remember it here.
      const connection = connections.get(client.conn as Duplex)
      if (connection) {
        connection.rawClientIdEmpty = packet.clientId === ''
        connection.keepaliveS = packet.keepalive ?? 0
        connection.willTopic = packet.will?.topic
      }
      // plantwatt retains nothing (issue 12 finding 14): a will is never stored as retained either.
      if (packet.will?.retain) {
        packet.will.retain = false
        metrics.retainCleared.inc()
      }
      done(null, true)
    },

    authenticate(client, username, password, done) {
      const at = now()
      const connection = connections.get(client.conn as Duplex)
      const address = connection?.address ?? 'unknown'
      const refuse = (reason: RefusalReason, returnCode: 2 | 3 | 4 | 5, delayMs = 0) => {
        metrics.refused(reason)
        logger.warn({ clientId: client.id.slice(0, 64), address, reason }, 'MQTT connect refused')
        const error = refusal(reason, returnCode)
        if (delayMs <= 0) return done(error, false)
        // Slowing, not locking out: the refusal waits, the address stays welcome.
        setTimeout(() => done(error, false), delayMs).unref()
      }
      if (connection?.rawClientIdEmpty) return refuse('empty_client_id', 2)
      // plantwatt's own clients have their own client-id namespace (host names with dots) and no
      // id lockout: there is no device to protect, and a stranger must not lock the processor out.
      const device = internalRoleOf(username) === undefined
      if (device && !DEVICE_ID_PATTERN.test(client.id)) return refuse('bad_client_id', 2)
      if (connectedCount >= limits.maxConnections) return refuse('too_many_connections', 3)
      // An address past its failed-login budget waits longer for every answer, a success included,
      // but is never refused for it (CONTRACT.md §4: NB-IoT fleets share NAT addresses).
      const admissionDelayMs = loginGuard.admissionDelay(address, at)
      if (device && loginGuard.isLocked(client.id, address, at)) {
        return refuse('locked_out', 5, loginGuard.recordFailure(client.id, address, at))
      }
      const verdict = policy.login(client.id, username, password ?? undefined)
      if (!verdict.ok)
        return refuse(verdict.reason, verdict.returnCode, loginGuard.recordFailure(client.id, address, at, device))
      // A will is a publish made later on the device's behalf (issue 12 finding 1): the rules of
      // CONTRACT.md §4 hold for it too. Refused at CONNECT, so the device learns of it at once.
      // plantwatt's own clients set none, and a stored will cannot be told apart from a device's
      // (its client may be long gone when it is published), so theirs are refused as well.
      const willTopic = connection?.willTopic
      if (willTopic !== undefined && !policy.mayPublish(client.id, willTopic)) {
        return refuse('will_not_allowed', 5)
      }
      if (device) loginGuard.recordSuccess(client.id, address)
      // Known to the plant (policy.login checked it): its own `up` topic, for the fast path.
      if (device && connection) connection.uplinkTopic = deviceTopic(plant.device(client.id)!.siteId, client.id, 'up')
      // The broker-wide connect rate is charged for successful logins only, so failed ones can
      // never use it up (CONTRACT.md §4); a success past it is still told to come back later.
      if (!connectRate.take(at)) return refuse('connect_rate', 3, admissionDelayMs)
      if (connection) {
        connection.internal = verdict.role !== undefined
        connection.internalRole = verdict.role
        if (verdict.role !== undefined) {
          // Present from here, before aedes restores the session's subscriptions.
          connection.internalClientId = client.id
          localInternal.set(client.id, (localInternal.get(client.id) ?? 0) + 1)
        }
      }
      if (admissionDelayMs <= 0) return done(null, true)
      setTimeout(() => done(null, true), admissionDelayMs).unref()
    },

    authorizePublish(client, packet, done) {
      // plantwatt's own publishes (the bus) go straight to aedes.publish and are never asked here.
      // aedes asks with client null for a will left by a broker that stopped uncleanly, and with a
      // client for its will at an unclean close or for a stored will of a device that has since
      // reconnected here: every will is held to the device rules, never trusted.
      if (client === null || isWill(client, packet)) return authorizeWill(client, packet, done)
      const connection = connections.get(client.conn as Duplex)
      if (connection?.internal) return done(refuseInternalPublish(connection, client.id, packet.topic))
      if (!policy.mayPublish(client.id, packet.topic)) {
        drop(connection, 'foreign_publish', { clientId: client.id, topic: packet.topic.slice(0, 200) })
        return done(new Error('publish not allowed'))
      }
      if (!connection) return acceptDevicePublish(client.id, packet, done)
      const admission = connection.publishes.admit(() => {
        if (connection.dropped) return
        // Handled later than it arrived: the client is alive, so its keep-alive timer (aedes'
        // own, refreshed when a packet is handled) must not run out while it is slowed.
        refreshKeepalive(client)
        acceptDevicePublish(client.id, packet, done)
      })
      if (admission === 'queued') metrics.publishesSlowed.inc()
      else if (admission === 'full') {
        drop(connection, 'publish_flood', { clientId: client.id, queued: limits.maxQueuedPublishes })
        done(new Error('too many publishes waiting'))
      }
    },

    authorizeSubscribe(client, subscription, done) {
      const connection = connections.get(client.conn as Duplex)
      if (connection?.internal) return done(null, internalSubscription(connection, client.id, subscription))
      if (connection && !connection.subscribeRequests.take(now())) {
        drop(connection, 'subscribe_flood', { clientId: client.id })
        return done(new Error('subscription rate exceeded'))
      }
      const held = connection?.subscriptions
      const allowed =
        policy.maySubscribe(client.id, subscription.topic) &&
        connection !== undefined &&
        (held === undefined || held.has(subscription.topic) || held.size < limits.maxSubscriptionsPerClient)
      if (!allowed) {
        metrics.foreignSubscriptions.inc()
        logger.warn({ clientId: client.id, filter: subscription.topic.slice(0, 200) }, 'subscription refused')
        // A null subscription makes aedes answer 0x80 for this filter and keep the connection.
        return done(null, null)
      }
      connection.subscriptions ??= new Set()
      connection.subscriptions.add(subscription.topic)
      done(null, subscription)
    },

    authorizeForward(client, packet) {
      // A second fence for the per-device ACL: a command is only ever delivered to the device
      // it names, whatever a persistence store hands back (aedes keys queued packets by broker
      // id and a counter, and a reused id once delivered one device's command to another).
      if (packet.topic.startsWith('sites/') && !connections.get(client.conn as Duplex)?.internal) {
        const target = parseDeviceTopic(packet.topic)
        if (target?.kind === 'down' && target.deviceId !== client.id) {
          logger.error({ clientId: client.id, topic: packet.topic }, "refused to forward another device's command")
          return null
        }
        if (
          target?.kind === 'down' &&
          options.forwardDownlink &&
          !options.forwardDownlink(client.id, packet.topic, packet.payload as Buffer)
        ) {
          logger.debug({ clientId: client.id, topic: packet.topic }, 'a command no longer pending was not forwarded')
          return null
        }
      }
      metrics.messagesOut.inc()
      return packet
    },
  })

  const purged = await purgeRetained((aedes as unknown as { persistence: RetainedStore }).persistence, 'sites/#')
  if (purged.length > 0) {
    logger.warn(
      { count: purged.length, topics: purged.slice(0, 20) },
      'purged retained messages under sites/# (devices may not retain; see issue 12)',
    )
  }

  const store = (aedes as unknown as { persistence: WillStore }).persistence
  const authorizeWill = (client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void) => {
    const will = packet as PublishPacket & StoredWill
    const clientId = will.clientId ?? client?.id
    // Allowed, a will is a publish of the device's like any other (a reading on `up` is journaled).
    if (clientId !== undefined && policy.mayPublish(clientId, packet.topic)) {
      return acceptDevicePublish(clientId, packet, done)
    }
    metrics.willsRefused.inc()
    logger.warn(
      { clientId: clientId?.slice(0, 64), topic: packet.topic.slice(0, 200), brokerId: will.brokerId },
      'will refused: not on the device’s own up or ack topic',
    )
    // Deleted here: aedes deletes a will only once published, and would offer a refused one again
    // at every sweep. (On LevelDB wills are keyed by client id alone; a device that reconnected
    // here in the same instant has its fresh will checked at its own CONNECT.)
    const forget = clientId === undefined ? Promise.resolve() : store.delWill({ id: clientId, brokerId: will.brokerId })
    forget.then(
      () => done(new Error(WILL_REFUSED)),
      () => done(new Error(WILL_REFUSED)),
    )
  }
  // aedes reports a will it could not publish (or a failed sweep) as a broker 'error'; without a
  // listener the process would crash.
  const aedesEvents: EventEmitter = aedes
  aedesEvents.on('error', (error: Error) => {
    if (error.message === WILL_REFUSED) logger.debug('a stored will was refused and deleted')
    else logger.error({ err: error }, 'aedes error')
  })

  aedes.on('clientReady', (client: Client) => {
    const connection = connections.get(client.conn as Duplex)
    if (connection) {
      connection.connected = true
      adoptKeepalive(client as AedesClient, connection)
    }
    connectedCount++
    metrics.connected.set(connectedCount)
    metrics.connects.inc()
    if (connection?.uplinkTopic === undefined) return
    events.emit('deviceSession', client.id, (client as Client & { clean?: boolean }).clean !== false)
    // A persistent session restored here holds its subscription already.
    if (hasDownSubscription(client, connection)) events.emit('deviceReady', client.id)
  })
  aedes.on('subscribe', (subscriptions: Subscription[], client: Client) => {
    const connection = connections.get(client.conn as Duplex)
    if (connection?.uplinkTopic === undefined) return
    const down = downTopicOf(connection.uplinkTopic)
    if (subscriptions.some((subscription) => subscription.topic === down)) events.emit('deviceReady', client.id)
  })
  // aedes tells of a PUBACK with the stored packet it settles: a clean session stores none (undefined).
  aedes.on('ack', (packet: PublishPacket | { cmd: string } | undefined, client: Client) => {
    if (packet?.cmd !== 'publish') return
    const publish = packet as PublishPacket
    if (parseDeviceTopic(publish.topic)?.kind !== 'down') return
    events.emit('downlinkAcked', client.id, publish.topic, publish.payload)
  })
  aedes.on('clientError', (client: Client, error: Error) => {
    const connection = connections.get(client.conn as Duplex)
    // aedes destroys a client that does not drain in time; count it as a slow consumer.
    if (/drain/i.test(error.message)) drop(connection, 'slow_consumer', { clientId: client.id })
    // The peer went away (a socket error has a code; aedes' own "connection closed" follows one):
    // not the broker's doing.
    else if ((error as NodeJS.ErrnoException).code !== undefined || error.message === 'connection closed') {
      logger.debug({ clientId: client.id, err: error.message }, 'client went away')
    } else if (error.message === 'keep alive timeout') drop(connection, 'keepalive_timeout', { clientId: client.id })
    // Everything else aedes closes a client for is the client's protocol abuse after its CONNECT
    // (a malformed packet, a second CONNECT, a wildcard in a PUBLISH topic, a full queue…).
    else drop(connection, 'protocol_error', { clientId: client.id, err: error.message.slice(0, 200) })
  })
  aedes.on('connectionError', (client: Client, error: Error) => {
    drop(connections.get(client.conn as Duplex), 'protocol_error', { err: error.message })
  })

  // The uplink fast path (issue 16). A device's QoS 1 PUBLISH to its own `up` topic is nearly
  // every packet the broker reads, and aedes' generic route for it costs more than the rest of
  // the broker's work: a series runner, the authorizePublish hook looking the connection up and
  // parsing the topic, then PUBACK through mqtt-packet's generic writer (cork, three writes of
  // header, length and id, uncork on the next tick: one writev of three chunks per PUBACK) and a
  // setImmediate before the publish. Here such a packet is taken off aedes' parser before aedes
  // dispatches it and handled in a straight line, without a closure per packet unless it must
  // wait (its rate or the journal):
  //   - authority was decided at login: the topic must be the device's own `up` topic, a string
  //     compared with one fixed for the session; anything else (its `ack`, a foreign topic, QoS
  //     0 or 2) goes to aedes and authorizePublish as before, where the device rules are applied
  //     and a foreign publish closes the connection;
  //   - the publish rate: the pacer's token is taken directly; over its rate the publish waits in
  //     the pacer exactly as on aedes' route (CONTRACT.md §4: slowed, not dropped);
  //   - the journal (`plantwatt up`): the PUBACK is written only once the record is on disk, and
  //     a failed append refuses the publish as before;
  //   - the PUBACK is queued for the connection's one write of this turn (queuePuback: every
  //     PUBACK of the turn in one buffer); then aedes.publish delivers the message to
  //     subscribers (the bus, split-mode processors, offline persistent sessions) as aedes would;
  //   - aedes' accounting of the socket read is kept: _parsingBatch counts the packet until its
  //     publish is done, so aedes reads no more of a slowed or journal-bound client, as before.
  // Everything else of aedes (sessions, subscriptions, downlinks, wills, keep-alive) is untouched.
  let aedesEnqueue: ((this: unknown, packet: ParsedPacket) => void) | undefined
  const uplinkJournal = options.uplinkJournal
  // Without delivery (options.deliverUplinks), the journal is the uplink's one reader: the
  // publish is done once its PUBACK is queued. Only with a journal, whose callback never runs
  // inside aedes' parse of the socket's bytes, so that reading the device's next packets there
  // (client._nextBatch) does not re-enter the parser.
  const deliverUplinks = options.deliverUplinks !== false || uplinkJournal === undefined
  // aedes.publish takes the publishing client as its second argument (aedes.js publish(packet,
  // client, done), as its own PUBLISH handler calls it); its typings know only (packet, done).
  const publishFrom = aedes.publish.bind(aedes) as unknown as (
    packet: PublishPacket,
    client: Client,
    done: (error?: Error | null) => void,
  ) => void
  // PUBACKs are written once per connection per turn of the event loop, not once per uplink: a
  // device's uplinks read in one chunk (or committed by the journal in one group) are acknowledged
  // in one buffer and one write(2). A write per PUBACK was the largest item of the broker's profile
  // (a syscall each, and on loopback the receiver's TCP work charged to the sender). The ids wait
  // in their connection's array; connections with ids wait in `acking`; one flush for all of them
  // runs on process.nextTick, that is once the read (or the journal's callbacks) now being handled
  // is done, before any I/O: a PUBACK is delayed by no more than the rest of this handler.
  const acking: Connection[] = []
  let ackFlushScheduled = false
  const flushPubacks = () => {
    ackFlushScheduled = false
    for (let k = 0; k < acking.length; k++) {
      const connection = acking[k]!
      const ids = connection.pendingAcks!
      connection.acksQueued = false
      // A socket closed in this turn gets none; its device sends the uplinks again.
      if (!connection.stream.destroyed && ids.length > 0) connection.stream.write(pubacksBytes(ids))
      ids.length = 0
    }
    acking.length = 0
  }
  const queuePuback = (connection: Connection, messageId: number) => {
    connection.pendingAcks ??= []
    connection.pendingAcks.push(messageId)
    if (!connection.acksQueued) {
      connection.acksQueued = true
      acking.push(connection)
    }
    if (!ackFlushScheduled) {
      ackFlushScheduled = true
      process.nextTick(flushPubacks)
    }
  }
  // Uplinks paused (pauseReading): a device's uplink parsed on the fast path waits here, counted
  // in aedes' _parsingBatch, neither journaled nor acknowledged, until resumeReading takes each on
  // as if just parsed. A device waits for its PUBACK before its next uplink, so this holds about
  // one packet per connection; one that floods meets the pacer's bound when taken on. (Holding
  // aedes' socket reads instead, by replacing its 'readable' listener, broke streams that also
  // have a 'data' listener: MQTT over WebSocket through the cluster's proxy.)
  let readingPaused = false
  let heldUplinks: [AedesClient, Connection, PublishPacket][] = []
  const resumeReading = () => {
    if (!readingPaused) return
    readingPaused = false
    const held = heldUplinks
    heldUplinks = []
    for (const [client, connection, publish] of held) {
      if (connection.dropped || client.closed) continue
      takeUplink(client, connection, publish)
    }
  }
  const publishUplink = (client: AedesClient, connection: Connection, packet: PublishPacket) => {
    // As aedes' own write (lib/write.js): a client still restoring its session after its CONNACK
    // is `connecting`; one closed while its publish waited (rate, journal) gets no PUBACK.
    if (!client.connecting && !client.connected) return client._nextBatch(new Error('connection closed'))
    // A device that does not read its PUBACKs is not read either: while its socket's buffer is
    // over the mark, its uplinks wait for the drain (and aedes' drain timeout), as before.
    if (!client.conn.writableNeedDrain) {
      queuePuback(connection, packet.messageId!)
      if (!deliverUplinks) return client._nextBatch()
      return publishFrom(packet, client, client._nextBatch)
    }
    client.waitForDrain((error) => {
      if (error) return client._nextBatch(error)
      queuePuback(connection, packet.messageId!)
      if (!deliverUplinks) return client._nextBatch()
      publishFrom(packet, client, client._nextBatch)
    })
  }
  const acceptUplink = (client: AedesClient, connection: Connection, packet: PublishPacket) => {
    countDevicePublish(packet)
    if (!uplinkJournal) return publishUplink(client, connection, packet)
    // The one closure per uplink left on the fast path: the journal's callback, which must know
    // its packet (the journal keeps no context); it lives until the group commit is on disk.
    uplinkJournal.append(packet.topic, packet.payload as Buffer, (error) => {
      if (!error) return publishUplink(client, connection, packet)
      metrics.messagesRefused.inc({ reason: 'journal_failed' })
      logger.error({ err: error, clientId: client.id }, 'uplink not journaled: refused')
      client._nextBatch(error)
    })
  }
  function onParsedPacket(this: { client: AedesClient }, packet: ParsedPacket): void {
    const client = this.client
    const connection = connections.get(client.conn as Duplex)
    if (
      packet.cmd !== 'publish' ||
      packet.qos !== 1 ||
      connection === undefined ||
      packet.topic !== connection.uplinkTopic ||
      !client.connackSent
    ) {
      return aedesEnqueue!.call(this, packet)
    }
    const publish = packet as PublishPacket
    client._parsingBatch++
    if (readingPaused) {
      heldUplinks.push([client, connection, publish])
      return
    }
    takeUplink(client, connection, publish)
  }
  function takeUplink(client: AedesClient, connection: Connection, publish: PublishPacket): void {
    // No keep-alive timer to refresh: the sweep watches it from lastReadAt (adoptKeepalive).
    if (connection.publishes.tryNow()) return acceptUplink(client, connection, publish)
    const admission = connection.publishes.admit(() => {
      if (connection.dropped) return
      refreshKeepalive(client)
      acceptUplink(client, connection, publish)
    })
    if (admission === 'queued') metrics.publishesSlowed.inc()
    else if (admission === 'full') {
      drop(connection, 'publish_flood', { clientId: client.id, queued: limits.maxQueuedPublishes })
      client._nextBatch(new Error('too many publishes waiting'))
    }
  }
  /**
   * Puts onParsedPacket in front of aedes' own packet listener on a new client's parser, and
   * gives the parser a plain buffer list: mqtt-packet makes a BufferListStream, a whole Duplex
   * stream (its readable and writable states, buffers and listeners, about 0.8 KB of heap per
   * session), of which the parser uses only the list's methods (append, consume, readUInt8,
   * slice, length; mqtt-packet 9.0.2 parser.js, pinned through aedes 1.2.0).
   */
  const adoptClient = (client: AedesClient | undefined) => {
    const parser = client?._parser
    if (!parser) return
    if (parser._list instanceof BufferListStream && parser._list.length === 0) parser._list = new BufferList()
    // aedes watches each socket with stream.finished (seven closures and their context, about
    // 0.5 KB per session) only to close the client once the socket is done; the broker's one
    // 'close' listener does that instead (onStreamClose). aedes' own 'end' and 'error' listeners
    // stay, so a client that ends or errs is closed as soon as before.
    if (typeof client._eos === 'function') {
      client._eos()
      client._eos = noop
    }
    const conn = client.conn as unknown as EventEmitter
    shareListener(conn, 'error', 'emit', onConnError)
    shareListener(conn, 'end', 'close', onConnEnd)
    shareListener(parser, 'error', 'emit', onParserError)
    if (PARSER_STATES.every((state, k) => parser._states[k] === state) && parser._states.length === 4) {
      parser._states = PARSER_STATES
    }
    const listeners = parser.listeners('packet') as ((this: unknown, packet: ParsedPacket) => void)[]
    const enqueue = listeners[0]
    if (listeners.length !== 1 || enqueue === undefined) return
    aedesEnqueue ??= enqueue
    if (enqueue !== aedesEnqueue) return
    parser.removeListener('packet', enqueue)
    parser.on('packet', onParsedPacket)
  }

  /**
   * Moves a session's keep-alive from aedes' timer to the broker's sweep. aedes 1.2 gives every
   * session with a keep-alive its own Timeout and closure (lib/handlers/connect.js setKeepAlive),
   * held for as long as the session lasts, and refreshes that timer for each packet it handles;
   * the sweep already visits every connection each second and knows when its bytes last arrived
   * (lastReadAt), so it closes a session silent for 1.5 × its keep-alive (MQTT-3.1.2-24) the
   * same way aedes did (a 'keep alive timeout' error on the client), at most one sweep later.
   */
  const adoptKeepalive = (client: AedesClient, connection: Connection) => {
    if (client._keepaliveTimer === null || client._keepaliveInterval <= 0) return
    clearTimeout(client._keepaliveTimer)
    client._keepaliveTimer = null
    // aedes refreshes the timer while this is above 0 (lib/handlers/index.js); -1 is its "none".
    client._keepaliveInterval = -1
    connection.keepaliveOnSweep = connection.keepaliveS > 0
  }
  const keepaliveExpired = (connection: Connection) => {
    connection.keepaliveOnSweep = false
    const client = (connection.stream as Duplex & { client?: AedesClient }).client
    if (!client || client.closed) return
    aedes.emit('keepaliveTimeout', client)
    client.emit('error', new Error('keep alive timeout'))
  }

  // One listener of each kind for every connection, rather than closures per connection: each
  // finds its connection by its stream (issue 16, memory per idle session).
  function onStreamClose(this: Duplex): void {
    // Instead of aedes' stream.finished (adoptClient): close() is idempotent.
    ;(this as Duplex & { client?: AedesClient }).client?.close()
    const connection = connections.get(this)
    if (!connection) return
    connection.close()
    connections.delete(this)
    const internalId = connection.internalClientId
    if (internalId !== undefined) {
      const count = localInternal.get(internalId) ?? 0
      if (count > 1) localInternal.set(internalId, count - 1)
      else localInternal.delete(internalId)
    }
    metrics.bytesOutClosed += bytesWritten(this)
    if (connection.connected) {
      connectedCount--
      metrics.connected.set(connectedCount)
    }
  }
  function onStreamData(this: Duplex, chunk: Buffer): void {
    const connection = connections.get(this)
    if (!connection) return
    metrics.bytesInCount += chunk.length
    const at = now()
    connection.lastReadAt = at
    const verdict = connection.framer.push(chunk, at)
    if (verdict === 'too_large') drop(connection, 'packet_too_large', { limit: limits.maxPacketBytes })
    else if (verdict === 'bad_length') drop(connection, 'bad_packet_length')
    else if (verdict === 'bad_type') drop(connection, 'bad_packet_type')
  }

  const handleStream = (stream: Duplex, address: string, request?: IncomingMessage) => {
    if (closing) {
      stream.destroy()
      return
    }
    const connection = new Connection(stream, address, limits, now(), pacerClock)
    connections.set(stream, connection)
    // `on`, not `once`: a stream closes once, and `once` wraps the listener in a bound function
    // and a state object per connection.
    stream.on('close', onStreamClose)
    aedes.handle(stream, request)
    adoptClient((stream as Duplex & { client?: AedesClient }).client)
    // Attached after aedes' 'readable' listener, so it observes each chunk aedes reads without
    // changing how the stream flows; it runs before aedes parses the chunk.
    stream.on('data', onStreamData)
  }

  // One sweep for every connection, rather than a timer per packet or per session: drop those
  // whose current packet has been arriving for longer than the limit (a trickled packet ties up a
  // session), keep-alive-0 sessions silent for the idle limit (CONTRACT.md §4), and sessions
  // silent for 1.5 × their keep-alive (adoptKeepalive).
  const sweep = setInterval(
    () => {
      const at = now()
      for (const connection of connections.values()) {
        // A slowed connection is not being read: its clocks stand still (CONTRACT.md §4).
        if (connection.slowed) continue
        const started = connection.framer.startedAt
        if (started !== 0 && at - started > limits.packetTimeoutMs) drop(connection, 'incomplete_packet')
        else if (connection.keepaliveS === 0 && at - connection.lastReadAt > limits.idleLimitMs) {
          drop(connection, 'idle', { idleLimitMs: limits.idleLimitMs })
        } else if (connection.keepaliveOnSweep && at - connection.lastReadAt > connection.keepaliveS * 1500) {
          keepaliveExpired(connection)
        }
      }
    },
    Math.min(1000, limits.packetTimeoutMs, limits.idleLimitMs),
  )
  sweep.unref()

  const sessionBound = await boundInternalSessions(aedes as unknown as AedesInternals, {
    maxQueued: limits.maxQueuedPerInternalSession,
    isLocal: (clientId) => localInternal.has(clientId),
    localClients: () => [...localInternal.keys()],
    metrics,
    logger,
  })
  aedes.on('client', (client: Client) => sessionBound.localConnected(client.id))
  storedSessions = async () => {
    const counts = await (aedes as unknown as AedesInternals).persistence.countOffline()
    return counts.clientsCount
  }

  const bus = createAedesBus(aedes, (error) => logger.error({ err: error }, 'bus handler failed'))
  const servers: Server[] = []

  return {
    bus,
    metrics,
    loginGuard,
    events,
    connectedCount: () => connectedCount,
    isDeviceReady: (deviceId) => {
      const client = (aedes as unknown as { clients: Record<string, AedesClient | undefined> }).clients[deviceId]
      const connection = client && connections.get(client.conn as Duplex)
      return client?.connected === true && connection !== undefined && hasDownSubscription(client, connection)
    },
    handleStream,
    pauseReading: () => {
      readingPaused = true
    },
    resumeReading,
    async listen({ host, port }) {
      const server = createServer((socket) => {
        // TCP keep-alive finds a peer that vanished (NB-IoT modules in power saving use long MQTT
        // keep-alives, or none) without any traffic of the device's own.
        socket.setKeepAlive(true, limits.tcpKeepAliveMs)
        handleStream(socket, socket.remoteAddress ?? 'unknown')
      })
      // A hard stop above the polite CONNACK refusal, so a flood of raw sockets cannot exhaust
      // the process's descriptors.
      server.maxConnections = limits.maxConnections + 1000
      servers.push(server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => {
          server.off('error', reject)
          resolve()
        })
      })
      return (server.address() as AddressInfo).port
    },
    async close() {
      if (closing) return
      closing = true
      clearInterval(sweep)
      // Stop accepting first, then close the clients, then let the servers finish.
      const closed = servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve())))
      await bus.close()
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
      await Promise.all(closed)
    },
  }
}

/** What boundInternalSessions reaches into: aedes' id, the persistence it uses, and its emitter. */
interface AedesInternals {
  id: string
  persistence: {
    outgoingEnqueueCombi(subscribers: QueueSubscriber[], packet: unknown): Promise<void>
    cleanSubscriptions(client: { id: string }): Promise<unknown>
    countOffline(): Promise<{ clientsCount: number; subsCount: number }>
  }
  subscribe(
    topic: string,
    listener: (packet: { topic: string; payload: Buffer }, done: () => void) => void,
    done: () => void,
  ): void
  publish(packet: { topic: string; payload: Buffer }, done: (error?: Error) => void): void
}

const PRESENCE_REQUEST = 'plantwatt/presence-request'
const PRESENCE = 'plantwatt/presence'

/**
 * Bounds plantwatt's own offline persistent sessions (internal-sessions.ts, issue 12 finding 15).
 * aedes has no hook there: it hands every QoS 1 message with its persistent subscribers to
 * `persistence.outgoingEnqueueCombi`, so that one method of the persistence instance is wrapped to
 * count, and a session at its limit expires (its subscriptions are removed) before the next
 * message is taken. Presence: exact for this broker (`isLocal`, from authentication to the
 * socket's close); for the others of a cluster, from aedes' `$SYS/{broker}/new/clients` and
 * `…/disconnect/clients` announcements, and, at start, from each broker's answer to a presence
 * request (clients that connected before this broker started). `$SYS` topics are out of every
 * client's reach (aedes refuses client publishes there; the ACLs give no client a `$SYS` filter).
 */
async function boundInternalSessions(
  aedes: AedesInternals,
  options: {
    maxQueued: number
    isLocal: (clientId: string) => boolean
    localClients: () => string[]
    metrics: BrokerMetrics
    logger: Logger
  },
): Promise<InternalSessionBound> {
  const { persistence, id: brokerId } = aedes
  const bound = new InternalSessionBound(options.maxQueued, options.isLocal)
  const expire = async (clientId: string) => {
    options.metrics.internalSessionsExpired.inc()
    options.logger.warn(
      { clientId, limit: options.maxQueued },
      'offline internal session reached its queue limit: expired (its subscriptions removed)',
    )
    await persistence.cleanSubscriptions({ id: clientId })
  }
  const enqueue = persistence.outgoingEnqueueCombi.bind(persistence)
  const bounded = async (subscribers: QueueSubscriber[], packet: unknown) => {
    // Not for a session that expired while its owner is away: aedes may still match messages to
    // its subscriptions while they are being removed, and each of those would be queued for it.
    const kept = bound.admit(subscribers)
    // Counted as admitted, before the store's write: aedes queues several messages at once (a
    // plant's devices do not wait for each other), and a count taken after the await let every
    // message admitted meanwhile past the limit.
    const expired = bound.count(kept)
    if (kept.length > 0) await enqueue(kept, packet)
    if (expired.length > 0) await Promise.all(expired.map(expire))
  }
  // aedes asks for every QoS 1 message, each device uplink included, nearly always with no
  // offline subscriber at all: that answer needs no async function, promise or count.
  const nothingQueued = Promise.resolve()
  persistence.outgoingEnqueueCombi = (subscribers, packet) =>
    subscribers.length === 0 ? nothingQueued : bounded(subscribers, packet)

  const listen = (topic: string, onMessage: (from: string, payload: Buffer) => void) =>
    new Promise<void>((resolve) =>
      aedes.subscribe(
        topic,
        (packet, done) => {
          const from = packet.topic.split('/')[1] ?? ''
          if (from !== brokerId) onMessage(from, packet.payload)
          done()
        },
        resolve,
      ),
    )
  const say = (topic: string, payload: string) =>
    aedes.publish({ topic: `$SYS/${brokerId}/${topic}`, payload: Buffer.from(payload) }, () => {})
  await listen('$SYS/+/new/clients', (from, payload) => bound.remoteConnected(from, payload.toString('utf8')))
  await listen('$SYS/+/disconnect/clients', (from, payload) => bound.remoteDisconnected(from, payload.toString('utf8')))
  await listen(`$SYS/+/${PRESENCE_REQUEST}`, () => say(PRESENCE, JSON.stringify(options.localClients())))
  await listen(`$SYS/+/${PRESENCE}`, (from, payload) => {
    let clients: unknown
    try {
      clients = JSON.parse(payload.toString('utf8'))
    } catch {
      return
    }
    if (!Array.isArray(clients)) return
    for (const clientId of clients) if (typeof clientId === 'string') bound.remoteConnected(from, clientId)
  })
  say(PRESENCE_REQUEST, '{}')
  return bound
}
