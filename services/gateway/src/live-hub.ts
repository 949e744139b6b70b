import { LIVE_BATCH_INTERVAL_MS, type LiveBatch } from '@plantwatt/bus'
import type { LiveFigures } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'
import { EarliestWake, type Schedule, timeoutAfterIo } from '@plantwatt/runtime'

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
  /**
   * Set by the hub while a change waits for the subscription's second: no timer round sends it
   * before this wall time (a paced batch arriving once the second is up still does).
   */
  heldUntil?: number
}

/**
 * The longest a subscription's frame is held for its second when a paced batch arrives: the jitter
 * of the bus between two batches. A subscription in its site's phase is held at most this long,
 * and the processor's margin takes the hold back over the next rounds. A longer hold means the
 * subscription is off its site's phase (its snapshot came between two batches, or a busy turn
 * delayed its last frame): holding would send figures up to a second older than they need be, and
 * every later batch would be held nearly as long (the hold shrinks by the margin only, 25 ms a
 * round). It waits for the next batch instead, which comes after its second is up and goes as it
 * arrives: in phase from then on, after one gap of up to two seconds. If no batch comes (nothing
 * changed), the held figures go a batch interval and this after the skipped batch.
 */
export const MAX_HOLD_MS = 100

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
  /** How far apart the processor sends a site's paced batches (LIVE_BATCH_INTERVAL_MS). */
  batchIntervalMs?: number
  /**
   * Runs `fn` after `delayMs` (wall clock) and returns a cancel: how a held frame goes out when
   * its time is up. Default: an unref'd timer that runs after its turn's I/O (timeoutAfterIo), so
   * that a batch that came in while the loop was busy is applied before held frames go.
   */
  schedule?: Schedule
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
  private readonly batchIntervalMs: number
  /** Subscriptions with a change held (heldUntil set): the timer's round looks at these only. */
  private readonly held = new Set<LiveSubscription>()
  /** Subscriptions whose client was behind when a frame was due: the next tick round retries them. */
  private readonly behind = new Set<LiveSubscription>()
  /** The one timer, for the earliest heldUntil. Those still short of their time when it fires (a hair early) re-arm it. */
  private readonly wake: EarliestWake
  private ticks = 0
  framesSent = 0
  framesDropped = 0
  /** Batches held for a subscription's second (at most MAX_HOLD_MS). */
  framesHeld = 0
  /** Batches a subscription off its site's phase let pass, to join the phase with the next one. */
  framesRephased = 0

  constructor(private readonly options: LiveHubOptions) {
    this.now = options.now ?? Date.now
    this.minFrameIntervalMs = options.minFrameIntervalMs ?? 1000
    this.batchIntervalMs = options.batchIntervalMs ?? LIVE_BATCH_INTERVAL_MS
    this.wake = new EarliestWake(options.schedule ?? timeoutAfterIo, this.now, () =>
      this.flushSome([...this.held], this.now(), new Map(), false),
    )
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
   * Takes a batch from the processor and sends it at once to every subscription that may have a
   * frame now: the frame carries figures just computed, so its delay is the fan-out alone. The
   * processor paces each site's batches (LIVE_BATCH_INTERVAL_MS, a second and a margin), so a
   * subscription in its site's phase is due when a batch arrives; one whose last frame is still
   * under a second old is held (see MAX_HOLD_MS). An answer to new interests goes only to the
   * subscriptions waiting for their first frame (the others get its figures with the next batch).
   */
  apply(update: LiveBatch): void {
    const clockMoved = this.store(update)
    if (clockMoved) {
      // A moved clock is a change of every scope of its site (and of no other site's).
      const ofSite = [...this.subscriptions].filter((s) => this.options.plant.scope(s.scope)?.siteId === update.site)
      return this.flushSome(ofSite, this.now(), new Map(), true)
    }
    // Same site clock (a batch of late readings, or an answer to new interests): only the
    // subscriptions of these scopes can have a frame due, so a burst of new subscribers costs no
    // round over all.
    for (const figures of update.scopes) {
      const subscriptions = this.watchers.get(figures.scope)
      if (!subscriptions) continue
      const due = update.answer ? [...subscriptions].filter((s) => s.sentVersion === -1) : subscriptions
      this.flushSome(due, this.now(), new Map(), true)
    }
  }

  /**
   * A timer round: sends what a client that was behind (its sink not ready) missed. Held changes
   * have a timer of their own; a round over every subscription once every ten ticks is only a
   * safety net (it sends nothing that is held or not due).
   */
  tick(): void {
    if (++this.ticks % 10 === 0) return this.flush()
    if (this.behind.size === 0) return
    const behind = [...this.behind]
    this.behind.clear()
    this.flushSome(behind, this.now(), new Map(), false)
  }

  /** Cancels the timer (the gateway is closing). */
  close(): void {
    this.wake.cancel()
    this.held.clear()
    this.behind.clear()
  }

  /**
   * Keeps the batch's figures; true when its site's clock or grid intensity moved. An answer's
   * figures of a scope held already replace the held ones without counting as a change: its
   * subscribers get them with the next paced batch, in their phase (the processor keeps a changed
   * scope pending for it).
   */
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
        if (!update.answer) entry.version++
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
    this.held.delete(subscription)
    this.behind.delete(subscription)
    const watchers = this.watchers.get(subscription.scope)
    watchers?.delete(subscription)
    if (watchers && watchers.size > 0) return
    this.watchers.delete(subscription.scope)
    this.scopes.delete(subscription.scope)
    this.options.onWatchChange?.(subscription.scope)
  }

  /**
   * One round of fan-out: every subscription whose scope changed since its last frame, whose last
   * frame is at least a second old, and whose change is not held longer, gets the newest figures.
   * A client whose queue is full misses this round and gets the newest figures in a later one
   * (live frames coalesce).
   */
  flush(): void {
    this.flushSome(this.subscriptions, this.now(), new Map(), false)
  }

  /**
   * `arrived`: a batch from the processor brought these changes. A subscription whose second is up
   * then gets its frame whatever it was held for; one short of it is held, until its second is up
   * when that is close (MAX_HOLD_MS), else until a batch after the next is overdue (the next
   * batch, due after its second, sends it on arrival: in phase from then on). Timer and tick
   * rounds send what is held only once its time is up.
   */
  private flushSome(
    subscriptions: Iterable<LiveSubscription>,
    now: number,
    bodies: Map<string, string>,
    arrived: boolean,
  ): void {
    let earliestHeld = Number.POSITIVE_INFINITY
    for (const subscription of subscriptions) {
      // No figures yet for a newly watched scope: the processor's answer brings the snapshot.
      if (!this.scopes.has(subscription.scope)) continue
      const version = this.versionOf(subscription.scope)
      if (version === subscription.sentVersion) {
        this.release(subscription)
        continue
      }
      const dueAt = subscription.lastSentAt + this.minFrameIntervalMs
      // A round of many frames takes a while, and each subscription's second counts from its own
      // send in the round before, so the clock is read again at its turn in this one: judged by
      // the round's start, the ones late in a round longer than the pacing's margin would be held
      // at every batch, drift by the round's length and let a batch pass (framesRephased).
      if (now < dueAt) now = this.now()
      const heldUntil = subscription.heldUntil ?? Number.NEGATIVE_INFINITY
      if (now < dueAt || (!arrived && now < heldUntil)) {
        if (arrived || subscription.heldUntil === undefined) {
          const waitsForNext = arrived && dueAt - now > MAX_HOLD_MS
          subscription.heldUntil = waitsForNext ? now + this.batchIntervalMs + MAX_HOLD_MS : dueAt
          if (waitsForNext) this.framesRephased++
          else if (arrived) this.framesHeld++
          this.held.add(subscription)
        }
        earliestHeld = Math.min(earliestHeld, subscription.heldUntil)
        continue
      }
      let body = bodies.get(subscription.scope)
      if (body === undefined) {
        body = this.frameBody(subscription.scope)
        bodies.set(subscription.scope, body)
      }
      this.sendTo(subscription, body, version)
    }
    if (earliestHeld < Number.POSITIVE_INFINITY) this.wake.at(earliestHeld)
  }

  /** Nothing held for the subscription any more. */
  private release(subscription: LiveSubscription): void {
    subscription.heldUntil = undefined
    this.held.delete(subscription)
  }

  private sendTo(subscription: LiveSubscription, body: string, version: number): void {
    // Sent or not, nothing is held: a client that is behind gets the newest at a tick round.
    this.release(subscription)
    if (!subscription.sink.ready()) {
      this.framesDropped++
      this.behind.add(subscription)
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
