import {
  type Bus,
  encodeLiveBatch,
  encodeMessage,
  LIVE_BATCH_INTERVAL_MS,
  LIVE_INTEREST_SYNC_TOPIC,
  LIVE_INTEREST_TOPIC,
  type LiveBatch,
  liveTopic,
  parseLiveInterest,
  type Unsubscribe,
} from '@plantwatt/bus'
import type { LiveFigures } from '@plantwatt/contract'
import type { ReadingPipeline } from '@plantwatt/pipeline'
import type { PlantIndex, ScopeNode } from '@plantwatt/plant'
import { EarliestWake, type Schedule } from '@plantwatt/runtime'
import type { Logger } from 'pino'
import { InterestBook } from './live-interests.ts'

// Live figures only for the scopes someone watches (issue 14, CONTRACT.md §5 `live`): the gateways
// announce their live subscriptions' scopes (InterestBook); each tick this sends, per site, the
// site clock and the figures of the watched scopes that changed, and a newly watched scope's
// figures at once (its subscriber's snapshot waits for them). Figures are computed only for what
// is sent, on event time as ever; only the pacing uses the wall clock.
//
// The pacing is per site, and it sets the phase of every live subscription of the site (issue 13:
// frames at most a second old by construction, docs/decisions.md). The gateway treats a moved
// site clock as a change of each of the site's scopes, so:
// - a batch that moves the clock carries every changed watched scope of its site (one that moved
//   the clock ahead of a changed scope's figures had the gateway send the old figures under the
//   new clock, and hold the new ones a second more: issue 16);
// - a site's paced batches go at most every LIVE_BATCH_INTERVAL_MS, the moment that interval is
//   up when something waits (a timer, not the next tick), so that every subscription of the site
//   gets its frame as the batch arrives, in the same phase; a scope paced on its own phase (as
//   before) moved the clock for the others off their phase, and the gateway's one-a-second guard
//   then held their next batch up to a second;
// - answers to new interests (snapshots) carry the clock last sent and only the scopes asked for,
//   flagged, so that the gateways send them only to the subscriptions waiting for a first frame.

/** What the figures come from: the reading pipeline (and the tuner's savings) in the processor. */
export interface LiveSource {
  /** Sites whose clock moved and, per site, scopes whose figures may have changed, since the last call. */
  takeChanges(): { sites: Set<string>; scopes: Map<string, ScopeNode[]> }
  figures(node: ScopeNode): LiveFigures
  siteClockMs(siteId: string): number | null
  gridGPerKWh(siteId: string): number
}

/** A reading pipeline's figures as a LiveSource (the processor adds the tuners' savings to them). */
export function pipelineLiveSource(pipeline: ReadingPipeline): LiveSource {
  return {
    takeChanges: () => pipeline.takeChanges(),
    figures: (node) => pipeline.figures(node),
    siteClockMs: (siteId) => pipeline.siteClockMs(siteId),
    gridGPerKWh: (siteId) => pipeline.figures(pipeline.plant.sites.get(siteId)!.node).gridGPerKWh,
  }
}

export interface LivePublisherOptions {
  plant: PlantIndex
  bus: Bus
  logger: Logger
  source: LiveSource
  /** Wall clock, ms: pacing and leases only. */
  now: () => number
  /** A site's paced batches at most this often. Default LIVE_BATCH_INTERVAL_MS (a second and a margin). */
  minSiteIntervalMs?: number
  /**
   * Runs `fn` after `delayMs` and returns a cancel: how a site whose changes wait for its interval
   * goes out the moment it is up rather than at the next tick. Without it (tests that call tick by
   * hand), they go at the first tick after it.
   */
  schedule?: Schedule
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
  /** Wall time of each site's last paced batch. */
  private readonly lastSentMs = new Map<string, number>()
  /** The clock and grid intensity each site's last batch carried (what the gateways hold). */
  private readonly sentSite = new Map<string, { at: number | null; gridGPerKWh: number }>()
  private readonly minSiteIntervalMs: number
  private resyncAsked = false
  /** The one timer for the earliest site waiting for its interval (none without `schedule`). */
  private readonly wake: EarliestWake | undefined

  constructor(private readonly options: LivePublisherOptions) {
    this.minSiteIntervalMs = options.minSiteIntervalMs ?? LIVE_BATCH_INTERVAL_MS
    this.wake = options.schedule ? new EarliestWake(options.schedule, options.now, () => this.tick()) : undefined
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
   * its interval since its last one is up; a site still short of it gets a round of its own the
   * moment it is (`schedule`): a change waits at most the interval, never the interval and a tick.
   */
  tick(): void {
    const now = this.options.now()
    this.resyncAsked = false
    for (const scope of this.interests.expire(now)) this.forget(scope)
    this.takeChanges()
    const sites = new Set(this.clockMoved)
    for (const [siteId, pending] of this.pending) if (pending.size > 0) sites.add(siteId)
    let earliestHeld = Number.POSITIVE_INFINITY
    for (const siteId of sites) {
      const dueAt = (this.lastSentMs.get(siteId) ?? Number.NEGATIVE_INFINITY) + this.minSiteIntervalMs
      if (now >= dueAt) this.flushSite(siteId, now)
      else earliestHeld = Math.min(earliestHeld, dueAt)
    }
    if (earliestHeld < Number.POSITIVE_INFINITY) this.wake?.at(earliestHeld)
  }

  /** Cancels the pacing timer (the processor is stopping). */
  stop(): void {
    this.wake?.cancel()
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

  /**
   * Figures of these scopes at once, one answer per site, whatever the pacing: under the clock last
   * sent, so that the gateways' clock moves only with paced batches (which carry every changed
   * watched scope), and flagged, so that they go only to subscriptions waiting for a first frame.
   * A site never sent before gets its clock now (no gateway holds anything of it). The scopes stay
   * pending when they changed: the site's next paced batch brings them to the others.
   */
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
    }
    for (const [siteId, nodes] of bySite) {
      const sent = this.sentSite.get(siteId)
      if (!sent) this.lastSentMs.set(siteId, now)
      this.send(siteId, nodes, sent, true)
    }
  }

  /** The pipeline's changes since the last call: watched scopes to their site's pending set. */
  private takeChanges(): void {
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
  }

  /** A paced batch: the site's clock with every changed watched scope of the site. */
  private flushSite(siteId: string, now: number): void {
    const pending = this.pending.get(siteId)
    const nodes = pending ? [...pending] : []
    pending?.clear()
    this.clockMoved.delete(siteId)
    this.lastSentMs.set(siteId, now)
    this.send(siteId, nodes)
  }

  private send(
    siteId: string,
    nodes: ScopeNode[],
    site?: { at: number | null; gridGPerKWh: number },
    answer = false,
  ): void {
    const { source } = this.options
    const scopes: LiveFigures[] = []
    for (const node of nodes) scopes.push(source.figures(node))
    const { at, gridGPerKWh } = site ?? { at: source.siteClockMs(siteId), gridGPerKWh: source.gridGPerKWh(siteId) }
    this.sentSite.set(siteId, { at, gridGPerKWh })
    const batch: LiveBatch = { site: siteId, at, gridGPerKWh, scopes }
    if (answer) batch.answer = true
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
