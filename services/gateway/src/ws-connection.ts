import { randomBytes } from 'node:crypto'
import type { Alert, ErrorCode, ErrorFrame, SetpointEvent, SubscribeRequest } from '@plantwatt/contract'
import { parseClientFrame } from '@plantwatt/contract'
import { isWithinScope, type PlantIndex } from '@plantwatt/plant'
import type { TokenRecord } from '@plantwatt/runtime'
import type { Logger } from 'pino'
import type { WebSocket } from 'ws'
import { mayAccessScope } from './access.ts'
import type { BucketHub } from './bucket-hub.ts'
import type { EventReplica, HeldEvent } from './event-replica.ts'
import type { LiveHub, LiveSubscription } from './live-hub.ts'
import { EventSubscription, QueueSubscription, type ReliableSource } from './reliable-sources.ts'
import { TokenBucket } from './token-bucket.ts'
import type { SubscriptionQuota, WsAdmissionLimits } from './ws-admission.ts'

export interface WsLimits extends WsAdmissionLimits {
  /** Bytes buffered for a client above which no more reliable frames are written until it drains. */
  highWaterBytes: number
  /** Bytes buffered above which live frames are skipped (the newest wins in a later round). */
  liveHighWaterBytes: number
  /** Bucket frames waiting for one slow subscription before its client is closed with 1013. */
  maxQueuedBucketBytes: number
  maxSubscriptions: number
  /** Subscribe requests: a burst, then so many per second (CONTRACT.md §4 rate limits). */
  subscribeBurst: number
  subscribePerSecond: number
  /** A client closed with 1013 that does not finish the close handshake is cut after this. */
  closeTimeoutMs: number
  /**
   * Every incoming frame (text, binary, ping, pong): a burst, then so many per second; past it the
   * connection is closed with 1008 (issue 12 finding 7). Above the subscribe limit, so that a
   * client refused for subscribing too fast gets its rate_limited errors first.
   */
  frameBurst: number
  framesPerSecond: number
  /**
   * Control frames (subscribed, unsubscribed, errors) waiting while the client's buffer is above
   * the high-water mark; one more closes the connection with 1013.
   */
  maxQueuedControlFrames: number
}

export const DEFAULT_WS_LIMITS: WsLimits = {
  highWaterBytes: 256 * 1024,
  liveHighWaterBytes: 64 * 1024,
  maxQueuedBucketBytes: 1024 * 1024,
  maxSubscriptions: 200,
  subscribeBurst: 50,
  subscribePerSecond: 10,
  closeTimeoutMs: 5000,
  frameBurst: 200,
  framesPerSecond: 50,
  maxQueuedControlFrames: 64,
  // One operator's screens share a token; a control room shares an address (issue 12 finding 16).
  maxConnectionsPerToken: 20,
  maxConnectionsPerAddress: 100,
  maxSubscriptionsPerToken: 500,
}

export interface WsCounters {
  lagClosed(): void
  floodClosed(): void
  rateLimited(): void
  badFrame(): void
}

export interface WsConnectionOptions {
  socket: WebSocket
  principal: TokenRecord
  /** The token's subscription places, shared with its other connections. */
  quota: SubscriptionQuota
  plant: PlantIndex
  live: LiveHub
  alerts: EventReplica<Alert>
  setpoints: EventReplica<SetpointEvent>
  buckets: BucketHub
  logger: Logger
  limits: WsLimits
  counters: WsCounters
  now?: () => number
}

/** Reliable frames written per turn of the event loop for one connection (see pump). */
const FRAMES_PER_TURN = 256

/** Client frames are a few hundred bytes; the server's payload limit is larger because /mqtt shares it. */
const MAX_FRAME_CHARS = 16 * 1024

type Subscription = { kind: 'live'; live: LiveSubscription } | { kind: 'reliable'; source: ReliableSource }

/** The socket of ws carries the net.Socket whose 'drain' says the client took what was buffered. */
type WithNetSocket = { _socket?: NodeJS.EventEmitter }

const alertFrame = (sub: string, held: HeldEvent<Alert>) =>
  `{"type":"alert","sub":${JSON.stringify(sub)},"seq":${held.seq},"alert":${held.json}}`
const setpointFrame = (sub: string, held: HeldEvent<SetpointEvent>) =>
  `{"type":"setpoint","sub":${JSON.stringify(sub)},"seq":${held.seq},"event":${held.json}}`

/**
 * One operator's WebSocket (CONTRACT.md §5): its subscriptions and its frames. Live frames are
 * written only while the socket's buffer is small (they coalesce); reliable frames are pulled from
 * their sources while it is below the high-water mark, and the rest wait in the sources.
 */
export class WsConnection {
  private readonly subscriptions = new Map<string, Subscription>()
  private readonly reliable = new Set<ReliableSource>()
  private readonly subscribeRate: TokenBucket
  private readonly frameRate: TokenBucket
  /** Control frames waiting for the client's buffer to fall below the high-water mark. */
  private readonly control: string[] = []
  private alive = true
  /** The payload of the last heartbeat ping: only a pong echoing it shows the client reads. */
  private pingPayload: Buffer | undefined
  private pumping = false
  private pumpScheduled = false
  private waitingForDrain = false
  private closing = false

