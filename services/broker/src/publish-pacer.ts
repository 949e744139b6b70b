import { TokenBucket } from './token-bucket.ts'

// Slowing, not disconnecting, a client that publishes faster than its rate (CONTRACT.md §4,
// issue 12 finding 10), as EMQX's rate limits do. aedes reads a connection's socket again only
// once every packet of its last read has been handled, so holding back the authorization of the
// publishes over budget stops the socket being read: TCP pushes back on the device until its
// budget refills, and nothing of its is dropped.

export interface PacerClock {
  now(): number
  /** Runs `callback` in `ms`; returns a cancel function. */
  schedule(callback: () => void, ms: number): () => void
}

export const realClock = (now: () => number): PacerClock => ({
  now,
  schedule(callback, ms) {
    const timer = setTimeout(callback, ms)
    return () => clearTimeout(timer)
  },
})

export type Admission = 'now' | 'queued' | 'full'

/** One client's publishes, let through at `ratePerS` (burst `burst`), in arrival order. */
export class PublishPacer {
  private readonly bucket: TokenBucket
  /**
   * Publishes waiting for a token: bound `maxQueued`. In practice one socket read's worth (aedes
   * reads no more until these are handled), a few thousand at most for the smallest PUBLISH.
   */
  private readonly queue: (() => void)[] = []
  private cancel: (() => void) | undefined
  /** When the client began to be slowed (ms), or undefined while it is within its rate. */
  private slowedSince: number | undefined
  private closed = false

  constructor(
    ratePerS: number,
    burst: number,
    private readonly maxQueued: number,
    private readonly clock: PacerClock,
    /** Called when the client is no longer slowed, with how long it was (ms). */
    private readonly onResumed: (slowedMs: number) => void = () => {},
  ) {
    this.bucket = new TokenBucket(ratePerS, burst, clock.now())
  }

  /** True while publishes wait: the client's socket is not being read. */
  get slowed(): boolean {
    return this.slowedSince !== undefined
  }

  get queued(): number {
    return this.queue.length
  }

  /**
   * Takes a token for a publish that may go at once: nothing waits and the client is within its
   * rate. The uplink fast path asks this first, so a device within its rate (every device, in
   * practice) costs no closure per publish; false means go through `admit`.
   */
  tryNow(): boolean {
    return !this.closed && this.queue.length === 0 && this.bucket.take(this.clock.now())
  }

  /**
   * Lets `proceed` run now if the client is within its rate, or queues it until a token refills.
   * 'full' (never run) only when more than `maxQueued` wait: not a client aedes reads from.
   */
  admit(proceed: () => void): Admission {
    if (this.closed) return 'full'
    const now = this.clock.now()
    if (this.queue.length === 0 && this.bucket.take(now)) {
      proceed()
      return 'now'
    }
    if (this.queue.length >= this.maxQueued) return 'full'
    this.queue.push(proceed)
    if (this.slowedSince === undefined) {
      this.slowedSince = now
      this.wake()
    }
    return 'queued'
  }

  /** Forgets what waits (the connection is gone). */
  close(): void {
    this.closed = true
    this.cancel?.()
    this.queue.length = 0
  }

  private wake(): void {
    this.cancel = this.clock.schedule(() => this.release(), Math.max(1, this.bucket.msUntilToken(this.clock.now())))
  }

  private release(): void {
    this.cancel = undefined
    if (this.closed) return
    const now = this.clock.now()
    let ready = 0
    while (ready < this.queue.length && this.bucket.take(now)) ready++
    for (const proceed of this.queue.splice(0, ready)) proceed()
    if (this.queue.length > 0) return this.wake()
    const slowedMs = now - (this.slowedSince ?? now)
    this.slowedSince = undefined
    this.onResumed(slowedMs)
  }
}
