import {
  ALERTS_SYNC_TOPIC,
  ALERTS_TOPIC,
  type AlertEvents,
  type Bus,
  decodeMessage,
  type EquipmentLive,
  encodeMessage,
  LIVE_SYNC_TOPIC,
  type LiveUpdate,
  liveTopic,
  type SyncRequest,
  type Unsubscribe,
} from '@plantwatt/bus'
import type { Alert, LiveFigures } from '@plantwatt/contract'
import type { PlantIndex, ScopeNode, SiteInfo } from '@plantwatt/plant'

// Stand-ins for the processor on the bus, for the gateway benchmark: they publish what
// services/processor/src/processor.ts publishes (LiveUpdate every 200 ms, AlertEvents with a
// plant-wide seq) without doing its work, so that the gateway process is what is measured.
// The live `at` is the wall clock at sending, not a site clock: clients on the same machine
// subtract it from the time a frame arrives to get the frame's delay.

export interface LiveFeederOptions {
  /** The processor publishes changes every 200 ms (its publishIntervalMs). */
  intervalMs: number
  /**
   * Share of the equipment whose figures change in a round. At one pack per device per second
   * and 200 ms rounds about a fifth of the equipment reports in each round.
   */
  equipmentShare: number
}

/** One site's scopes, split as the processor's changes are: all but the equipment change each round. */
interface SiteScopes {
  site: SiteInfo
  upper: ScopeNode[]
  equipment: ScopeNode[]
  next: number
}

export class LiveFeeder {
  private readonly sites: SiteScopes[]
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: Unsubscribe | undefined
  private round = 0
  /** CPU spent building and encoding updates, µs: it runs in the gateway's process, so it is reported apart. */
  cpuUs = 0
  updates = 0
  bytes = 0

  constructor(
    private readonly bus: Bus,
    plant: PlantIndex,
    private readonly options: LiveFeederOptions,
  ) {
    this.sites = [...plant.sites.values()].map((site) => ({
      site,
      upper: site.scopes.filter((node) => node.level !== 'equipment'),
      equipment: site.scopes.filter((node) => node.level === 'equipment'),
      next: 0,
    }))
  }

  /** Subscribes to the gateway's sync request first: a gateway that starts asks for every scope. */
  async start(): Promise<void> {
    this.unsubscribe = await this.bus.subscribe(LIVE_SYNC_TOPIC, () => {
      for (const site of this.sites) this.publish(site, site.site.scopes, true)
    })
    this.timer = setInterval(() => this.publishRound(), this.options.intervalMs)
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.unsubscribe?.()
  }

  private publishRound(): void {
    this.round++
    for (const site of this.sites) {
      // A rotating slice: every equipment changes once in 1/share rounds, as devices report.
      const count = Math.round(site.equipment.length * this.options.equipmentShare)
      const changed = site.upper.slice()
      for (let k = 0; k < count; k++) {
        changed.push(site.equipment[site.next]!)
        site.next = (site.next + 1) % site.equipment.length
      }
      this.publish(site, changed, false)
    }
  }

  private publish(site: SiteScopes, scopes: ScopeNode[], full: boolean): void {
    const started = process.cpuUsage()
    const at = Date.now()
    const equipment: EquipmentLive[] = []
    const figures: LiveFigures[] = []
    for (const node of scopes) {
      const one = this.figures(node, at)
      figures.push(one)
      if (node.level === 'equipment') equipment.push({ scope: node.scope, state: 'running', powerW: one.powerW })
    }
    const update: LiveUpdate = { site: site.site.node.id, at, gridGPerKWh: 470, full, scopes: figures, equipment }
    const payload = encodeMessage(update)
    const spent = process.cpuUsage(started)
    this.cpuUs += spent.user + spent.system
    this.updates++
    this.bytes += payload.length
    this.bus.publish(liveTopic(site.site.node.id), payload, { qos: 0 }).catch(() => {})
  }

