import {
  type Bus,
  encodeMessage,
  INTEREST_SCOPES_PER_MESSAGE,
  LIVE_INTEREST_SYNC_TOPIC,
  LIVE_INTEREST_TOPIC,
  type LiveInterest,
  type Unsubscribe,
} from '@plantwatt/bus'
import type { Logger } from 'pino'

// Tells the processor which scopes this gateway has live subscribers for (issue 14,
// docs/internal-bus.md "Live figures"): changes as they happen (gathered per turn of the event
// loop, so a burst of subscribes is one message), the whole set at start and whenever the
// processor asks, and a heartbeat that renews the lease on it. A gateway that goes away without
// a word is forgotten once its lease runs out.

export interface LiveInterestOptions {
  bus: Bus
  logger: Logger
  /** This gateway's instance id: its interests are its own at the processor. */
  gateway: string
  /** The scopes watched now (live subscriptions' scopes). */
  watched: () => Iterable<string>
  isWatched: (scope: string) => boolean
  /**
   * The processor forgets this gateway's interests after this long without a message (default
   * 120 s: long beside event-loop stalls of a saturated machine — the 15,000-subscriber bench saw a
   * processor keep 34 of ~3,000 watched scopes after 30 s leases — while a gateway that stops
   * cleanly withdraws its interests at once, so only a crashed one lingers that long).
   */
  leaseMs?: number
  /** How often the lease is renewed (default a third of the lease). */
  heartbeatMs?: number
}

export class LiveInterestAnnouncer {
  /** What the processor was last told this gateway watches. */
  private readonly announced = new Set<string>()
  /** Scopes whose watching changed since the last flush. */
  private readonly touched = new Set<string>()
  private version = 0
  private flushScheduled = false
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: Unsubscribe | undefined
  private readonly leaseMs: number
  messages = 0

  constructor(private readonly options: LiveInterestOptions) {
    this.leaseMs = options.leaseMs ?? 120_000
  }

  /** Listens for the processor's sync requests, then announces the whole set (a gateway that just started). */
  async start(): Promise<void> {
    this.unsubscribe = await this.options.bus.subscribe(LIVE_INTEREST_SYNC_TOPIC, () => this.announceAll())
    this.announceAll()
    this.timer = setInterval(
      () => this.publish({ kind: 'heartbeat', version: this.version }),
      this.options.heartbeatMs ?? Math.floor(this.leaseMs / 3),
    )
    this.timer.unref()
  }

  /** Withdraws this gateway's interests (an empty full set), so the processor stops at once. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    await this.unsubscribe?.()
    this.unsubscribe = undefined
    this.touched.clear()
    this.announced.clear()
    // Not waited for long: with the broker away, the lease ends these interests anyway.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.publish({ kind: 'full', version: ++this.version, scopes: [] }),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 1000)
      }),
    ])
    clearTimeout(timer)
  }

  /** A scope's watching changed (first subscriber came, or last one left). */
  touch(scope: string): void {
    this.touched.add(scope)
    if (this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(() => this.flush())
  }

  private flush(): void {
    this.flushScheduled = false
    const added: string[] = []
    const removed: string[] = []
    for (const scope of this.touched) {
      const watched = this.options.isWatched(scope)
      if (watched && !this.announced.has(scope)) {
        this.announced.add(scope)
        added.push(scope)
      } else if (!watched && this.announced.delete(scope)) {
        removed.push(scope)
      }
    }
    this.touched.clear()
    this.send('remove', removed)
    this.send('add', added)
  }

  /** The whole set: a `full` message, then `add`s for what does not fit in it. */
  private announceAll(): void {
    this.touched.clear()
    this.announced.clear()
    for (const scope of this.options.watched()) this.announced.add(scope)
    const scopes = [...this.announced]
    void this.publish({ kind: 'full', version: ++this.version, scopes: scopes.slice(0, INTEREST_SCOPES_PER_MESSAGE) })
    this.send('add', scopes.slice(INTEREST_SCOPES_PER_MESSAGE))
  }

  private send(kind: 'add' | 'remove', scopes: string[]): void {
    for (let k = 0; k < scopes.length; k += INTEREST_SCOPES_PER_MESSAGE) {
      void this.publish({ kind, version: ++this.version, scopes: scopes.slice(k, k + INTEREST_SCOPES_PER_MESSAGE) })
    }
  }

  private async publish(part: Pick<LiveInterest, 'kind' | 'version' | 'scopes'>): Promise<void> {
    const message: LiveInterest = { gateway: this.options.gateway, leaseMs: this.leaseMs, ...part }
    this.messages++
    try {
      // QoS 1 and in order: the processor checks that versions follow each other.
      await this.options.bus.publish(LIVE_INTEREST_TOPIC, encodeMessage(message), { qos: 1 })
    } catch (error) {
      this.options.logger.warn({ err: error }, 'announcing live interests failed')
    }
  }
}
