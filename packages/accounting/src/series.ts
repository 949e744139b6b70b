// Recent readings of one device and measurement, ordered by their own time (CONTRACT.md §2, §7),
// in typed arrays: a window of a linear buffer (head..head+len) that slides forward as old
// readings are evicted and is compacted when it reaches the end, so appends (the usual case) cost
// O(1) and a late reading is inserted with one copyWithin of the readings after it.

const INITIAL_CAPACITY = 8

export class ReadingSeries {
  t: Float64Array
  /** Values; absent for measurements kept for ordering and dedup only. */
  v: Float64Array | undefined
  head = 0
  len = 0
  /** True once a reading was dropped from the front: older positions are no longer known. */
  evicted = false
  /** Earliest and latest time ever accepted (kept across evictions: counter coverage, §7). */
  firstEver = Number.POSITIVE_INFINITY
  lastEver = Number.NEGATIVE_INFINITY
  /**
   * The checkpoint's reading log (reading-log.ts): earliest time inserted since the last checkpoint
   * (+∞: none, −∞: log the series whole), and the first log chunk holding all retained readings
   * (−1: none yet).
   */
  dirtyFrom = Number.NEGATIVE_INFINITY
  logGen = -1
  /** `device name`, the series' key in the log (made once, not at every checkpoint). */
  logKey: string | undefined
  /**
   * A checkpoint's reading log capture that has not taken this series yet (reading-log.ts): told
   * before the series changes, so that it takes the series as it stood at the snapshot.
   */
  capture: { beforeChange(index: number): void } | undefined = undefined
  captureIndex = 0

  constructor(withValues: boolean, capacity = INITIAL_CAPACITY) {
    this.t = new Float64Array(capacity)
    this.v = withValues ? new Float64Array(capacity) : undefined
  }

  time(i: number): number {
    return this.t[this.head + i]!
  }

  value(i: number): number {
    return this.v![this.head + i]!
  }

  /** Index of the first reading with time ≥ t (len when none). Searches from the end: most readings append. */
  lowerBound(t: number): number {
    const { t: times, head } = this
    let hi = this.len
    if (hi === 0 || times[head + hi - 1]! < t) return hi
    let lo = 0
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (times[head + mid]! < t) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  insert(pos: number, t: number, value: number): void {
    this.capture?.beforeChange(this.captureIndex)
    if (this.head + this.len === this.t.length) this.makeRoom()
    const at = this.head + pos
    const end = this.head + this.len
    if (pos < this.len) {
      this.t.copyWithin(at + 1, at, end)
      this.v?.copyWithin(at + 1, at, end)
    }
    this.t[at] = t
    if (this.v) this.v[at] = value
    this.len++
    if (t < this.dirtyFrom) this.dirtyFrom = t
    if (t < this.firstEver) this.firstEver = t
    if (t > this.lastEver) this.lastEver = t
  }

  /**
   * Drops readings older than `cutoff`, keeping the latest one at or before it so that the
   * interval reaching into the window stays known; never keeps more than `maxLen`.
   */
  evictBefore(cutoff: number, maxLen: number): void {
    let drop = 0
    const { t, head } = this
    while (this.len - drop >= 2 && t[head + drop + 1]! <= cutoff) drop++
    if (this.len - drop > maxLen) drop = this.len - maxLen
    if (drop > 0) {
      this.capture?.beforeChange(this.captureIndex)
      this.head += drop
      this.len -= drop
      this.evicted = true
    }
  }

  private makeRoom(): void {
    const { len, head } = this
    if (head > 0 && len <= this.t.length / 2) {
      this.t.copyWithin(0, head, head + len)
      this.v?.copyWithin(0, head, head + len)
    } else {
      const t = new Float64Array(this.t.length * 2)
      t.set(this.t.subarray(head, head + len))
      this.t = t
      if (this.v) {
        const v = new Float64Array(t.length)
        v.set(this.v.subarray(head, head + len))
        this.v = v
      }
    }
    this.head = 0
  }

  /** The retained readings, compact, for a checkpoint. */
  toJSON(): SeriesState {
    return {
      t: this.t.slice(this.head, this.head + this.len),
      v: this.v?.slice(this.head, this.head + this.len),
      evicted: this.evicted,
      firstEver: this.firstEver,
      lastEver: this.lastEver,
    }
  }

  static from(state: SeriesState): ReadingSeries {
    const series = new ReadingSeries(state.v !== undefined, Math.max(INITIAL_CAPACITY, state.t.length))
    series.t.set(state.t)
    if (state.v) series.v!.set(state.v)
    series.len = state.t.length
    series.evicted = state.evicted
    series.firstEver = state.firstEver
    series.lastEver = state.lastEver
    return series
  }
}

export interface SeriesState {
  t: Float64Array
  v: Float64Array | undefined
  evicted: boolean
  firstEver: number
  lastEver: number
}
