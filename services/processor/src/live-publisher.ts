import {
  type Bus,
  encodeLiveBatch,
  encodeMessage,
  LIVE_INTEREST_SYNC_TOPIC,
  LIVE_INTEREST_TOPIC,
  type LiveBatch,
  liveTopic,
  parseLiveInterest,
  type Unsubscribe,
} from '@plantwatt/bus'
import type { LiveFigures } from '@plantwatt/contract'
import type { PlantIndex, ScopeNode } from '@plantwatt/plant'
import type { Logger } from 'pino'
import { InterestBook } from './live-interests.ts'

// Live figures only for the scopes someone watches (issue 14, CONTRACT.md §5 `live`): the gateways
// announce their live subscriptions' scopes (InterestBook); each tick this sends, per site, the
// site clock and the figures of the watched scopes that changed, each site at most once a second,
// and a newly watched scope's figures at once (its subscriber's snapshot waits for them). Figures
// are computed only for what is sent, on event time as ever; only the pacing uses the wall clock.
//
// The gateway treats a moved site clock as a change of each of the site's scopes. So a batch that
// moves the clock carries every changed watched scope of its site, and goes once all of them had
// their second; until then the site's clock is held (a snapshot meanwhile carries the clock last
// sent). A batch that moved the clock ahead of a changed scope's figures had the gateway send that
// scope's subscribers the old figures under the new clock, and its own one-frame-a-second pacing
// then held the new figures a second more (issue 16: a reading's first frame 1.6–2 s after it).

/** What the figures come from: the reading pipeline (and the tuner's savings) in the processor. */
export interface LiveSource {
  /** Sites whose clock moved and, per site, scopes whose figures may have changed, since the last call. */
  takeChanges(): { sites: Set<string>; scopes: Map<string, ScopeNode[]> }
  figures(node: ScopeNode): LiveFigures
  siteClockMs(siteId: string): number | null
  gridGPerKWh(siteId: string): number
}

export interface LivePublisherOptions {
  plant: PlantIndex
  bus: Bus
  logger: Logger
  source: LiveSource
  /** Wall clock, ms: pacing and leases only. */
  now: () => number
  /** At most one batch entry per scope this often (CONTRACT.md §5: one frame a second). */
  minScopeIntervalMs?: number
}

export interface LivePublisherStats {
  batches: number
  bytes: number
  scopesSent: number
  interestMessages: number
  /** Interest messages that were not well formed: counted and ignored. */
  badInterest: number
  resyncs: number
}

export class LivePublisher {
  readonly interests = new InterestBook()
  readonly stats: LivePublisherStats = {
    batches: 0,
    bytes: 0,
    scopesSent: 0,
    interestMessages: 0,
    badInterest: 0,
    resyncs: 0,
  }
  /** Watched scopes whose figures changed and wait for their site's second to be up, per site. */
  private readonly pending = new Map<string, Set<ScopeNode>>()
  /** Sites whose clock moved since their last batch. */
  private readonly clockMoved = new Set<string>()
  /** Wall time each watched scope was last sent. */
  private readonly lastSentMs = new Map<string, number>()
  /** The clock and grid intensity each site's last batch carried (what the gateways hold). */
  private readonly sentSite = new Map<string, { at: number | null; gridGPerKWh: number }>()
  private readonly minScopeIntervalMs: number
  private resyncAsked = false

  constructor(private readonly options: LivePublisherOptions) {
    this.minScopeIntervalMs = options.minScopeIntervalMs ?? 1000
  }

  /** Listens for the gateways' interests and asks every gateway for its full set (a processor that just started). */
  async start(): Promise<Unsubscribe[]> {
    const unsubscribe = await this.options.bus.subscribe(LIVE_INTEREST_TOPIC, (_topic, payload) =>
      this.onInterest(payload),
    )
    this.askResync()
    return [unsubscribe]
  }