  constructor(private readonly options: WsConnectionOptions) {
    const { socket, limits } = options
    this.subscribeRate = new TokenBucket(limits.subscribeBurst, limits.subscribePerSecond, options.now ?? Date.now)
    this.frameRate = new TokenBucket(limits.frameBurst, limits.framesPerSecond, options.now ?? Date.now)
    socket.on('message', (data, isBinary) => {
      if (this.admitFrame()) this.onMessage(isBinary ? undefined : data.toString())
    })
    socket.on('ping', () => this.admitFrame())
    socket.on('pong', (data) => {
      if (!this.admitFrame()) return
      // A pong nobody asked for proves nothing: the ping sits behind everything queued for the
      // client, so only a client that read all of it can echo its payload.
      if (this.pingPayload?.equals(data)) this.alive = true
    })
    socket.on('close', () => this.dispose())
    socket.on('error', (error) => options.logger.debug({ err: error }, 'websocket error'))
  }

  /** The id of the token the connection was opened with. */
  get tokenId(): string {
    return this.options.principal.id
  }

  /** Bytes written to this client and not yet taken by it (its queue depth). */
  get bufferedBytes(): number {
    return this.options.socket.bufferedAmount
  }

  /** Liveness round: a client that did not answer the previous ping is dropped. */
  heartbeat(): void {
    if (!this.alive) {
      this.options.socket.terminate()
      return
    }
    this.alive = false
    this.pingPayload = randomBytes(8)
    this.options.socket.ping(this.pingPayload)
  }

  /** Closes the connection, e.g. when the server shuts down (1001 going away). */
  close(code: number, reason: string): void {
    this.closeWith(code, reason)
  }

  /** Counts an incoming frame; false (and the connection closing with 1008) past the frame rate. */
  private admitFrame(): boolean {
    if (this.closing) return false
    if (this.frameRate.take()) return true
    this.options.counters.floodClosed()
    this.options.logger.info({ tokenId: this.tokenId }, 'websocket closed: too many frames')
    this.closeWith(1008, 'too many frames')
    return false
  }

  private onMessage(text: string | undefined): void {
    if (text === undefined) return this.sendError(undefined, 'bad_frame', 'frames must be JSON text')
    if (text.length > MAX_FRAME_CHARS) return this.sendError(undefined, 'bad_frame', 'frame too large')
    const parsed = parseClientFrame(text)
    if (!parsed.ok) return this.sendError(parsed.id, 'bad_frame', parsed.message)
    const frame = parsed.frame
    if (frame.op === 'unsubscribe') {
      const subscription = this.subscriptions.get(frame.id)
      if (!subscription) return this.sendError(frame.id, 'unknown_id', `no subscription "${frame.id}"`)
      this.remove(frame.id, subscription)
      return this.send({ type: 'unsubscribed', id: frame.id })
    }
    this.subscribe(frame)
  }

  private subscribe(request: SubscribeRequest): void {
    const { plant, principal, limits } = this.options
    if (!this.subscribeRate.take()) {
      this.options.counters.rateLimited()
      return this.sendError(
        request.id,
        'rate_limited',
        `at most ${limits.subscribePerSecond} subscribe requests a second`,
      )
    }
    if (this.subscriptions.has(request.id)) {
      return this.sendError(request.id, 'duplicate_id', `subscription "${request.id}" exists`)
    }
    if (this.subscriptions.size >= limits.maxSubscriptions) {
      return this.sendError(request.id, 'rate_limited', `at most ${limits.maxSubscriptions} subscriptions`)
    }
    if (!plant.scope(request.scope)) {
      return this.sendError(request.id, 'unknown_scope', `no scope "${request.scope}" in the plant`)
    }
    if (!mayAccessScope(principal, request.scope)) {
      return this.sendError(request.id, 'forbidden', `this token may not see "${request.scope}"`)
    }
    if (!this.options.quota.take()) {
      this.options.counters.rateLimited()
      return this.sendError(request.id, 'rate_limited', `at most ${this.options.quota.limit} subscriptions per token`)
    }
    this.send({ type: 'subscribed', id: request.id })
    switch (request.channel) {
      case 'live':
        return this.subscribeLive(request)
      case 'alerts':
        return this.addReliable(request.id, this.eventSubscription(request, this.options.alerts, alertFrame))
      case 'setpoints':
        return this.addReliable(request.id, this.eventSubscription(request, this.options.setpoints, setpointFrame))
      case 'buckets':
        return this.subscribeBuckets(request)
    }
  }

  private subscribeLive(request: SubscribeRequest): void {
    const live: LiveSubscription = {
      id: request.id,
      scope: request.scope,
      sink: { ready: () => this.mayTakeLive(), send: (text) => this.options.socket.send(text) },
      sentVersion: -1,
      lastSentAt: 0,
    }
    this.subscriptions.set(request.id, { kind: 'live', live })
    this.options.live.subscribe(live)
  }

