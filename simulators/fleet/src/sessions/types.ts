/** One simulated device: its MQTT session uses client id = username = `id` (CONTRACT.md §4). */
export interface FleetDevice {
  id: string
  site: string
  /** Index into the engine's broker list; round-robin by session index when absent. */
  broker?: number
}

export interface BrokerAddress {
  host: string
  port: number
}

/** Why sessions were not published on when their turn came. */
export interface SkippedCounts {
  /** The session was not connected (connecting, backing off, refused). */
  notConnected: number
  /** The session already had `maxInflightPerSession` publishes without PUBACK. */
  inflightFull: number
  /** The socket's send buffer was backed up: the broker is not reading. */
  backpressure: number
  /** The engine's timer fell more than one interval behind and skipped a round. */
  late: number
}

/** Counters of one engine, or the sum over worker processes. */
export interface SessionStats {
  sessions: number
  /** Now: sessions with a CONNACK 0 and an open socket. */
  connected: number
  /** Now: sockets opened and waiting for CONNACK. */
  connecting: number
  connectAttempts: number
  /** CONNACK 0 received (first connects and reconnects). */
  connects: number
  /** CONNACK refusals by return code (1–5, MQTT 3.1.1 §3.2.2.3). */
  refused: Record<string, number>
  /** Sockets that failed or closed before any CONNACK. */
  connectErrors: number
  connectTimeouts: number
  /** Connections lost after CONNACK 0, stop excluded. */
  disconnects: number
  /** Socket errors by code (ECONNREFUSED, EADDRNOTAVAIL, ECONNRESET, …). */
  errors: Record<string, number>
  protocolErrors: number
  published: number
  acked: number
  /** Now: QoS 1 publishes without PUBACK. */
  inflight: number
  /** QoS 1 publishes whose connection closed before their PUBACK came. */
  inflightLost: number
  /** QoS 1 publishes given up after `ackTimeoutMs` without PUBACK. */
  ackTimeouts: number
  /** QoS 1 publishes still without PUBACK when stop() gave up waiting. */
  unackedAtStop: number
  /** Driven mode, now: messages waiting in outboxes (not connected, or in-flight window full). */
  queued: number
  /** Driven mode, now: the part of `queued` waiting in sessions that are not connected. */
  queuedOffline: number
  /** Driven mode: messages dropped from a full outbox, oldest first. */
  outboxDropped: number
  /** Driven mode: QoS 1 publishes sent again (DUP) after their connection dropped before PUBACK. */
  resent: number
  skipped: SkippedCounts
  /** PUBLISH packets received (downlinks). */
  received: number
  pings: number
  pingTimeouts: number
  bytesOut: number
  bytesIn: number
  /** Epoch ms of the first connect attempt, 0 before. */
  firstConnectAt: number
  /** Epoch ms of the latest CONNACK 0, 0 before. */
  lastConnackAt: number
  /** Epoch ms when every session was connected for the first time, 0 until then. */
  allConnectedAt: number
}

export function emptyStats(sessions = 0): SessionStats {
  return {
    sessions,
    connected: 0,
    connecting: 0,
    connectAttempts: 0,
    connects: 0,
    refused: {},
    connectErrors: 0,
    connectTimeouts: 0,
    disconnects: 0,
    errors: {},
    protocolErrors: 0,
    published: 0,
    acked: 0,
    inflight: 0,
    inflightLost: 0,
    ackTimeouts: 0,
    unackedAtStop: 0,
    queued: 0,
    queuedOffline: 0,
    outboxDropped: 0,
    resent: 0,
    skipped: { notConnected: 0, inflightFull: 0, backpressure: 0, late: 0 },
    received: 0,
    pings: 0,
    pingTimeouts: 0,
    bytesOut: 0,
    bytesIn: 0,
    firstConnectAt: 0,
    lastConnackAt: 0,
    allConnectedAt: 0,
  }
}

/** Adds `from` into `into`: counters sum, first/last times take the min/max. */
export function addStats(into: SessionStats, from: SessionStats): void {
  const sumKeys = [
    'sessions',
    'connected',
    'connecting',
    'connectAttempts',
    'connects',
    'connectErrors',
    'connectTimeouts',
    'disconnects',
    'protocolErrors',
    'published',
    'acked',
    'inflight',
    'inflightLost',
    'ackTimeouts',
    'unackedAtStop',
    'queued',
    'queuedOffline',
    'outboxDropped',
    'resent',
    'received',
    'pings',
    'pingTimeouts',
    'bytesOut',
    'bytesIn',
  ] as const
  for (const key of sumKeys) into[key] += from[key]
  for (const [code, count] of Object.entries(from.refused)) into.refused[code] = (into.refused[code] ?? 0) + count
  for (const [code, count] of Object.entries(from.errors)) into.errors[code] = (into.errors[code] ?? 0) + count
  for (const key of Object.keys(into.skipped) as (keyof SkippedCounts)[]) into.skipped[key] += from.skipped[key]
  if (from.firstConnectAt !== 0 && (into.firstConnectAt === 0 || from.firstConnectAt < into.firstConnectAt)) {
    into.firstConnectAt = from.firstConnectAt
  }
  into.lastConnackAt = Math.max(into.lastConnackAt, from.lastConnackAt)
}
