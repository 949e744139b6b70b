import type { EquipmentLive, LiveUpdate } from '@plantwatt/bus'
import type { LiveFigures } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'

/** Where a subscription's frames go. */
export interface LiveSink {
  /** False while the client is behind: the frame is not built, a later round sends the newest. */
  ready(): boolean
  send(text: string): void
}

export interface LiveSubscription {
  id: string
  scope: string
  sink: LiveSink
  /** Version of the figures last sent, -1 before the snapshot. */
  sentVersion: number
  lastSentAt: number
}

interface ScopeEntry {
  figures: LiveFigures
  version: number
}

interface SiteEntry {
  at: number | null
  gridGPerKWh: number
  version: number
}

export interface LiveHubOptions {
  plant: PlantIndex
  /** Wall clock, ms. */
  now?: () => number
  /** CONTRACT.md §5: at most one live frame per second per subscription. */
  minFrameIntervalMs?: number
  /**
   * A timer round sends figures only when no update came for this long: while the processor
   * publishes, frames go out as updates arrive (fresh figures); the timer covers a processor
   * that went quiet with figures still unsent.
   */
  quietAfterMs?: number
}

function emptyFigures(scope: string): LiveFigures {
  return {
    scope,
    at: null,
    powerW: 0,
    energyTodayWh: 0,
    co2TodayG: 0,
    co2MarketTodayG: 0,
    gridGPerKWh: 0,
    pvShare: 0,
    idle: { count: 0, powerW: 0 },
    demand: null,
  }
}

/**
 * The gateway's copy of the live figures, fed by the processor over the bus, and the fan-out to
 * `live` subscriptions. Each scope's frame body is serialised once per round however many
 * clients share it; only the `sub` prefix differs per client.
 */
export class LiveHub {
  private readonly scopes = new Map<string, ScopeEntry>()
  private readonly sites = new Map<string, SiteEntry>()
  private readonly equipment = new Map<string, EquipmentLive>()
  private readonly subscriptions = new Set<LiveSubscription>()
  private readonly now: () => number
  private readonly minFrameIntervalMs: number
  private readonly quietAfterMs: number
  private lastApplyAt = Number.NEGATIVE_INFINITY
  framesSent = 0
  framesDropped = 0

  constructor(private readonly options: LiveHubOptions) {
    this.now = options.now ?? Date.now
    this.minFrameIntervalMs = options.minFrameIntervalMs ?? 1000
    this.quietAfterMs = options.quietAfterMs ?? 300
  }

  get subscriptionCount(): number {
    return this.subscriptions.size
  }

  /**
   * Takes an update from the processor and sends it at once to every subscription that may have
   * a frame now: the frame carries figures just computed, so its delay is the fan-out alone.
   */
  apply(update: LiveUpdate): void {
    this.store(update)
    this.lastApplyAt = this.now()
    this.flush()
  }

  /** A timer round: sends what is pending only once the processor has gone quiet (see quietAfterMs). */
  tick(): void {
    if (this.now() - this.lastApplyAt >= this.quietAfterMs) this.flush()
  }

  private store(update: LiveUpdate): void {
    const site = this.sites.get(update.site)
    if (site) {
      if (site.at !== update.at || site.gridGPerKWh !== update.gridGPerKWh) site.version++
      site.at = update.at
      site.gridGPerKWh = update.gridGPerKWh
    } else {
      this.sites.set(update.site, { at: update.at, gridGPerKWh: update.gridGPerKWh, version: 1 })
    }
    for (const figures of update.scopes) {
      const entry = this.scopes.get(figures.scope)
      if (entry) {
        entry.figures = figures
        entry.version++
      } else {
        this.scopes.set(figures.scope, { figures, version: 1 })
      }
    }
    for (const equipment of update.equipment) this.equipment.set(equipment.scope, equipment)
  }

  /** The figures of a scope as they stand now, with its site's clock and grid intensity. */
  current(scope: string): LiveFigures {
    const figures = this.scopes.get(scope)?.figures ?? emptyFigures(scope)
    const siteId = this.options.plant.scope(scope)?.siteId
    const site = siteId === undefined ? undefined : this.sites.get(siteId)
    if (!site) return figures
    return { ...figures, at: site.at, gridGPerKWh: site.gridGPerKWh }
  }

  equipmentLive(scope: string): EquipmentLive | undefined {
    return this.equipment.get(scope)
  }

  /** Adds a subscription and sends its snapshot at once (CONTRACT.md §5). */
  subscribe(subscription: LiveSubscription): void {
    this.subscriptions.add(subscription)
    this.sendTo(subscription, this.frameBody(subscription.scope), this.versionOf(subscription.scope))
  }

  unsubscribe(subscription: LiveSubscription): void {
    this.subscriptions.delete(subscription)
  }

  /**
   * One round of fan-out: every subscription whose scope changed since its last frame, and whose
   * last frame is at least a second old, gets the newest figures. A client whose queue is full
   * misses this round and gets the newest figures in a later one (live frames coalesce).
   */
  flush(): void {
    const now = this.now()
    const bodies = new Map<string, string>()
    for (const subscription of this.subscriptions) {
      const version = this.versionOf(subscription.scope)
      if (version === subscription.sentVersion) continue
      if (now - subscription.lastSentAt < this.minFrameIntervalMs) continue
      let body = bodies.get(subscription.scope)
      if (body === undefined) {
        body = this.frameBody(subscription.scope)
        bodies.set(subscription.scope, body)
      }
      this.sendTo(subscription, body, version)
    }
  }

  private sendTo(subscription: LiveSubscription, body: string, version: number): void {
    if (!subscription.sink.ready()) {
      this.framesDropped++
      return
    }
    // body is `{"scope":…}`; the frame puts type and sub in front of the same fields.
    subscription.sink.send(`{"type":"live","sub":${JSON.stringify(subscription.id)},${body.slice(1)}`)
    subscription.sentVersion = version
    subscription.lastSentAt = this.now()
    this.framesSent++
  }

  private frameBody(scope: string): string {
    return JSON.stringify(this.current(scope))
  }

  /** Changes when the scope's figures or its site's clock change. */
  private versionOf(scope: string): number {
    const siteId = this.options.plant.scope(scope)?.siteId
    const siteVersion = siteId === undefined ? 0 : (this.sites.get(siteId)?.version ?? 0)
    return (this.scopes.get(scope)?.version ?? 0) + siteVersion
  }
}
