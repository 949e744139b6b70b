import { Counter, Gauge, type Registry } from 'prom-client'

export type RefusalReason =
  | 'unknown_device'
  | 'bad_username'
  | 'bad_password'
  | 'missing_password'
  | 'locked_out'
  | 'empty_client_id'
  | 'bad_client_id'
  | 'too_many_connections'
  | 'connect_rate'
  | 'will_not_allowed'

export type DropReason =
  | 'packet_too_large'
  | 'bad_packet_length'
  | 'bad_packet_type'
  | 'keepalive_timeout'
  | 'incomplete_packet'
  | 'idle'
  | 'foreign_publish'
  | 'publish_flood'
  | 'subscribe_flood'
  | 'slow_consumer'
  | 'protocol_error'

/** The broker's Prometheus metrics (issue #3), registered in the registry the composition root owns. */
export class BrokerMetrics {
  readonly connected: Gauge
  readonly connects: Counter
  readonly refusals: Counter<'reason'>
  readonly disconnects: Counter<'reason'>
  readonly foreignSubscriptions: Counter
  readonly messagesIn: Counter
  /** Device publishes whose retain flag was cleared: delivered, never stored (issue 12 finding 14). */
  readonly retainCleared: Counter
  /** Publishes held back until their client's budget refilled (CONTRACT.md §4). */
  readonly publishesSlowed: Counter
  /** Wills that broke the device rules when aedes went to publish them (issue 12 finding 1). */
  readonly willsRefused: Counter
  readonly messagesOut: Counter
  /** Publishes refused after authorization (the uplink journal could not make them durable). */
  readonly messagesRefused: Counter<'reason'>
  readonly bytesIn: Counter
  readonly bytesOut: Counter
  /** Offline internal sessions expired at their queue limit (internal-sessions.ts). */
  readonly internalSessionsExpired: Counter
  /** Sessions the session store holds subscriptions for, online or not: read at scrape time. */
  readonly persistentSessions: Gauge
  /** Bytes written to connections that closed; live ones are read at scrape time. */
  bytesOutClosed = 0
  private bytesOutReported = 0
  /**
   * PUBLISH accepted from clients and bytes received, counted with a plain addition on the hot
   * path (issue 16) and handed to prom-client at scrape time: its inc validates and hashes
   * labels on every call, work of every packet for a figure read once per scrape.
   */
  messagesInCount = 0
  bytesInCount = 0
  private messagesInReported = 0
  private bytesInReported = 0

  constructor(
    registry: Registry,
    liveBytesOut: () => number = () => 0,
    storedSessions: () => Promise<number> = async () => 0,
  ) {
    const registers = [registry]
    this.internalSessionsExpired = new Counter({
      name: 'plantwatt_broker_internal_sessions_expired_total',
      help: 'Offline persistent sessions of plantwatt roles expired on reaching their queue limit',
      registers,
    })
    this.persistentSessions = new Gauge({
      name: 'plantwatt_broker_persistent_sessions',
      help: 'Persistent sessions with subscriptions in the session store, connected or not',
      registers,
      async collect() {
        this.set(await storedSessions())
      },
    })
    this.connected = new Gauge({
      name: 'plantwatt_broker_connected_clients',
      help: 'MQTT sessions connected now',
      registers,
    })
    this.messagesRefused = new Counter({
      name: 'plantwatt_broker_messages_refused_total',
      help: 'Device publishes refused without a PUBACK, by reason; the device sends them again',
      labelNames: ['reason'],
      registers,
    })
    this.connects = new Counter({ name: 'plantwatt_broker_connects_total', help: 'Accepted MQTT connects', registers })
    this.refusals = new Counter({
      name: 'plantwatt_broker_connect_refusals_total',
      help: 'Refused MQTT connects, by reason',
      labelNames: ['reason'],
      registers,
    })
    this.disconnects = new Counter({
      name: 'plantwatt_broker_dropped_clients_total',
      help: 'Connections the broker closed for breaking a rule or a limit, by reason',
      labelNames: ['reason'],
      registers,
    })
    this.foreignSubscriptions = new Counter({
      name: 'plantwatt_broker_refused_subscriptions_total',
      help: 'Subscription filters answered with 0x80',
      registers,
    })
    const metrics = this
    this.messagesIn = new Counter({
      name: 'plantwatt_broker_messages_in_total',
      help: 'PUBLISH accepted from clients',
      registers,
      collect() {
        this.inc(metrics.messagesInCount - metrics.messagesInReported)
        metrics.messagesInReported = metrics.messagesInCount
      },
    })
    this.retainCleared = new Counter({
      name: 'plantwatt_broker_retain_cleared_total',
      help: 'Device publishes (and wills) whose retain flag the broker cleared: delivered, never stored',
      registers,
    })
    this.publishesSlowed = new Counter({
      name: 'plantwatt_broker_publishes_slowed_total',
      help: 'Publishes held back until their client was within its rate again (the client is slowed, not dropped)',
      registers,
    })
    this.willsRefused = new Counter({
      name: 'plantwatt_broker_wills_refused_total',
      help: "Stored wills refused and deleted at publish time: not on their device's own up or ack topic",
      registers,
    })
    this.messagesOut = new Counter({
      name: 'plantwatt_broker_messages_out_total',
      help: 'PUBLISH delivered to clients',
      registers,
    })
    this.bytesIn = new Counter({
      name: 'plantwatt_broker_bytes_in_total',
      help: 'Bytes received from clients',
      registers,
      collect() {
        this.inc(metrics.bytesInCount - metrics.bytesInReported)
        metrics.bytesInReported = metrics.bytesInCount
      },
    })
    this.bytesOut = new Counter({
      name: 'plantwatt_broker_bytes_out_total',
      help: 'Bytes sent to clients',
      registers,
      // Sockets count what they wrote; adding it up at scrape time costs nothing per message.
      collect() {
        const total = metrics.bytesOutClosed + liveBytesOut()
        if (total > metrics.bytesOutReported) this.inc(total - metrics.bytesOutReported)
        metrics.bytesOutReported = total
      },
    })
  }

  refused(reason: RefusalReason): void {
    this.refusals.inc({ reason })
  }

  dropped(reason: DropReason): void {
    this.disconnects.inc({ reason })
  }
}
