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
  /** Keep-alive the broker accepts, seconds: NB-IoT modules use long ones; 0 (none) is refused, dead sessions would never end. */
  maxKeepaliveS: number
  /** Sessions this process holds; more are refused with CONNACK 3 so devices retry elsewhere or later. */
  maxConnections: number
  /** Connects per second for the whole broker: generous, so a fleet reconnecting after an outage gets in quickly. */
  connectRatePerS: number
  connectBurst: number
  /** PUBLISH packets per client per second: a device sends one pack a second, a woken one a batch. */
  publishRatePerS: number
  publishBurst: number
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
  maxKeepaliveS: 7200,
  maxConnections: 50_000,
  connectRatePerS: 2000,
  connectBurst: 20_000,
  publishRatePerS: 50,
  publishBurst: 500,
  subscribeRatePerS: 10,
  subscribeBurst: 50,
  drainTimeoutMs: 5000,
  maxInflightInbound: 100,
  queueLimit: 42,
  maxQueuedPerInternalSession: 200_000,
  login: DEFAULT_LOGIN_GUARD,
})
