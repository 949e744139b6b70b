import type { SyncAnswer } from '@plantwatt/bus'

// The gateway's copy of one reliable channel (CONTRACT.md §5 `alerts`, `setpoints`): the events
// the processor numbered, in seq order, the newest `capacity` of them held, and the events open
// now. The processor's own log is the source of truth; the replica asks it for a sync when it
// starts or sees a hole, so that a gateway restarted (or run as its own process) serves `since`
// exactly as the processor would.

export interface HeldEvent<T> {
  seq: number
  event: T
  /** The event as JSON, serialised once for every subscriber. */
  json: string
}

export interface ReplicaListener {
  /** New events were appended (up to `lastSeq`). */
  appended(): void
  /** Events `from`..`to` will never be held here (the sender discarded them too). */
  lost(from: number, to: number): void
}

export interface EventReplicaOptions<T> {
  /** Events held; CONTRACT.md §5 asks for at least 10,000. */
  capacity?: number
  idOf(event: T): string
  scopeOf(event: T): string
  /** Open events: shown to a subscription without `since` (raised or acked alerts, pending proposals). */
  isOpen(event: T): boolean
  /** Asks the sender for the events after `after` (answered through `receive` with `sync`). */
  requestSync(after: number): void
  /** Wall clock, ms: a sync request unanswered for syncRetryMs may be repeated. */
  now?: () => number
  syncRetryMs?: number
}

export class EventReplica<T> {
  readonly capacity: number
  private readonly ring: (HeldEvent<T> | undefined)[]
  private last = 0
  /** Lowest seq that can be held: events below it were lost before this replica saw them. */
  private floor = 1
  private readonly openById = new Map<string, HeldEvent<T>>()
  private readonly listeners = new Set<ReplicaListener>()
  private syncRequestedAt: number | undefined
  private readonly now: () => number
  duplicates = 0
  syncs = 0

  constructor(private readonly options: EventReplicaOptions<T>) {
    this.capacity = options.capacity ?? 10_000
    this.ring = new Array(this.capacity)
    this.now = options.now ?? Date.now
  }

  get lastSeq(): number {
    return this.last
  }

  /** Oldest seq held (lastSeq + 1 when none). */
  get firstHeldSeq(): number {
    return Math.max(this.floor, this.last + 1 - this.capacity)
  }

  get openCount(): number {
    return this.openById.size
  }

  /** Asks for everything held upstream: at start, before any event could show a hole. */
  start(): void {
    this.requestSync()
  }

  listen(listener: ReplicaListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** The held event with this seq, if any. */
  at(seq: number): HeldEvent<T> | undefined {
    if (seq < this.firstHeldSeq || seq > this.last) return undefined
    return this.ring[seq % this.capacity]
  }

  /**
   * Events from the sender, in seq order. Repeats (a processor replaying its journal after a
   * crash sends events again with the same seq) are dropped, the first one kept; a hole makes the
   * replica stop and ask for a sync, whose answer fills it.
   */
  receive(events: { seq: number; event: T }[], sync?: SyncAnswer<T>): void {
    if (sync) this.beginSync(sync)
    let appended = false
    for (const { seq, event } of events) {
      if (seq <= this.last) {
        this.duplicates++
        continue
      }
      if (seq !== this.last + 1) {
        this.requestSync()
        break
      }
      this.append(seq, event)
      appended = true
    }
    if (sync?.open) this.completeSync(sync)
    if (appended) for (const listener of this.listeners) listener.appended()
  }

  /**
   * Held events after `after` within `scope` (`within(eventScope)`), oldest first, and the range
   * after `after` that is no longer held (CONTRACT.md §5 `since` and `gap`).
   */
  since(after: number, within: (scope: string) => boolean) {
    const first = this.firstHeldSeq
    const gap = after + 1 < first ? { from: after + 1, to: first - 1 } : undefined
    const events: HeldEvent<T>[] = []
    for (let seq = Math.max(after + 1, first); seq <= this.last; seq++) {
      const held = this.ring[seq % this.capacity]!
      if (within(this.options.scopeOf(held.event))) events.push(held)
    }
    return { gap, events }
  }

  /** Events open now within scope, in seq order. */
  open(within: (scope: string) => boolean): HeldEvent<T>[] {
    const out: HeldEvent<T>[] = []
    for (const held of this.openById.values()) if (within(this.options.scopeOf(held.event))) out.push(held)
    return out.sort((a, b) => a.seq - b.seq)
  }

  /** The latest state of every event id held or open, newest first (GET /api/v1/alerts). */
  latest(within: (scope: string) => boolean): HeldEvent<T>[] {
    const byId = new Map<string, HeldEvent<T>>()
    for (let seq = this.last; seq >= this.firstHeldSeq; seq--) {
      const held = this.ring[seq % this.capacity]!
      const id = this.options.idOf(held.event)
      if (!byId.has(id) && within(this.options.scopeOf(held.event))) byId.set(id, held)
    }
    for (const held of this.openById.values()) {
      const id = this.options.idOf(held.event)
      if (!byId.has(id) && within(this.options.scopeOf(held.event))) byId.set(id, held)
    }
    return [...byId.values()].sort((a, b) => b.seq - a.seq)
  }

  /** The latest event of one id, open or held. */
  find(id: string): HeldEvent<T> | undefined {
    const open = this.openById.get(id)
    if (open) return open
    for (let seq = this.last; seq >= this.firstHeldSeq; seq--) {
      const held = this.ring[seq % this.capacity]!
      if (this.options.idOf(held.event) === id) return held
    }
    return undefined
  }

  private append(seq: number, event: T): void {
    const held: HeldEvent<T> = { seq, event, json: JSON.stringify(event) }
    this.ring[seq % this.capacity] = held
    this.last = seq
    const id = this.options.idOf(event)
    if (this.options.isOpen(event)) this.openById.set(id, held)
    else this.openById.delete(id)
  }

  /** What this replica still lacks and the sender no longer holds is lost: said once, to everyone. */
  private beginSync(sync: SyncAnswer<T>): void {
    if (sync.firstHeldSeq <= this.last + 1) return
    const from = this.last + 1
    const to = sync.firstHeldSeq - 1
    this.floor = sync.firstHeldSeq
    this.last = to
    for (const listener of this.listeners) listener.lost(from, to)
  }

  /** The sender's open events replace ours up to its lastSeq; anything newer we saw stays. */
  private completeSync(sync: SyncAnswer<T>): void {
    this.syncRequestedAt = undefined
    this.syncs++
    const senderOpen = new Map<string, { seq: number; event: T }>()
    for (const entry of sync.open ?? []) senderOpen.set(this.options.idOf(entry.event), entry)
    for (const [id, held] of this.openById) {
      if (held.seq <= sync.lastSeq && !senderOpen.has(id)) this.openById.delete(id)
    }
    for (const [id, entry] of senderOpen) {
      const mine = this.openById.get(id)
      if (!mine || mine.seq < entry.seq) {
        this.openById.set(id, { seq: entry.seq, event: entry.event, json: JSON.stringify(entry.event) })
      }
    }
  }

  private requestSync(): void {
    const now = this.now()
    if (this.syncRequestedAt !== undefined && now - this.syncRequestedAt < (this.options.syncRetryMs ?? 2000)) return
    this.syncRequestedAt = now
    this.options.requestSync(this.last)
  }
}
