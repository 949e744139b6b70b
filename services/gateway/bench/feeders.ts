import {
  ALERTS_SYNC_TOPIC,
  ALERTS_TOPIC,
  type AlertEvents,
  type Bus,
  decodeMessage,
  encodeMessage,
  type SyncRequest,
  type Unsubscribe,
} from '@plantwatt/bus'
import type { Alert, LiveFigures } from '@plantwatt/contract'
import type { PlantIndex, ScopeNode, SiteInfo } from '@plantwatt/plant'
// The processor's own live publisher (interest list, pacing, packing), reached by path as this
// tool reaches the simulator: what crosses the bus is exactly what the processor sends.
import { timeoutAfterIo } from '@plantwatt/runtime'
import pino from 'pino'
import { LivePublisher, type LiveSource } from '../../processor/src/live-publisher.ts'

// Stand-ins for the processor on the bus, for the gateway benchmark: the live figures go through
// the processor's LivePublisher (issue 14: only the scopes the gateway watches, each at most once a
// second, CBOR-packed) from a synthetic source that changes as the 40,000-device plant does;
// alert events come with a plant-wide seq. The processor's reading pipeline is not run, so the
// gateway is what is measured. The site clock is the wall clock when a round takes the changes:
// clients on the same machine subtract it from the time a frame arrives to get the frame's delay
// (from the moment the processor took the figures to the client's receipt).

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

/** What the reading pipeline would report: every round the site clock moves and these scopes change. */
class SyntheticSource implements LiveSource {
  private readonly sites: SiteScopes[]
  private round = 0
  private clockMs = Date.now()

  constructor(
    plant: PlantIndex,
    private readonly equipmentShare: number,
  ) {
    this.sites = [...plant.sites.values()].map((site) => ({
      site,
      upper: site.scopes.filter((node) => node.level !== 'equipment'),
      equipment: site.scopes.filter((node) => node.level === 'equipment'),
      next: 0,
    }))
  }

  takeChanges() {
    this.round++
    this.clockMs = Date.now()
    const scopes = new Map<string, ScopeNode[]>()
    for (const site of this.sites) {
      // A rotating slice: every equipment changes once in 1/share rounds, as devices report.
      const count = Math.round(site.equipment.length * this.equipmentShare)
      const changed = site.upper.slice()
      for (let k = 0; k < count; k++) {
        changed.push(site.equipment[site.next]!)
        site.next = (site.next + 1) % site.equipment.length
      }
      scopes.set(site.site.node.id, changed)
    }
    return { sites: new Set(this.sites.map((site) => site.site.node.id)), scopes }
  }

  siteClockMs(): number {
    return this.clockMs
  }

  gridGPerKWh(): number {
    return 470
  }

  /** Plausible figures that change every round (so every subscription has a frame due each second). */
  figures(node: ScopeNode): LiveFigures {
    const at = this.clockMs
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

export class LiveFeeder {
  private readonly publisher: LivePublisher
  private timer: NodeJS.Timeout | undefined
  private unsubscribes: Unsubscribe[] = []
  /** CPU spent in publish rounds (taking changes, computing, packing, publishing), µs. */
  cpuUs = 0

  constructor(
    bus: Bus,
    plant: PlantIndex,
    private readonly options: LiveFeederOptions,
  ) {
    this.publisher = new LivePublisher({
      plant,
      bus,
      logger: pino({ level: 'error' }, pino.destination(2)),
      source: new SyntheticSource(plant, options.equipmentShare),
      now: Date.now,
      // As the processor wakes for a site's paced batch. Without it (before 2026-12-07) batches went
      // on the 200 ms ticks only, about 1.2 s apart: the gateway found every subscription off its
      // phase and sent the figures of the batch before, so every frame read about 1.1 s old.
      schedule: (fn, delayMs) =>
        timeoutAfterIo(() => {
          const started = process.cpuUsage()
          fn()
          const spent = process.cpuUsage(started)
          this.cpuUs += spent.user + spent.system
        }, delayMs),
    })
  }

  get updates(): number {
    return this.publisher.stats.batches
  }

  get bytes(): number {
    return this.publisher.stats.bytes
  }

  get scopesSent(): number {
    return this.publisher.stats.scopesSent
  }

  get watched(): number {
    return this.publisher.interests.size
  }

  interestCounters() {
    const { interests, stats } = this.publisher
    return { gateways: interests.gatewayCount, expiredGateways: interests.expiredGateways, resyncs: stats.resyncs }
  }

  /** Listens for the gateways' interests (and asks any running one for its full set). */
  async start(): Promise<void> {
    this.unsubscribes = await this.publisher.start()
    this.timer = setInterval(() => {
      const started = process.cpuUsage()
      this.publisher.tick()
      const spent = process.cpuUsage(started)
      this.cpuUs += spent.user + spent.system
    }, this.options.intervalMs)
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    for (const unsubscribe of this.unsubscribes) await unsubscribe()
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