  /** Plausible figures that change every round (so every subscription has a frame due each second). */
  private figures(node: ScopeNode, at: number): LiveFigures {
    const ratedW = node.equipment.length * 12_000
    const swing = 1 + 0.1 * Math.sin(this.round / 7 + node.equipment.length)
    const powerW = Math.round(ratedW * swing)
    const energyTodayWh = Math.round(ratedW * 8 + this.round * ratedW * 0.00006)
    return {
      scope: node.scope,
      at,
      powerW,
      energyTodayWh,
      co2TodayG: Math.round(energyTodayWh * 0.47),
      co2MarketTodayG: Math.round(energyTodayWh * 0.37),
      gridGPerKWh: 470,
      pvShare: 0.18,
      idle: { count: this.round % 3, powerW: (this.round % 3) * 4100 },
      demand: {
        intervalStart: at - (at % 900_000),
        kW: powerW / 1000,
        forecastKW: (powerW * 1.02) / 1000,
        monthPeakKW: ratedW / 900,
      },
    }
  }
}

export interface AlertFeederOptions {
  /** Alert events per second, sent in messages every `intervalMs`. */
  ratePerS: number
  intervalMs: number
  /** Events held for sync answers (the processor's log holds 10,000). */
  capacity: number
  /** Equipment scopes the alerts are about. */
  scopes: string[]
  /** Events sent at once before the steady rate, in messages of 1,000 (a full log to replay). */
  prefill: number
}

/**
 * AlertEvents with seq 1, 2, … on ALERTS_TOPIC, and answers to the gateway's sync requests, as the
 * processor's alert log would give them. Alerts are raised and cleared in turn, so the open set
 * stays at one and the gateway's memory measures its clients, not a growing list of open alerts.
 */
export class AlertFeeder {
  private readonly held: { seq: number; alert: Alert }[] = []
  private seq = 0
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: Unsubscribe | undefined
  private options: AlertFeederOptions | undefined
  cpuUs = 0

  constructor(private readonly bus: Bus) {}

  get lastSeq(): number {
    return this.seq
  }

  /** Listens for sync requests before the gateway starts, so its first request is answered. */
  async listen(): Promise<void> {
    this.unsubscribe = await this.bus.subscribe(ALERTS_SYNC_TOPIC, (_topic, payload) =>
      this.answerSync(decodeMessage<SyncRequest>(payload)),
    )
  }

  start(options: AlertFeederOptions): void {
    this.options = options
    for (let sent = 0; sent < options.prefill; sent += 1000) this.publishRound(Math.min(1000, options.prefill - sent))
    const perRound = Math.max(1, Math.round((options.ratePerS * options.intervalMs) / 1000))
    this.timer = setInterval(() => this.publishRound(perRound), options.intervalMs)
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.unsubscribe?.()
  }

  private publishRound(count: number): void {
    const started = process.cpuUsage()
    const events: AlertEvents['events'] = []
    for (let k = 0; k < count; k++) events.push(this.nextEvent())
    const payload = encodeMessage({ events } satisfies AlertEvents)
    const spent = process.cpuUsage(started)
    this.cpuUs += spent.user + spent.system
    this.bus.publish(ALERTS_TOPIC, payload, { qos: 1 }).catch(() => {})
  }

  private nextEvent(): { seq: number; alert: Alert } {
    const { scopes, capacity } = this.options!
    const seq = ++this.seq
    const pair = Math.ceil(seq / 2)
    const scope = scopes[pair % scopes.length]!
    const at = Date.now()
    const raised = seq % 2 === 1
    const alert: Alert = {
      id: `bench-${pair}`,
      kind: 'anomaly',
      state: raised ? 'raised' : 'cleared',
      severity: 'warning',
      scope,
      at,
      since: at - 300_000,
      message: raised ? 'power 14.2 kW above the baseline of 11.8 kW for 5 min' : 'power back within the baseline',
      data: { powerW: 14_200, baselineW: 11_800 },
    }
    const event = { seq, alert }
    this.held.push(event)
    // Trimmed in bulk: shifting a 10,000-element array per event would cost more than the rest.
    if (this.held.length > 2 * capacity) this.held.splice(0, this.held.length - capacity)
    return event
  }

  /** As processor.ts onAlertsSync: the held events after `after`, then the open alerts. */
  private answerSync(request: SyncRequest): void {
    const after = Number.isSafeInteger(request?.after) ? request.after : 0
    const events = this.held.filter((event) => event.seq > after)
    const last = this.held.at(-1)
    const open = last && last.alert.state === 'raised' ? [{ seq: last.seq, event: last.alert }] : []
    const message: AlertEvents = {
      events,
      sync: { after, firstHeldSeq: this.held[0]?.seq ?? this.seq + 1, lastSeq: this.seq, open },
    }
    this.bus.publish(ALERTS_TOPIC, encodeMessage(message), { qos: 1 }).catch(() => {})
  }
}
