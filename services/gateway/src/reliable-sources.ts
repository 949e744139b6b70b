import type { EventReplica, HeldEvent, ReplicaListener } from './event-replica.ts'

// Frames a client must get in order or not at all (CONTRACT.md §5): alert and setpoint events,
// and buckets. A connection pulls them from its sources only while the socket can take more, so
// a slow client costs its socket buffer and a cursor, never a copy of the events; one that falls
// so far behind that what it still needs is gone is closed with 1013 to resume with `since`.

export interface ReliableSource {
  /** The next frame to send, or undefined when nothing waits. */
  next(): string | undefined
  /** Set when the client fell behind what can be kept for it: close with 1013. */
  readonly lagged: boolean
  /** Checks, without sending, whether what the client still needs is gone (sets `lagged`). */
  checkLag(): boolean
  dispose(): void
}

/** Alerts and setpoint events alike carry their scope. */
export interface ScopedEvent {
  scope: string
}

export interface EventSubscriptionOptions<T extends ScopedEvent> {
  id: string
  replica: EventReplica<T>
  /** Whether an event's scope is within the subscription's scope (and the token's). */
  within: (scope: string) => boolean
  /** The frame of one held event for this subscription. */
  frame: (sub: string, held: HeldEvent<T>) => string
  /** CONTRACT.md §5 `since`; undefined: the events open now, then new ones. */
  since?: number
  /** Called when new frames may be waiting. */
  wake: () => void
}

/** One `alerts` or `setpoints` subscription: a backlog (replay or open events), then a cursor. */
export class EventSubscription<T extends ScopedEvent> implements ReliableSource, ReplicaListener {
  private backlog: HeldEvent<T>[]
  private backlogIndex = 0
  private pendingGap: string | undefined
  /** seq of the last event this subscription has gone past (sent or skipped as out of scope). */
  private cursor: number
  private readonly unlisten: () => void
  lagged = false

  constructor(private readonly options: EventSubscriptionOptions<T>) {
    const { replica, since, within } = options
    if (since === undefined) {
      this.backlog = replica.open(within)
    } else {
      const { gap, events } = replica.since(since, within)
      if (gap) this.pendingGap = gapFrame(options.id, gap.from, gap.to)
      this.backlog = events
    }
    this.cursor = replica.lastSeq
    this.unlisten = replica.listen(this)
  }

  appended(): void {
    this.options.wake()
  }

  lost(from: number, to: number): void {
    // Everything before `from` sent: the client is told of the hole and carries on after it.
    // Otherwise what it still needed went with the hole: it resumes with `since`.
    if (this.cursor === from - 1 && this.pendingGap === undefined) {
      this.pendingGap = gapFrame(this.options.id, from, to)
      this.cursor = to
    } else {
      this.lagged = true
    }
    this.options.wake()
  }

  checkLag(): boolean {
    if (this.cursor < this.options.replica.firstHeldSeq - 1) this.lagged = true
    return this.lagged
  }

  next(): string | undefined {
    if (this.pendingGap !== undefined) {
      const gap = this.pendingGap
      this.pendingGap = undefined
      return gap
    }
    if (this.backlogIndex < this.backlog.length) {
      const held = this.backlog[this.backlogIndex++]!
      if (this.backlogIndex === this.backlog.length) this.backlog = []
      return this.options.frame(this.options.id, held)
    }
    const { replica, within } = this.options
    if (this.checkLag()) return undefined
    while (this.cursor < replica.lastSeq) {
      const held = replica.at(++this.cursor)!
      if (within(held.event.scope)) return this.options.frame(this.options.id, held)
    }
    return undefined
  }

  dispose(): void {
    this.unlisten()
  }
}

function gapFrame(sub: string, from: number, to: number): string {
  return JSON.stringify({ type: 'gap', sub, from, to })
}

/** One `buckets` subscription: frames queued up to a byte bound, beyond which the client lags. */
export class QueueSubscription implements ReliableSource {
  private readonly queue: string[] = []
  private head = 0
  private bytes = 0
  lagged = false

  constructor(
    private readonly maxQueuedBytes: number,
    private readonly wake: () => void,
    private readonly onDispose: () => void,
  ) {}

  push(frame: string): void {
    if (this.lagged) return
    this.bytes += frame.length
    if (this.bytes > this.maxQueuedBytes) {
      this.lagged = true
      this.queue.length = 0
      this.head = 0
    } else {
      this.queue.push(frame)
    }
    this.wake()
  }

  checkLag(): boolean {
    return this.lagged
  }

  next(): string | undefined {
    if (this.head >= this.queue.length) return undefined
    const frame = this.queue[this.head++]!
    this.bytes -= frame.length
    if (this.head === this.queue.length) {
      this.queue.length = 0
      this.head = 0
    }
    return frame
  }

  dispose(): void {
    this.onDispose()
  }
}
