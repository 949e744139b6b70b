import type { LiveBatch } from '@plantwatt/bus'
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
  /**
   * A scope's watching changed: its first live subscription came or its last one left. The
   * gateway tells the processor, which sends figures only for watched scopes (issue 14).
   */
  onWatchChange?: (scope: string) => void
}

/**
 * The gateway's copy of the live figures of the scopes its subscriptions watch, fed by the
 * processor over the bus, and the fan-out to `live` subscriptions. Each scope's frame body is
 * serialised once per round however many clients share it; only the `sub` prefix differs per
 * client. The processor sends only watched scopes (issue 14): a scope's figures are kept while it
 * is watched and dropped when its last subscription goes, so they are never stale; a new
 * subscription to a scope not held yet gets its snapshot as soon as the processor's answer to the
 * new interest arrives.
 */
export class LiveHub {
  private readonly scopes = new Map<string, ScopeEntry>()
  private readonly sites = new Map<string, SiteEntry>()
  private readonly subscriptions = new Set<LiveSubscription>()
  /** Live subscriptions per scope: a scope is watched while it has one. */
  private readonly watchers = new Map<string, Set<LiveSubscription>>()
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

  /** Scopes with live subscriptions now. */
  watchedScopes(): IterableIterator<string> {
    return this.watchers.keys()
  }

  isWatched(scope: string): boolean {
    return this.watchers.has(scope)
  }

  /**
   * Takes an update from the processor and sends it at once to every subscription that may have
   * a frame now: the frame carries figures just computed, so its delay is the fan-out alone.
   */
  apply(update: LiveBatch): void {
    const clockMoved = this.store(update)
    this.lastApplyAt = this.now()
    if (clockMoved) return this.flush()
    // Same site clock (the processor's answer to new interests, mostly): only the subscriptions of
    // these scopes can have a frame due, so a burst of new subscribers costs no round over all.
    for (const figures of update.scopes) {
      const subscriptions = this.watchers.get(figures.scope)
      if (subscriptions) this.flushSome(subscriptions, this.now(), new Map())
    }
  }

  /** A timer round: sends what is pending only once the processor has gone quiet (see quietAfterMs). */
  tick(): void {
    if (this.now() - this.lastApplyAt >= this.quietAfterMs) this.flush()
  }

  /** Keeps the batch's figures; true when its site's clock or grid intensity moved. */
  private store(update: LiveBatch): boolean {
    const site = this.sites.get(update.site)
    let moved = true
    if (site) {
      moved = site.at !== update.at || site.gridGPerKWh !== update.gridGPerKWh
      if (moved) site.version++
      site.at = update.at
      site.gridGPerKWh = update.gridGPerKWh
    } else {
      this.sites.set(update.site, { at: update.at, gridGPerKWh: update.gridGPerKWh, version: 1 })
    }
    for (const figures of update.scopes) {
      // Figures of a scope nobody here watches any more (in flight when its last one left) would go stale.
      if (!this.watchers.has(figures.scope)) continue
      const entry = this.scopes.get(figures.scope)
      if (entry) {
        entry.figures = figures
        entry.version++
      } else {
        this.scopes.set(figures.scope, { figures, version: 1 })
      }
    }
    return moved
  }

  /**
   * The figures of a watched scope as they stand now, with its site's clock and grid intensity;
   * undefined when this gateway holds none (nobody watches it, or the processor has not answered
   * yet): ask the processor then.
   */
  current(scope: string): LiveFigures | undefined {
    const figures = this.scopes.get(scope)?.figures
    if (!figures) return undefined
    const siteId = this.options.plant.scope(scope)?.siteId
    const site = siteId === undefined ? undefined : this.sites.get(siteId)
    if (!site) return figures
    return { ...figures, at: site.at, gridGPerKWh: site.gridGPerKWh }
  }

  /**
   * Adds a subscription and sends its snapshot at once when the figures are held (CONTRACT.md §5);
   * else the first figures the processor sends for the newly watched scope are its snapshot.
   */
  subscribe(subscription: LiveSubscription): void {
    this.subscriptions.add(subscription)
    let watchers = this.watchers.get(subscription.scope)
    if (!watchers) {
      watchers = new Set()
      this.watchers.set(subscription.scope, watchers)
    }
    watchers.add(subscription)
    if (watchers.size === 1) this.options.onWatchChange?.(subscription.scope)
    if (this.scopes.has(subscription.scope)) {
      this.sendTo(subscription, this.frameBody(subscription.scope), this.versionOf(subscription.scope))
    }
  }

  unsubscribe(subscription: LiveSubscription): void {
    if (!this.subscriptions.delete(subscription)) return
    const watchers = this.watchers.get(subscription.scope)
    watchers?.delete(subscription)
    if (watchers && watchers.size > 0) return
    this.watchers.delete(subscription.scope)
    this.scopes.delete(subscription.scope)
    this.options.onWatchChange?.(subscription.scope)
  }

  /**
   * One round of fan-out: every subscription whose scope changed since its last frame, and whose
   * last frame is at least a second old, gets the newest figures. A client whose queue is full
   * misses this round and gets the newest figures in a later one (live frames coalesce).
   */
  flush(): void {
    this.flushSome(this.subscriptions, this.now(), new Map())
  }

  private flushSome(subscriptions: Iterable<LiveSubscription>, now: number, bodies: Map<string, string>): void {
    for (const subscription of subscriptions) {
      // No figures yet for a newly watched scope: the processor's answer brings the snapshot.
      if (!this.scopes.has(subscription.scope)) continue
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
    return JSON.stringify(this.current(scope)!)
  }

  /** Changes when the scope's figures or its site's clock change. */
  private versionOf(scope: string): number {
    const siteId = this.options.plant.scope(scope)?.siteId
    const siteVersion = siteId === undefined ? 0 : (this.sites.get(siteId)?.version ?? 0)
    return (this.scopes.get(scope)?.version ?? 0) + siteVersion
  }
}