  /**
   * One round: expired gateways are forgotten, the pipeline's changes taken (always, so they do not
   * pile up), and every site whose clock moved or whose watched scopes changed gets a batch once
   * each of those scopes had its second.
   */
  tick(): void {
    const now = this.options.now()
    this.resyncAsked = false
    for (const scope of this.interests.expire(now)) this.forget(scope)
    const changes = this.options.source.takeChanges()
    for (const [siteId, nodes] of changes.scopes) {
      let pending: Set<ScopeNode> | undefined
      for (const node of nodes) {
        if (!this.interests.has(node.scope)) continue
        pending ??= this.pendingOf(siteId)
        pending.add(node)
      }
    }
    for (const siteId of changes.sites) this.clockMoved.add(siteId)
    const sites = new Set(this.clockMoved)
    for (const [siteId, pending] of this.pending) if (pending.size > 0) sites.add(siteId)
    for (const siteId of sites) {
      const pending = this.pending.get(siteId)
      let due = true
      for (const node of pending ?? []) {
        if (now - (this.lastSentMs.get(node.scope) ?? Number.NEGATIVE_INFINITY) < this.minScopeIntervalMs) due = false
      }
      if (due) this.flushSite(siteId, now)
    }
  }

  /** Every watched scope's figures now (a gateway asked for a sync on the older live-sync topic). */
  publishAll(): void {
    this.sendNow([...this.interests.scopes()])
  }

  private onInterest(payload: Buffer): void {
    const message = parseLiveInterest(payload)
    if (!message) {
      this.stats.badInterest++
      this.options.logger.warn('live interest message not understood: ignored')
      return
    }
    this.stats.interestMessages++
    const { plant } = this.options
    const change = this.interests.apply(message, this.options.now(), (scope) => plant.scope(scope) !== undefined)
    for (const scope of change.dropped) this.forget(scope)
    if (change.resync) this.askResync()
    // The new subscribers' snapshots wait for these: at once, not at the next tick.
    if (change.added.length > 0) this.sendNow(change.added)
  }

  /** Figures of these scopes at once, one batch per site, whatever their last send. */
  private sendNow(scopes: string[]): void {
    const now = this.options.now()
    const bySite = new Map<string, ScopeNode[]>()
    for (const scope of scopes) {
      const node = this.options.plant.scope(scope)
      if (!node) continue
      let list = bySite.get(node.siteId)
      if (!list) {
        list = []
        bySite.set(node.siteId, list)
      }
      list.push(node)
      this.pending.get(node.siteId)?.delete(node)
    }
    for (const [siteId, nodes] of bySite) {
      // Changes held for their second keep the site's clock held too: the gateways keep the last sent.
      const held = (this.pending.get(siteId)?.size ?? 0) > 0
      if (!held) this.clockMoved.delete(siteId)
      this.send(siteId, nodes, now, held ? this.sentSite.get(siteId) : undefined)
    }
  }

  /** The site's clock with every changed watched scope of the site. */
  private flushSite(siteId: string, now: number): void {
    const pending = this.pending.get(siteId)
    const nodes = pending ? [...pending] : []
    pending?.clear()
    this.clockMoved.delete(siteId)
    this.send(siteId, nodes, now)
  }

  private send(
    siteId: string,
    nodes: ScopeNode[],
    now: number,
    site?: { at: number | null; gridGPerKWh: number },
  ): void {
    const { source } = this.options
    const scopes: LiveFigures[] = []
    for (const node of nodes) {
      scopes.push(source.figures(node))
      this.lastSentMs.set(node.scope, now)
    }
    const { at, gridGPerKWh } = site ?? { at: source.siteClockMs(siteId), gridGPerKWh: source.gridGPerKWh(siteId) }
    this.sentSite.set(siteId, { at, gridGPerKWh })
    const batch: LiveBatch = { site: siteId, at, gridGPerKWh, scopes }
    const payload = encodeLiveBatch(batch)
    this.stats.batches++
    this.stats.bytes += payload.length
    this.stats.scopesSent += scopes.length
    this.options.bus.publish(liveTopic(siteId), payload, { qos: 0 }).catch((error) => {
      this.options.logger.error({ err: error }, 'publishing live figures failed')
    })
  }

  /** Once per tick at most: several gateways' messages may each find the book behind. */
  private askResync(): void {
    if (this.resyncAsked) return
    this.resyncAsked = true
    this.stats.resyncs++
    this.options.bus.publish(LIVE_INTEREST_SYNC_TOPIC, encodeMessage({}), { qos: 1 }).catch((error) => {
      this.options.logger.warn({ err: error }, 'asking the gateways for their live interests failed')
    })
  }

  private forget(scope: string): void {
    this.lastSentMs.delete(scope)
    const node = this.options.plant.scope(scope)
    if (node) this.pending.get(node.siteId)?.delete(node)
  }

  private pendingOf(siteId: string): Set<ScopeNode> {
    let pending = this.pending.get(siteId)
    if (!pending) {
      pending = new Set()
      this.pending.set(siteId, pending)
    }
    return pending
  }
}
