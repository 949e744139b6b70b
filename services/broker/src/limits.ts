import { DEFAULT_LOGIN_GUARD, type LoginGuardOptions } from './login-guard.ts'

/**
 * The broker's limits (CONTRACT.md §4 and issue #3), each an option with the reason for its
 * default. aedes 1.x enforces few of these itself; the broker adds the rest in front of it.
 */
export interface BrokerLimits {
  /** Largest MQTT packet, bytes. 256 KiB holds an NB-IoT device's largest batch upload many times over. */
  maxPacketBytes: number
  /** A CONNECT, or any packet once begun, not completed within this many ms closes the connection. */
  packetTimeoutMs: number
  /** Subscriptions a device may hold: it needs one (its `down` topic). */
  maxSubscriptionsPerClient: number
  /** Topic levels: device topics have five. */
  maxTopicLevels: number
  /**
   * A connection with keep-alive 0 (legal in MQTT 3.1.1: "no keep-alive") silent for this many ms
   * is closed, so that the session of a dead device still ends (CONTRACT.md §4). Every keep-alive
   * 0–65,535 s is accepted; a nonzero one is enforced by aedes at 1.5 × its value.
   */
  idleLimitMs: number
  /** TCP keep-alive probes on device sockets start after this many ms of silence: finds peers that vanished. */
  tcpKeepAliveMs: number
  /** Sessions this process holds; more are refused with CONNACK 3 so devices retry elsewhere or later. */
  maxConnections: number
  /** Connects per second for the whole broker: generous, so a fleet reconnecting after an outage gets in quickly. */
  connectRatePerS: number
  connectBurst: number
  /**
   * PUBLISH packets per client per second: a device sends one pack a second, a woken one a batch.
   * A client over its rate is slowed (its socket not read until its budget refills), not
   * disconnected (CONTRACT.md §4): a device flushing an outage's readings gets them all in.
   */
  publishRatePerS: number
  publishBurst: number
  /**
   * Publishes of one client waiting for its budget. aedes reads no more of a socket until these
   * are handled, so one read's worth waits (at most about 2,000 of a device's own topic); more is
   * not a client aedes reads from, and is dropped as `publish_flood`.
   */
  maxQueuedPublishes: number
  /** SUBSCRIBE filters per client per second before the client counts as flooding. */
  subscribeRatePerS: number
  subscribeBurst: number
  /** A client that does not drain its socket within this many ms is dropped, so it cannot stall others (aedes' default is 60 s). */
  drainTimeoutMs: number
  /** QoS 2 messages a client may have in flight towards the broker. */
  maxInflightInbound: number
  /** Packets queued from a client before its CONNECT is processed. */
  queueLimit: number
  /**
   * QoS 1 messages queued at most for one offline persistent session of plantwatt's own clients
   * (the processor's). 200,000 is minutes of a 40,000-device plant's readings: a processor
   * restart loses nothing; a session whose owner never comes back stops growing.
   */
  maxQueuedPerInternalSession: number
  login: LoginGuardOptions
}

export const DEFAULT_BROKER_LIMITS: BrokerLimits = Object.freeze({
  maxPacketBytes: 256 * 1024,
  packetTimeoutMs: 10_000,
  maxSubscriptionsPerClient: 8,
  maxTopicLevels: 8,
  idleLimitMs: 24 * 3600 * 1000,
  tcpKeepAliveMs: 5 * 60 * 1000,
  maxConnections: 50_000,
  connectRatePerS: 2000,
  connectBurst: 20_000,
  publishRatePerS: 50,
  publishBurst: 500,
  maxQueuedPublishes: 10_000,
  subscribeRatePerS: 10,
  subscribeBurst: 50,
  drainTimeoutMs: 5000,
  maxInflightInbound: 100,
  queueLimit: 42,
  maxQueuedPerInternalSession: 200_000,
  login: DEFAULT_LOGIN_GUARD,
})
