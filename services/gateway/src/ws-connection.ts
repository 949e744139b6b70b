import { type ErrorCode, type ErrorFrame, parseClientFrame, type SubscribeRequest } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'
import type { TokenRecord } from '@plantwatt/runtime'
import type { Logger } from 'pino'
import type { WebSocket } from 'ws'
import { mayAccessScope } from './access.ts'
import type { LiveHub, LiveSubscription } from './live-hub.ts'

export interface WsConnectionOptions {
  socket: WebSocket
  principal: TokenRecord
  plant: PlantIndex
  live: LiveHub
  logger: Logger
  /** Bytes buffered for this client above which live frames are skipped (newest wins later). */
  maxBufferedBytes: number
  maxSubscriptions: number
}

/** Client frames are a few hundred bytes; the server's payload limit is larger because /mqtt shares it. */
const MAX_FRAME_CHARS = 16 * 1024

/** One operator's WebSocket (CONTRACT.md §5): its subscriptions and its frames. */
export class WsConnection {
  private readonly subscriptions = new Map<string, LiveSubscription>()
  private alive = true

  constructor(private readonly options: WsConnectionOptions) {
    const { socket } = options
    socket.on('message', (data, isBinary) => this.onMessage(isBinary ? undefined : data.toString()))
    socket.on('pong', () => {
      this.alive = true
    })
    socket.on('close', () => this.dispose())
    socket.on('error', (error) => options.logger.debug({ err: error }, 'websocket error'))
  }

  /** Liveness round: a client that did not answer the previous ping is dropped. */
  heartbeat(): void {
    if (!this.alive) {
      this.options.socket.terminate()
      return
    }
    this.alive = false
    this.options.socket.ping()
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
      this.options.live.unsubscribe(subscription)
      this.subscriptions.delete(frame.id)
      return this.send({ type: 'unsubscribed', id: frame.id })
    }
    this.subscribe(frame)
  }

  private subscribe(request: SubscribeRequest): void {
    const { plant, principal } = this.options
    if (this.subscriptions.has(request.id)) {
      return this.sendError(request.id, 'duplicate_id', `subscription "${request.id}" exists`)
    }
    if (this.subscriptions.size >= this.options.maxSubscriptions) {
      return this.sendError(request.id, 'rate_limited', `at most ${this.options.maxSubscriptions} subscriptions`)
    }
    if (!plant.scope(request.scope)) {
      return this.sendError(request.id, 'unknown_scope', `no scope "${request.scope}" in the plant`)
    }
    if (!mayAccessScope(principal, request.scope)) {
      return this.sendError(request.id, 'forbidden', `this token may not see "${request.scope}"`)
    }
    if (request.channel !== 'live') {
      // Alerts, setpoint events and buckets come with the processor and gateway issues (#5, #6).
      return this.sendError(request.id, 'not_available', `the ${request.channel} channel is not served yet`)
    }
    const subscription: LiveSubscription = {
      id: request.id,
      scope: request.scope,
      sink: { send: (text) => this.sendLive(text) },
      sentVersion: -1,
      lastSentAt: 0,
    }
    this.subscriptions.set(request.id, subscription)
    this.send({ type: 'subscribed', id: request.id })
    this.options.live.subscribe(subscription)
  }

  private sendLive(text: string): boolean {
    const { socket } = this.options
    if (socket.readyState !== socket.OPEN || socket.bufferedAmount > this.options.maxBufferedBytes) return false
    socket.send(text)
    return true
  }

  private sendError(id: string | undefined, code: ErrorCode, message: string): void {
    const frame: ErrorFrame = id === undefined ? { type: 'error', code, message } : { type: 'error', id, code, message }
    this.send(frame)
  }

  private send(frame: object): void {
    const { socket } = this.options
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(frame))
  }

  private dispose(): void {
    for (const subscription of this.subscriptions.values()) this.options.live.unsubscribe(subscription)
    this.subscriptions.clear()
  }
}