  private eventSubscription<T extends { scope: string }>(
    request: SubscribeRequest,
    replica: EventReplica<T>,
    frame: (sub: string, held: HeldEvent<T>) => string,
  ): ReliableSource {
    return new EventSubscription<T>({
      id: request.id,
      replica,
      within: (scope) => isWithinScope(scope, request.scope),
      frame,
      since: request.since,
      wake: () => this.pump(),
    })
  }

  private subscribeBuckets(request: SubscribeRequest): void {
    let unsubscribe = () => {}
    const queue = new QueueSubscription(
      this.options.limits.maxQueuedBucketBytes,
      () => this.pump(),
      () => unsubscribe(),
    )
    unsubscribe = this.options.buckets.subscribe(request.scope, request.step!, {
      id: request.id,
      push: (f) => queue.push(f),
    })
    this.addReliable(request.id, queue)
  }

  private addReliable(id: string, source: ReliableSource): void {
    this.subscriptions.set(id, { kind: 'reliable', source })
    this.reliable.add(source)
    this.pump()
  }

  private remove(id: string, subscription: Subscription): void {
    this.subscriptions.delete(id)
    this.options.quota.release()
    if (subscription.kind === 'live') this.options.live.unsubscribe(subscription.live)
    else {
      subscription.source.dispose()
      this.reliable.delete(subscription.source)
    }
  }

  /**
   * Writes reliable frames, one per source in turn, while the socket's buffer is below the
   * high-water mark; then waits for the socket to drain. At most FRAMES_PER_TURN frames per turn of
   * the event loop, so that one client's replay of 10,000 events (which the kernel's socket buffer
   * takes at once) does not hold every other client up. A source that lagged closes the connection.
   */
  private pump(): void {
    if (this.closing) return
    if (this.waitingForDrain) {
      // New events while the client is not reading: it may have fallen behind what is held.
      for (const source of this.reliable) if (source.checkLag()) return this.closeLagging()
      return
    }
    if (this.pumping || this.pumpScheduled) return
    const { socket, limits } = this.options
    this.pumping = true
    try {
      let sent = 0
      let progress = true
      while (progress && socket.readyState === socket.OPEN) {
        progress = false
        // Control frames first, in order, under the same high-water mark as the rest.
        while (this.control.length > 0) {
          if (socket.bufferedAmount >= limits.highWaterBytes) return this.waitForDrain()
          socket.send(this.control.shift()!)
          sent++
        }
        for (const source of this.reliable) {
          if (socket.bufferedAmount >= limits.highWaterBytes) return this.waitForDrain()
          if (sent >= FRAMES_PER_TURN) return this.schedulePump()
          const frame = source.next()
          if (source.lagged) return this.closeLagging()
          if (frame !== undefined) {
            socket.send(frame)
            sent++
            progress = true
          }
        }
      }
    } finally {
      this.pumping = false
    }
  }

  private schedulePump(): void {
    this.pumpScheduled = true
    setImmediate(() => {
      this.pumpScheduled = false
      this.pump()
    })
  }

  private closeLagging(): void {
    this.options.counters.lagClosed()
    this.closeWith(1013, 'too far behind: resume with since')
  }

  private waitForDrain(): void {
    const net = (this.options.socket as unknown as WithNetSocket)._socket
    if (!net || this.waitingForDrain) return
    this.waitingForDrain = true
    net.once('drain', () => {
      this.waitingForDrain = false
      this.pump()
    })
  }

  private closeWith(code: number, reason: string): void {
    if (this.closing) return
    this.closing = true
    const { socket, limits } = this.options
    socket.close(code, reason)
    // A stalled client never reads the close frame: cut it, so its buffer is freed.
    setTimeout(() => socket.terminate(), limits.closeTimeoutMs).unref()
  }

  /**
   * Live frames only while the client's buffer is small: behind, it gets the newest later. Never
   * ahead of a waiting control frame (a `subscribed` comes before its first live frame).
   */
  private mayTakeLive(): boolean {
    const { socket, limits } = this.options
    return (
      !this.closing &&
      this.control.length === 0 &&
      socket.readyState === socket.OPEN &&
      socket.bufferedAmount <= limits.liveHighWaterBytes
    )
  }

  private sendError(id: string | undefined, code: ErrorCode, message: string): void {
    if (code === 'bad_frame') this.options.counters.badFrame()
    const frame: ErrorFrame = id === undefined ? { type: 'error', code, message } : { type: 'error', id, code, message }
    this.send(frame)
  }

  /**
   * Control frames (subscribed, unsubscribed, errors): at most one per admitted client frame, and
   * written by pump under the high-water mark like reliable frames (issue 12 finding 7). A client
   * that lets more than maxQueuedControlFrames wait is not reading: closed with 1013.
   */
  private send(frame: object): void {
    const { socket, limits } = this.options
    if (this.closing || socket.readyState !== socket.OPEN) return
    if (this.control.length >= limits.maxQueuedControlFrames) return this.closeLagging()
    this.control.push(JSON.stringify(frame))
    this.pump()
  }

  private dispose(): void {
    for (const [id, subscription] of this.subscriptions) this.remove(id, subscription)
  }
}
