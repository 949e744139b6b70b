// The event log of one WebSocket channel (CONTRACT.md §5): every event gets the next `seq`, starting
// at 1 across the whole plant; the newest `capacity` events are held in a ring; a reader resuming
// after `seq` N gets the held events after N in its scope, and a `gap` when some after N are gone.

import { isWithinScope } from '@plantwatt/plant'

export interface Sequenced<T> {
  seq: number
  event: T
}

export interface SinceResult<T> {
  /** The discarded range after N (inclusive), when there is one; send it before the events. */
  gap: { from: number; to: number } | undefined
  events: Sequenced<T>[]
}

export interface EventLogJson<T> {
  format: 'plantwatt-event-log'
  version: 1
  capacity: number
  nextSeq: number
  /** Held events, oldest first. */
  events: Sequenced<T>[]
}

/** Anything with a scope string (alerts, setpoint events). */
export interface Scoped {
  scope: string
}

export class EventLog<T extends Scoped> {
  private readonly ring: (Sequenced<T> | undefined)[]
  /** seq of the next event; the held ones are max(1, next − capacity) … next − 1. */
  private next = 1
  /** Lowest seq that can be held: 1, or after a restore into a larger ring, the first one restored. */
  private floor = 1

  constructor(readonly capacity = 10_000) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer')
    this.ring = new Array(capacity)
  }

  /** Appends and returns the event with its seq. */
  append(event: T): Sequenced<T> {
    const entry = { seq: this.next++, event }
    this.ring[entry.seq % this.capacity] = entry
    return entry
  }

  /** seq of the latest event, 0 when none yet. */
  get lastSeq(): number {
    return this.next - 1
  }

  /** seq of the oldest event held, or lastSeq + 1 when none is held. */
  get firstHeldSeq(): number {
    return Math.max(this.floor, this.next - this.capacity)
  }

  /**
   * Held events with seq > after whose scope lies within `scope` (every scope when undefined), oldest
   * first; `gap` names the events after `after` already discarded (CONTRACT.md §5 `since`).
   */
  since(after: number, scope?: string): SinceResult<T> {
    const first = this.firstHeldSeq
    const start = Math.max(after + 1, first)
    const gap = after + 1 < first ? { from: after + 1, to: first - 1 } : undefined
    const events: Sequenced<T>[] = []
    for (let seq = start; seq < this.next; seq++) {
      const entry = this.ring[seq % this.capacity]!
      if (scope === undefined || isWithinScope(entry.event.scope, scope)) events.push(entry)
    }
    return { gap, events }
  }

  toJSON(): EventLogJson<T> {
    return {
      format: 'plantwatt-event-log',
      version: 1,
      capacity: this.capacity,
      nextSeq: this.next,
      events: this.since(0).events,
    }
  }

  /** A log from its JSON; `capacity` may differ from the saved one (the newest events are kept). */
  static fromJSON<T extends Scoped>(json: EventLogJson<T>, capacity = json.capacity): EventLog<T> {
    if (json?.format !== 'plantwatt-event-log' || json.version !== 1) throw new Error('not a plantwatt event log')
    const log = new EventLog<T>(capacity)
    const events = json.events.slice(-capacity)
    log.next = json.nextSeq
    log.floor = Math.max(1, events[0]?.seq ?? json.nextSeq)
    for (const entry of events) {
      if (!(entry.seq < json.nextSeq && entry.seq >= json.nextSeq - capacity)) continue
      log.ring[entry.seq % capacity] = entry
    }
    // A hole in the saved events would read as undefined: refuse rather than crash later.
    for (let seq = log.firstHeldSeq; seq < log.next; seq++) {
      if (log.ring[seq % capacity]?.seq !== seq) throw new Error(`event log JSON lacks seq ${seq}`)
    }
    return log
  }
}
