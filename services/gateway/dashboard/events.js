// Alerts and setpoint events by id, each at its latest state (CONTRACT.md §5: one alert keeps its
// id through raised → acked → cleared; a setpoint proposal through its statuses). Events carry a
// per-channel `seq`; a replay after a reconnect may repeat events already seen, so an event only
// replaces what is held when its seq is newer. Closed items beyond `cap` are forgotten, oldest
// first; open ones are kept whatever their number, because "idle now" and the actions need them.

export class EventBook {
  /**
   * @param {number} cap closed items to keep
   * @param {(item: object) => boolean} isOpen
   */
  constructor(cap, isOpen) {
    this.cap = cap
    this.isOpen = isOpen
    /** @type {Map<string, {seq: number, item: object, version: number}>} */
    this.entries = new Map()
    this.lastSeq = 0
    this.closed = 0
  }

  /** Returns the entry when it changed, else undefined. A seq of 0 means "unknown" (HTTP lists). */
  apply(seq, item) {
    if (!item || typeof item.id !== 'string') return undefined
    if (seq > this.lastSeq) this.lastSeq = seq
    const held = this.entries.get(item.id)
    if (held && seq !== 0 && held.seq >= seq) return undefined
    if (held && seq === 0 && (held.seq !== 0 || held.item.at > item.at)) return undefined
    if (held && !this.isOpen(held.item)) this.closed--
    const entry = { seq, item, version: (held?.version ?? 0) + 1 }
    // Re-inserting moves the entry to the end of the Map: iteration order stays "oldest change first".
    this.entries.delete(item.id)
    this.entries.set(item.id, entry)
    if (!this.isOpen(item)) this.closed++
    if (this.closed > this.cap * 1.5) this.prune()
    return entry
  }

  clear() {
    this.entries.clear()
    this.closed = 0
    this.lastSeq = 0
  }

  prune() {
    for (const [id, entry] of this.entries) {
      if (this.closed <= this.cap) break
      if (this.isOpen(entry.item)) continue
      this.entries.delete(id)
      this.closed--
    }
  }

  /** The `limit` items changed most recently (by seq, then time), newest first. */
  newest(limit) {
    const all = [...this.entries.values()]
    all.sort((a, b) => b.seq - a.seq || b.item.at - a.item.at)
    return all.length > limit ? all.slice(0, limit) : all
  }
}
