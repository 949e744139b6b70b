// A light MQTT 3.1.1 session engine: thousands of device sessions in one process, each its own
// TCP connection, client id and password (CONTRACT.md §4), without an mqtt.js client per device.
// A session is one small object; packets are built and parsed with mqtt-packet; one timer drives
// connect pacing, reconnect backoff, publishing, keep-alive and timeouts for every session.

import { connect as netConnect, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { deriveDevicePassword, deviceTopic } from '@plantwatt/contract'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { DueQueue } from './due-queue.ts'
import { createLatencyHistogram, type LatencyHistogram, recordMs } from './latency.ts'
import { fourRecordPack, type PayloadFactory } from './payload.ts'
import { type BrokerAddress, emptyStats, type FleetDevice, type SessionStats } from './types.ts'

export interface SessionEngineOptions {
  devices: readonly FleetDevice[]
  /** Sessions go to these round-robin by index, unless a device names its broker. */
  brokers: readonly BrokerAddress[]
  /** PLANTWATT_DEVICE_SECRET: each session's password is derived from it. */
  deviceSecret: string
  /**
   * Local addresses to bind, round-robin per connect attempt. One source address has about
   * 28,000 ephemeral ports, so more sessions than that need several (127.0.0.2, 127.0.0.3, …).
   */
  localAddresses?: readonly string[]
  /** Each session publishes once per interval, sessions spread evenly over it. Default 1000. */
  intervalMs?: number
  /** Default 1. */
  qos?: 0 | 1
  /** Default 60. PINGREQ goes out after half of it without another packet. */
  keepaliveS?: number
  /** Clean session flag of CONNECT. Default true. */
  clean?: boolean
  /** New TCP connections opened per second, reconnects included. Default 1000. */
  connectRatePerS?: number
  /** Connections waiting for CONNACK at once. Default 200. */
  maxConnectsInFlight?: number
  /** A connection without CONNACK after this long is closed and retried. Default 10,000. */
  connectTimeoutMs?: number
  /** Reconnect delay: jittered exponential backoff from `initialMs` doubling up to `maxMs`. */
  backoff?: { initialMs: number; maxMs: number }
  /** QoS 1 publishes a session may have without PUBACK; its turn is skipped beyond. Default 8. */
  maxInflightPerSession?: number
  /** A QoS 1 publish without PUBACK after this long is counted and forgotten. Default 30,000. */
  ackTimeoutMs?: number
  /** Publish as soon as sessions connect (default) or only after setPublishing(true). */
  publishing?: boolean
  /** Period of the engine's one timer. Default 20 ms. */
  tickMs?: number
  payload?: PayloadFactory
  /**
   * Driven mode: the engine publishes nothing of its own; the caller hands each session its
   * messages with send() (the plant simulation, a replay). A message waits in its session's
   * outbox while the session is not connected or has `maxInflightPerSession` unacknowledged; a
   * QoS 1 message whose connection drops before its PUBACK is sent again (DUP) after the
   * reconnect, as a device does. Default false.
   */
  driven?: boolean
  /**
   * Driven mode: most messages one outbox holds (a device's buffer); beyond, the oldest waiting
   * is dropped and counted in `outboxDropped`. Default 10,000. The caller bounds the sum over
   * every session with backlog() / onlineBacklog(): this cap only keeps one session that cannot
   * send (offline, or a connection the broker stopped reading) from taking the whole budget.
   */
  maxOutboxPerSession?: number
  /**
   * When given, each session subscribes to its `down` topic (QoS 1) after every CONNACK, and
   * every PUBLISH it receives is handed here (after its PUBACK is sent).
   */
  onDownlink?: (device: FleetDevice, payload: Buffer) => void
  /** Wall clock in epoch ms (payload times, stats times). */
  now?: () => number
  random?: () => number
}

const WAITING = 0
const CONNECTING = 1
const CONNECTED = 2
const STOPPED = 3

// Why we closed a socket ourselves, so its 'close' is not counted as a connect error as well.
const CLOSE_NONE = 0
const CLOSE_COUNTED = 1

/**
 * Bytes a session's socket may hold unsent before its publishes are skipped. Besides this, a
 * write that returns false (the socket's own high-water mark, `writableNeedDrain`) stops the
 * session's publishing until 'drain': a broker that stops reading costs at most one buffer's
 * worth per session, never a growing queue in Node's socket.
 */
const MAX_BUFFERED_BYTES = 64 * 1024
/** A broker sends a device small packets; a bigger one means the stream is garbage. */
const MAX_INCOMING_PACKET_BYTES = 1024 * 1024
/** Each session is looked at by the keep-alive/timeout sweep about once in this period. */
const SWEEP_PERIOD_MS = 1000
/** Distinct socket error codes kept in the stats; a run never sees more than a handful. */
const MAX_ERROR_CODES = 32

/** A driven-mode message waiting in, or sent from, a session's outbox. */
interface Outgoing {
  topic: string
  payload: Buffer
  /** 0 until first sent; then its packet id (kept for the DUP resend after a reconnect). */
  messageId: number
  sentAtPerf: number
  /** The caller's event time of the message (simulated seconds), NaN if not given. */
  atS: number
}

const PINGREQ = mqttPacket.generate({ cmd: 'pingreq' })
const DISCONNECT = mqttPacket.generate({ cmd: 'disconnect' })

class Session {
  state = WAITING
  socket: Socket | null = null
  /** Bytes of an incomplete packet, carried to the next 'data' chunk. */
  pending: Buffer | null = null
  attempts = 0
  closeReason = CLOSE_NONE
  startedAt = 0
  startedAtPerf = 0
  lastSentAt = 0
  pingSentAt = 0
  nextPacketId = 1
  seq = 0
  /** Packet ids and send times (performance.now) of QoS 1 publishes awaiting PUBACK, oldest first. */
  inflightIds: number[] | null = null
  inflightAt: number[] | null = null
  /** Driven mode: messages not yet acknowledged, oldest first; the first `sent` are in flight. */
  outbox: Outgoing[] | null = null
  sent = 0

  constructor(
    readonly index: number,
    readonly device: FleetDevice,
    readonly topic: string,
    readonly broker: BrokerAddress,
  ) {}
}

export class SessionEngine {
  /** Publish → PUBACK latency. */
  readonly latency: LatencyHistogram = createLatencyHistogram()
  /** TCP connect start → CONNACK 0 latency. */
  readonly connectLatency: LatencyHistogram = createLatencyHistogram()

  private readonly sessions: Session[]
  private readonly counters: SessionStats
  private readonly waiting = new DueQueue()
  private connectQueue: number[] = []
  private connectQueueHead = 0
  private readonly parser = mqttPacket.parser({ protocolVersion: 4 })
  private current: Session | null = null
  private timer: NodeJS.Timeout | undefined
  private tokens = 0
  private lastTickAt = 0
  private publishing: boolean
  private publishStartAt = 0
  private publishCursor = 0
  private sweepCursor = 0
  private addressCursor = 0
  private openSockets = 0
  private stopping = false
  private stopped: Promise<SessionStats> | undefined

  private readonly secret: string
  private readonly localAddresses: readonly string[]
  private intervalMs: number
  private readonly qos: 0 | 1
  private readonly keepaliveS: number
  private readonly clean: boolean
  private readonly connectRatePerS: number
  private readonly connectBurst: number
  private readonly maxConnectsInFlight: number
  private readonly connectTimeoutMs: number
  private readonly backoff: { initialMs: number; maxMs: number }
  private readonly maxInflight: number
  private readonly ackTimeoutMs: number
  private readonly tickMs: number
  private readonly payload: PayloadFactory
  private readonly driven: boolean
  private readonly maxOutbox: number
  private readonly onDownlink: ((device: FleetDevice, payload: Buffer) => void) | undefined
  private readonly now: () => number
  private readonly random: () => number

  constructor(options: SessionEngineOptions) {
    if (options.brokers.length === 0) throw new RangeError('at least one broker address is needed')
    this.secret = options.deviceSecret
    this.localAddresses = options.localAddresses ?? []
    this.intervalMs = positive('intervalMs', options.intervalMs ?? 1000)
    this.qos = options.qos ?? 1
    this.keepaliveS = options.keepaliveS ?? 60
    this.clean = options.clean ?? true
    this.connectRatePerS = positive('connectRatePerS', options.connectRatePerS ?? 1000)
    this.maxConnectsInFlight = positive('maxConnectsInFlight', options.maxConnectsInFlight ?? 200)
    this.connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs ?? 10_000)
    this.backoff = options.backoff ?? { initialMs: 1000, maxMs: 30_000 }
    this.maxInflight = positive('maxInflightPerSession', options.maxInflightPerSession ?? 8)
    this.ackTimeoutMs = positive('ackTimeoutMs', options.ackTimeoutMs ?? 30_000)
    this.tickMs = positive('tickMs', options.tickMs ?? 20)
    this.payload = options.payload ?? fourRecordPack
    this.driven = options.driven ?? false
    this.maxOutbox = positive('maxOutboxPerSession', options.maxOutboxPerSession ?? 10_000)
    this.onDownlink = options.onDownlink
    this.now = options.now ?? Date.now
    this.random = options.random ?? Math.random
    this.publishing = !this.driven && (options.publishing ?? true)
    // Up to two ticks' worth of connects at once: smooth pacing, yet the rate is reached.
    this.connectBurst = Math.max(1, (2 * this.connectRatePerS * this.tickMs) / 1000)

    const brokers = options.brokers
    this.sessions = options.devices.map((device, index) => {
      const broker = brokers[device.broker ?? index % brokers.length]
      if (!broker) throw new RangeError(`device ${device.id} names broker ${device.broker}, which is not in the list`)
      return new Session(index, device, deviceTopic(device.site, device.id, 'up'), broker)
    })
    this.counters = emptyStats(this.sessions.length)

    this.parser.on('packet', (packet: Packet) => {
      if (this.current) this.onPacket(this.current, packet)
    })
    this.parser.on('error', () => {
      const session = this.current
      this.counters.protocolErrors++
      if (session?.socket) this.closeCounted(session)
    })
  }

  /** Queues every session for connecting and starts the timer. */
  start(): void {
    if (this.timer || this.stopping) return
    const at = this.now()
    this.connectQueue = this.sessions.map((session) => session.index)
    this.lastTickAt = at
    this.tokens = Math.min(this.connectBurst, 1)
    if (this.publishing) this.publishStartAt = at
    this.timer = setInterval(() => this.tick(), this.tickMs)
    // The sockets keep the process alive while sessions exist; the timer alone should not.
    this.timer.unref()
  }

  /**
   * Starts (each session's first publish spread over one interval from now) or stops publishing.
   * `intervalMs`, when given, becomes each session's publish interval from now on, also while
   * publishing: a benchmark raises the offered rate step by step without reconnecting.
   */
  setPublishing(on: boolean, intervalMs?: number): void {
    const at = this.now()
    if (intervalMs !== undefined && intervalMs !== this.intervalMs) {
      this.intervalMs = positive('intervalMs', intervalMs)
      // Rebase so that the turns already taken stay taken: the next session in line publishes
      // next, at the new spacing, rather than the round starting over from session 0.
      if (this.publishing) {
        this.publishStartAt = at - (this.publishCursor * this.intervalMs) / Math.max(1, this.sessions.length)
      }
    }
    if (on === this.publishing) return
    this.publishing = on
    if (on) {
      this.publishStartAt = at
      this.publishCursor = 0
    }
  }

  /**
   * Driven mode: queues one message of session `index` (its position in `devices`) on its `up`
   * or `ack` topic and sends it as soon as the session can. `atS` is the message's event time,
   * for settledBeforeS().
   */
  send(index: number, kind: 'up' | 'ack', payload: Buffer, atS = Number.NaN): void {
    if (!this.driven) throw new Error('send() needs an engine in driven mode')
    const session = this.sessions[index]
    if (!session) throw new RangeError(`no session ${index}`)
    if (this.stopping) return
    const topic = kind === 'up' ? session.topic : deviceTopic(session.device.site, session.device.id, kind)
    session.outbox ??= []
    const outbox = session.outbox
    outbox.push({ topic, payload, messageId: 0, sentAtPerf: 0, atS })
    const c = this.counters
    const online = session.state === CONNECTED
    c.queued++
    if (!online) c.queuedOffline++
    if (outbox.length > this.maxOutbox && outbox.length > session.sent) {
      outbox.splice(session.sent, 1)
      c.queued--
      if (!online) c.queuedOffline--
      c.outboxDropped++
    }
    this.flushOutbox(session)
  }

  /** Driven mode: messages queued or in flight, over every session. */
  backlog(): number {
    return this.counters.queued + this.counters.inflight
  }

  /**
   * Driven mode: the event time before which every message of a connected session has left it
   * (acknowledged, or written at QoS 0): the oldest `atS` still in a connected session's outbox,
   * +Infinity when none waits. Sessions not connected are left out — their messages will be late
   * whatever the caller does, and waiting for them would stall a run on one dead connection.
   * O(sessions): meant for a report every few milliseconds, not for every message.
   */
  settledBeforeS(): number {
    let oldest = Number.POSITIVE_INFINITY
    for (const session of this.sessions) {
      if (session.state !== CONNECTED) continue
      const first = session.outbox?.[0]
      if (first !== undefined && first.atS < oldest) oldest = first.atS
    }
    return oldest
  }

  /**
   * Driven mode: messages queued or in flight in sessions that are connected, i.e. what the
   * brokers have been offered and not yet acknowledged. Messages of sessions not connected are
   * left out: they wait in their own outbox, bounded by `maxOutboxPerSession`.
   */
  onlineBacklog(): number {
    const c = this.counters
    return c.queued - c.queuedOffline + c.inflight
  }

  /** A snapshot of the counters. */
  stats(): SessionStats {
    const c = this.counters
    return { ...c, refused: { ...c.refused }, errors: { ...c.errors }, skipped: { ...c.skipped } }
  }

  /**
   * Stops publishing, waits up to `drainMs` for outstanding PUBACKs, then sends DISCONNECT and
   * waits up to `closeMs` for the broker to close (the broker closing first leaves TIME_WAIT on
   * its side, not on the generator's source ports), and destroys what is left.
   */
  stop(options: { drainMs?: number; closeMs?: number } = {}): Promise<SessionStats> {
    // (Driven mode: outboxes are drained too, within drainMs.)
    this.stopped ??= this.shutdown(options.drainMs ?? 2000, options.closeMs ?? 2000)
    return this.stopped
  }

  private async shutdown(drainMs: number, closeMs: number): Promise<SessionStats> {
    this.publishing = false
    const drainUntil = Date.now() + drainMs
    while (this.backlog() > 0 && Date.now() < drainUntil) await sleep(20)
    this.counters.unackedAtStop = this.counters.inflight
    this.stopping = true
    this.waiting.clear()
    this.connectQueue = []
    this.connectQueueHead = 0
    for (const session of this.sessions) {
      const socket = session.socket
      if (!socket) session.state = STOPPED
      else if (session.state === CONNECTED) socket.write(DISCONNECT)
      else socket.destroy()
    }
    const closeUntil = Date.now() + closeMs
    while (this.openSockets > 0 && Date.now() < closeUntil) await sleep(20)
    for (const session of this.sessions) session.socket?.destroy()
    // 'close' follows destroy() asynchronously; give it a moment, bounded.
    const destroyUntil = Date.now() + 1000
    while (this.openSockets > 0 && Date.now() < destroyUntil) await sleep(10)
    clearInterval(this.timer)
    return this.stats()
  }

  private tick(): void {
    const at = this.now()
    const perf = performance.now()
    const elapsedMs = Math.max(0, at - this.lastTickAt)
    this.lastTickAt = at
    if (this.stopping) return

    // Reconnects whose backoff has passed join the connect queue (at most one per session).
    for (let item = this.waiting.popDue(at); item !== undefined; item = this.waiting.popDue(at)) {
      this.connectQueue.push(item)
    }
    this.tokens = Math.min(this.connectBurst, this.tokens + (elapsedMs * this.connectRatePerS) / 1000)
    const c = this.counters
    while (
      this.tokens >= 1 &&
      c.connecting < this.maxConnectsInFlight &&
      this.connectQueueHead < this.connectQueue.length
    ) {
      this.tokens--
      const session = this.sessions[this.connectQueue[this.connectQueueHead++]!]!
      this.open(session, at, perf)
    }
    if (this.connectQueueHead > 1024 && this.connectQueueHead * 2 > this.connectQueue.length) {
      this.connectQueue = this.connectQueue.slice(this.connectQueueHead)
      this.connectQueueHead = 0
    }

    const n = this.sessions.length
    if (n === 0) return
    if (this.publishing) {
      // Session k of n publishes at start + k/n of each interval: an even spread, and each
      // session exactly one interval after its previous turn.
      const target = Math.floor(((at - this.publishStartAt) * n) / this.intervalMs)
      if (target - this.publishCursor > n) {
        c.skipped.late += target - this.publishCursor - n
        this.publishCursor = target - n
      }
      while (this.publishCursor < target) {
        this.publish(this.sessions[this.publishCursor % n]!, at, perf)
        this.publishCursor++
      }
    }

    const sweepCount = Math.min(n, Math.ceil((n * this.tickMs) / SWEEP_PERIOD_MS))
    for (let i = 0; i < sweepCount; i++) {
      this.sweep(this.sessions[this.sweepCursor]!, at, perf)
      this.sweepCursor = (this.sweepCursor + 1) % n
    }
  }

  private open(session: Session, at: number, perf: number): void {
    const c = this.counters
    session.state = CONNECTING
    session.startedAt = at
    session.startedAtPerf = perf
    session.closeReason = CLOSE_NONE
    session.pending = null
    c.connecting++
    c.connectAttempts++
    if (c.firstConnectAt === 0) c.firstConnectAt = at
    const localAddress =
      this.localAddresses.length > 0
        ? this.localAddresses[this.addressCursor++ % this.localAddresses.length]
        : undefined
    const socket = netConnect({
      host: session.broker.host,
      port: session.broker.port,
      localAddress,
      noDelay: true,
    })
    session.socket = socket
    this.openSockets++
    socket.on('connect', () => {
      if (session.socket !== socket) return
      const id = session.device.id
      const packet = mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: this.clean,
        clientId: id,
        keepalive: this.keepaliveS,
        username: id,
        // Derived on each connect rather than kept: 64 bytes per session add up at 40,000.
        password: Buffer.from(deriveDevicePassword(this.secret, id), 'utf8'),
      })
      socket.write(packet)
      c.bytesOut += packet.length
    })
    socket.on('data', (chunk: Buffer) => this.onData(session, socket, chunk))
    socket.on('error', (error: NodeJS.ErrnoException) => this.countError(error.code ?? 'unknown'))
    socket.on('close', () => this.onClose(session, socket))
    if (this.driven) {
      socket.on('drain', () => {
        if (session.socket === socket) this.flushOutbox(session)
      })
    }
  }

  private onData(session: Session, socket: Socket, chunk: Buffer): void {
    if (session.socket !== socket) return
    this.counters.bytesIn += chunk.length
    let buffer = chunk
    if (session.pending) {
      buffer = Buffer.concat([session.pending, chunk])
      session.pending = null
    }
    const end = buffer.length
    let offset = 0
    // Frame packets here (fixed header + remaining length) and hand each complete one to the
    // engine's single mqtt-packet parser: no parser object per session, and the parser never
    // holds a partial packet of one session while another's arrives.
    while (end - offset >= 2) {
      let length = 0
      let multiplier = 1
      let position = offset + 1
      let complete = false
      for (let i = 0; i < 4 && position < end; i++) {
        const byte = buffer[position++]!
        length += (byte & 0x7f) * multiplier
        multiplier *= 128
        if ((byte & 0x80) === 0) {
          complete = true
          break
        }
      }
      if (!complete) {
        if (position - offset - 1 >= 4) return this.protocolError(session)
        break
      }
      if (length > MAX_INCOMING_PACKET_BYTES) return this.protocolError(session)
      const packetEnd = position + length
      if (packetEnd > end) break
      this.current = session
      this.parser.parse(buffer.subarray(offset, packetEnd))
      this.current = null
      if (session.socket !== socket) return
      offset = packetEnd
    }
    // Copied, so a large chunk is not kept alive by the few bytes of a partial packet.
    if (offset < end) session.pending = Buffer.from(buffer.subarray(offset))
  }

  private onPacket(session: Session, packet: Packet): void {
    const c = this.counters
    switch (packet.cmd) {
      case 'connack': {
        if (session.state !== CONNECTING) return
        if (packet.returnCode === 0) {
          const at = this.now()
          session.state = CONNECTED
          session.attempts = 0
          session.lastSentAt = at
          session.pingSentAt = 0
          c.connecting--
          c.connected++
          c.connects++
          c.lastConnackAt = at
          recordMs(this.connectLatency, performance.now() - session.startedAtPerf)
          if (c.allConnectedAt === 0 && c.connected === c.sessions) c.allConnectedAt = at
          // What waited while offline is now the brokers' to take.
          if (session.outbox !== null) c.queuedOffline -= session.outbox.length - session.sent
          if (this.onDownlink) this.subscribeDown(session)
          if (this.driven) this.flushOutbox(session)
        } else {
          const code = String(packet.returnCode ?? 'unknown')
          c.refused[code] = (c.refused[code] ?? 0) + 1
          this.closeCounted(session)
        }
        return
      }
      case 'puback':
        if (this.driven) return this.acknowledgeOutbox(session, packet.messageId ?? -1)
        return this.acknowledge(session, packet.messageId ?? -1)
      case 'pingresp':
        session.pingSentAt = 0
        return
      case 'publish': {
        c.received++
        if (packet.qos === 1 && packet.messageId !== undefined && session.socket) {
          const puback = mqttPacket.generate({ cmd: 'puback', messageId: packet.messageId })
          session.socket.write(puback)
          c.bytesOut += puback.length
        }
        this.onDownlink?.(session.device, packet.payload as Buffer)
        return
      }
      default:
        return
    }
  }

  private publish(session: Session, at: number, perf: number): void {
    const c = this.counters
    const socket = session.socket
    if (session.state !== CONNECTED || !socket) {
      c.skipped.notConnected++
      return
    }
    if (session.inflightIds !== null && session.inflightIds.length >= this.maxInflight) {
      c.skipped.inflightFull++
      return
    }
    if (socket.writableNeedDrain || socket.writableLength > MAX_BUFFERED_BYTES) {
      c.skipped.backpressure++
      return
    }
    const payload = this.payload(session.device, session.seq++, at)
    let messageId: number | undefined
    if (this.qos === 1) {
      messageId = session.nextPacketId
      session.nextPacketId = messageId === 65_535 ? 1 : messageId + 1
    }
    const packet = mqttPacket.generate({
      cmd: 'publish',
      topic: session.topic,
      payload,
      qos: this.qos,
      dup: false,
      retain: false,
      messageId,
    })
    socket.write(packet)
    c.bytesOut += packet.length
    c.published++
    session.lastSentAt = at
    if (messageId !== undefined) {
      session.inflightIds ??= []
      session.inflightAt ??= []
      session.inflightIds.push(messageId)
      session.inflightAt.push(perf)
      c.inflight++
    }
  }

  /** Driven mode: writes what the session may send now, oldest first. */
  private flushOutbox(session: Session): void {
    const outbox = session.outbox
    const socket = session.socket
    if (outbox === null || session.state !== CONNECTED || !socket) return
    const c = this.counters
    const perf = performance.now()
    while (session.sent < outbox.length && session.sent < this.maxInflight) {
      if (socket.writableNeedDrain || socket.writableLength > MAX_BUFFERED_BYTES) {
        // A write returned false (or the buffer is past our own bound): resumed by 'drain'.
        c.skipped.backpressure++
        return
      }
      const item = outbox[session.sent]!
      const resend = item.messageId !== 0
      let messageId: number | undefined
      if (this.qos === 1) {
        messageId = session.nextPacketId
        session.nextPacketId = messageId === 65_535 ? 1 : messageId + 1
      }
      const packet = mqttPacket.generate({
        cmd: 'publish',
        topic: item.topic,
        payload: item.payload,
        qos: this.qos,
        dup: resend,
        retain: false,
        messageId,
      })
      socket.write(packet)
      c.bytesOut += packet.length
      c.published++
      c.queued--
      if (resend) c.resent++
      session.lastSentAt = this.now()
      if (messageId === undefined) {
        outbox.shift()
        continue
      }
      item.messageId = messageId
      item.sentAtPerf = perf
      session.sent++
      c.inflight++
    }
  }

  private acknowledgeOutbox(session: Session, messageId: number): void {
    const outbox = session.outbox
    if (outbox === null) return
    let k = 0
    while (k < session.sent && outbox[k]!.messageId !== messageId) k++
    if (k === session.sent) return
    const item = outbox[k]!
    outbox.splice(k, 1)
    session.sent--
    this.counters.inflight--
    this.counters.acked++
    recordMs(this.latency, performance.now() - item.sentAtPerf)
    this.flushOutbox(session)
  }

  private subscribeDown(session: Session): void {
    const socket = session.socket
    if (!socket) return
    const messageId = session.nextPacketId
    session.nextPacketId = messageId === 65_535 ? 1 : messageId + 1
    const packet = mqttPacket.generate({
      cmd: 'subscribe',
      messageId,
      subscriptions: [{ topic: deviceTopic(session.device.site, session.device.id, 'down'), qos: 1 }],
    })
    socket.write(packet)
    this.counters.bytesOut += packet.length
  }

  private acknowledge(session: Session, messageId: number): void {
    const ids = session.inflightIds
    if (ids === null) return
    const k = ids.indexOf(messageId)
    if (k < 0) return
    const sentAt = session.inflightAt![k]!
    ids.splice(k, 1)
    session.inflightAt!.splice(k, 1)
    this.counters.inflight--
    this.counters.acked++
    recordMs(this.latency, performance.now() - sentAt)
  }

  /** Timeouts and keep-alive for one session; each session comes round about once a second. */
  private sweep(session: Session, at: number, perf: number): void {
    const c = this.counters
    if (session.state === CONNECTING) {
      if (at - session.startedAt > this.connectTimeoutMs) {
        c.connectTimeouts++
        this.closeCounted(session)
      }
      return
    }
    if (session.state !== CONNECTED || !session.socket) return
    const keepaliveMs = this.keepaliveS * 1000
    if (session.pingSentAt !== 0 && at - session.pingSentAt > keepaliveMs) {
      c.pingTimeouts++
      session.socket.destroy()
      return
    }
    if (keepaliveMs > 0 && session.pingSentAt === 0 && at - session.lastSentAt >= keepaliveMs / 2) {
      session.socket.write(PINGREQ)
      c.bytesOut += PINGREQ.length
      c.pings++
      session.pingSentAt = at
      session.lastSentAt = at
    }
    const times = session.inflightAt
    if (!this.driven && times !== null && times.length > 0 && perf - times[0]! > this.ackTimeoutMs) {
      let expired = 0
      while (expired < times.length && perf - times[expired]! > this.ackTimeoutMs) expired++
      times.splice(0, expired)
      session.inflightIds!.splice(0, expired)
      c.inflight -= expired
      c.ackTimeouts += expired
    }
  }

  private onClose(session: Session, socket: Socket): void {
    this.openSockets--
    if (session.socket !== socket) return
    const c = this.counters
    session.socket = null
    session.pending = null
    if (session.state === CONNECTING) {
      c.connecting--
      if (session.closeReason === CLOSE_NONE && !this.stopping) c.connectErrors++
    } else if (session.state === CONNECTED) {
      c.connected--
      if (!this.stopping) c.disconnects++
    }
    if (session.sent > 0) {
      // Driven mode: what was in flight waits again, to be resent (DUP) after the reconnect.
      c.inflight -= session.sent
      c.queued += session.sent
      session.sent = 0
    }
    if (session.state === CONNECTED && session.outbox !== null) c.queuedOffline += session.outbox.length
    const lost = session.inflightIds?.length ?? 0
    if (lost > 0) {
      c.inflight -= lost
      if (!this.stopping) c.inflightLost += lost
      session.inflightIds = null
      session.inflightAt = null
    }
    session.closeReason = CLOSE_NONE
    if (this.stopping) {
      session.state = STOPPED
      return
    }
    // Jittered exponential backoff ("equal jitter"): a broker restart is not met by every
    // device at the same instant, and a refusing broker is not hammered.
    session.state = WAITING
    session.attempts++
    const cap = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.min(30, session.attempts - 1))
    this.waiting.push(this.now() + cap / 2 + (this.random() * cap) / 2, session.index)
  }

  /** Closes a session's socket for a reason already counted. */
  private closeCounted(session: Session): void {
    session.closeReason = CLOSE_COUNTED
    session.socket?.destroy()
  }

  private protocolError(session: Session): void {
    this.counters.protocolErrors++
    this.closeCounted(session)
  }

  private countError(code: string): void {
    const errors = this.counters.errors
    if (errors[code] !== undefined) errors[code]++
    else if (Object.keys(errors).length < MAX_ERROR_CODES) errors[code] = 1
  }
}

function positive(name: string, value: number): number {
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`${name} must be a positive number, got ${value}`)
  return value
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
