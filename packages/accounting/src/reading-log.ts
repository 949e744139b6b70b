// The retained readings as a log (issue 13, "checkpoints that grow with what changed").
//
// A device's series of one measurement (series.ts) is a set of (t, v) that grows by insertion (in
// any order) and loses readings only at its old end (eviction by time or by count; a reading
// older than the evicted end is never inserted again). So the readings it retains are exactly the
// readings ever inserted with t ≥ its first retained time (`head`). Each checkpoint therefore
// writes only a chunk of what was inserted since the previous one (per series, the readings from
// the earliest time inserted since then, `ReadingSeries.dirtyFrom`: appends log just themselves, a
// late reading the few after it), and the state keeps, per series, `head` and the other fields a
// series carries (flags, firstEver, lastEver). Restore gathers a series' readings from the
// chunks, sorts them, keeps the last of equal times and drops what is before `head`.
//
// Chunks are pruned from the oldest: one can go once no series retains a reading that only it
// holds. Per chunk, the series it holds and the newest time of each are kept in memory; a series
// whose retained readings reach back into the oldest chunk is logged whole again (carried
// forward) in the chunk being written, in the same transaction that deletes the old one. That is
// cheap once the oldest chunk is older than the retention (only quiet devices' few readings are
// carried), so a chunk is pruned when what it would carry is small against what it holds, or when
// too many are held (a bound on the store and on restore time whatever the retention).
//
// `logGen` per series is the first chunk holding all of its retained readings: a series created
// anew (a measurement forgotten and seen again) is logged whole, and chunks before it are not its.

import type { ReadingSeries } from './series.ts'

/** Per series: the state a checkpoint keeps beside the log (one entry per series, all series). */
export interface SeriesLogState {
  /** `device name` per series, joined by newlines (ids and names hold neither: CONTRACT.md §1, §2). */
  keys: string
  /** Bit 0: has values; bit 1: evicted. */
  flags: Uint8Array
  /** firstEver, lastEver per series. */
  ever: Float64Array
  /** Time of the first retained reading, +∞ for none. */
  head: Float64Array
  /** Retained readings (a check at restore). */
  len: Uint32Array
  /** The first chunk holding all of the series' retained readings. */
  logGen: Float64Array
  /** The generation the next chunk gets. */
  next: number
}

/**
 * A chunk to write and the chunks to delete, in the same transaction as the state that claims them.
 * The chunk is in parts (each a chunk of its own format, holding some of the series): built over
 * several turns (ReadingLogCapture), a part per turn, so that no turn copies the whole chunk.
 */
export interface ReadingLogWrite {
  gen: number
  parts: Uint8Array[]
  /** Chunks of generations below this one are deleted. */
  pruneBelow: number
  /** Readings in the chunk. */
  readings: number
  /** Of them, logged whole again: carried forward from pruned chunks, new series, or all when full. */
  whole: number
}

interface ChunkSummary {
  gen: number
  series: ReadingSeries[]
  /** Newest time of each series in the chunk. */
  maxT: Float64Array
  readings: number
}

/** A chunk is pruned while what it carries forward is at most this share of what it holds… */
const CARRY_SHARE = 1 / 4
/** …or while more than this many are held. */
const MAX_CHUNKS = 32

/** A series to log: its `logKey` (`device name`) set (ids and names hold neither a space nor a newline). */
export type LoggedSeries = ReadingSeries & { logKey: string }

const HEADER = 4
const VERSION = 1

export class ReadingLog {
  private chunks: ChunkSummary[] = []
  next = 0
  private capturing: ReadingLogCapture | undefined

  /**
   * The chunk of what was inserted since the previous take (every retained reading when `full`) and
   * the state of every series, at once (tests, and where no event loop is to be spared).
   */
  take(all: readonly LoggedSeries[], full: boolean): { write: ReadingLogWrite; state: SeriesLogState } {
    const capture = this.begin(all, full)
    capture.slice(() => true)
    return { write: capture.write(), state: capture.state }
  }

  /**
   * The same as take() at this moment, taken over several turns (issue 13: a checkpoint never
   * holds the event loop more than a few ms): this turn decides the pruning and arms every series;
   * the caller runs `slice` in later turns until it returns true. A series a reading is about to
   * change before its turn is taken just before the change (copy-on-write, ReadingSeries.capture),
   * so the chunk and the state are those of this moment. Proportional to the series (a field
   * written on each) plus the series of the oldest chunk.
   */
  begin(all: readonly LoggedSeries[], full: boolean): ReadingLogCapture {
    if (this.capturing?.open) throw new Error('a reading log chunk is being captured already')
    const gen = this.next++
    let pruneBelow = this.chunks[0]?.gen ?? gen
    if (full) {
      this.chunks = []
      pruneBelow = gen
    } else {
      while (this.chunks.length > 0) {
        const oldest = this.chunks[0]!
        let carry = 0
        const { series, maxT } = oldest
        for (let i = 0; i < series.length; i++) {
          const s = series[i]!
          if (s.logGen <= oldest.gen && s.dirtyFrom !== Number.NEGATIVE_INFINITY && s.len > 0 && s.time(0) <= maxT[i]!)
            carry += s.len
        }
        if (carry > oldest.readings * CARRY_SHARE && this.chunks.length <= MAX_CHUNKS) break
        for (let i = 0; i < series.length; i++) {
          const s = series[i]!
          if (s.logGen <= oldest.gen && s.len > 0 && s.time(0) <= maxT[i]!) s.dirtyFrom = Number.NEGATIVE_INFINITY
        }
        this.chunks.shift()
        pruneBelow = this.chunks[0]?.gen ?? gen
      }
    }
    this.capturing = new ReadingLogCapture(all, full, gen, pruneBelow, this.next, (summary) => {
      if (summary.readings > 0) this.chunks.push(summary)
    })
    return this.capturing
  }

  /**
   * Rebuilds every series from the state and the chunks held (in generation order); `make` gives
   * the series object to fill for a device and measurement (undefined: the device is no longer in
   * the plant). Returns the series whose readings did not add up to the count the state recorded
   * (none unless the store lost a chunk).
   */
  restore(
    state: SeriesLogState,
    chunks: Iterable<[number, Uint8Array]>,
    make: (device: string, name: string, withValues: boolean) => ReadingSeries | undefined,
  ): { mismatched: string[] } {
    const keys = state.keys === '' ? [] : state.keys.split('\n')
    const index = new Map<string, number>()
    for (let k = 0; k < keys.length; k++) index.set(keys[k]!, k)
    // Per series: chunk segments (gen, t, v) in generation order.
    const parts: { gen: number; t: Float64Array; v: Float64Array | undefined }[][] = keys.map(() => [])
    const chunkSeries: { gen: number; ks: number[]; maxT: number[]; readings: number }[] = []
    // A chunk's parts come one after another under the same generation: one chunk (ReadingLogWrite).
    for (const [gen, bytes] of chunks) {
      const chunk = decodeChunk(bytes)
      let summary = chunkSeries.at(-1)
      if (summary?.gen !== gen) {
        summary = { gen, ks: [], maxT: [], readings: 0 }
        chunkSeries.push(summary)
      }
      for (const part of chunk) {
        const k = index.get(part.key)
        if (k === undefined || gen < state.logGen[k]!) continue
        parts[k]!.push({ gen, t: part.t, v: part.v })
        summary.ks.push(k)
        summary.maxT.push(part.t.length > 0 ? part.t[part.t.length - 1]! : Number.NEGATIVE_INFINITY)
      }
      summary.readings += chunk.reduce((n, p) => n + p.t.length, 0)
    }
    const made: (ReadingSeries | undefined)[] = new Array(keys.length)
    const mismatched: string[] = []
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k]!
      const space = key.indexOf(' ')
      const withValues = (state.flags[k]! & 1) === 1
      const s = make(key.slice(0, space), key.slice(space + 1), withValues)
      if (s === undefined) continue
      made[k] = s
      const { t, v } = merge(parts[k]!, state.head[k]!, withValues)
      s.t = new Float64Array(Math.max(8, t.length))
      s.t.set(t)
      s.v = withValues ? new Float64Array(s.t.length) : undefined
      if (s.v && v) s.v.set(v)
      s.head = 0
      s.len = t.length
      s.evicted = (state.flags[k]! & 2) === 2
      s.firstEver = state.ever[2 * k]!
      s.lastEver = state.ever[2 * k + 1]!
      s.logGen = state.logGen[k]!
      s.dirtyFrom = Number.POSITIVE_INFINITY
      s.capture = undefined
      if (t.length !== state.len[k]) mismatched.push(key)
    }
    this.next = state.next
    this.chunks = chunkSeries.map(({ gen, ks, maxT, readings }) => {
      const series: ReadingSeries[] = []
      const max: number[] = []
      ks.forEach((k, i) => {
        const s = made[k]
        if (s === undefined) return
        series.push(s)
        max.push(maxT[i]!)
      })
      return { gen, series, maxT: Float64Array.from(max), readings }
    })
    return { mismatched }
  }

  /** Chunks held (tests, metrics). */
  get held(): number {
    return this.chunks.length
  }
}

/** A chunk's series: key, times and values (views into one aligned copy). */
export function decodeChunk(bytes: Uint8Array): { key: string; t: Float64Array; v: Float64Array | undefined }[] {
  // A stored value need not be aligned for a Float64Array view: copied into an array of its own.
  const floats = new Float64Array(Math.floor(bytes.byteLength / 8))
  new Uint8Array(floats.buffer).set(bytes.subarray(0, floats.length * 8))
  if (floats[0] !== VERSION) throw new Error(`reading log chunk of version ${floats[0]}, not ${VERSION}`)
  const m = floats[1]!
  const values = floats[2]!
  const keyBytes = floats[3]!
  const keysAt = (HEADER + 2 * m + values) * 8
  const keys = m === 0 ? [] : new TextDecoder().decode(new Uint8Array(floats.buffer, keysAt, keyBytes)).split('\n')
  const out: { key: string; t: Float64Array; v: Float64Array | undefined }[] = []
  let at = HEADER + 2 * m
  for (let j = 0; j < m; j++) {
    const count = floats[HEADER + 2 * j]!
    const withValues = floats[HEADER + 2 * j + 1] === 1
    const t = floats.subarray(at, at + count)
    at += count
    const v = withValues ? floats.subarray(at, at + count) : undefined
    if (withValues) at += count
    out.push({ key: keys[j]!, t, v })
  }
  return out
}

/** A series' segments merged: sorted by time, the latest chunk's of equal times, none before `head`. */
function merge(
  parts: { t: Float64Array; v: Float64Array | undefined }[],
  head: number,
  withValues: boolean,
): { t: Float64Array; v: Float64Array | undefined } {
  let n = 0
  for (const p of parts) n += p.t.length
  const idx: number[] = []
  const ts = new Float64Array(n)
  const vs = new Float64Array(n)
  let at = 0
  for (const p of parts) {
    ts.set(p.t, at)
    if (p.v) vs.set(p.v, at)
    at += p.t.length
  }
  for (let i = 0; i < n; i++) if (ts[i]! >= head) idx.push(i)
  // Stable by time, later position (later chunk) last: the last of equal times wins.
  idx.sort((a, b) => ts[a]! - ts[b]! || a - b)
  const t: number[] = []
  const v: number[] = []
  for (let j = 0; j < idx.length; j++) {
    const i = idx[j]!
    if (j + 1 < idx.length && ts[idx[j + 1]!] === ts[i]) continue
    t.push(ts[i]!)
    v.push(vs[i]!)
  }
  return { t: Float64Array.from(t), v: withValues ? Float64Array.from(v) : undefined }
}

/** One series as taken for the chunk: its readings from `from` on (views, or copies if taken early). */
interface Taken {
  k: number
  t: Float64Array
  v: Float64Array | undefined
}

/**
 * A reading log chunk and the series' state taken over several turns (ReadingLog.begin). The
 * series are taken in order a slice at a time, each slice's logged readings written as one part;
 * a series changed before its turn was taken (copied) just before the change.
 */
export class ReadingLogCapture {
  /** The series' state, complete once `slice` returned true. */
  readonly state: SeriesLogState
  private readonly keys: string[]
  private readonly early: (Taken | null | undefined)[]
  private readonly parts: Uint8Array[] = []
  private readonly series: ReadingSeries[] = []
  private readonly maxT: number[] = []
  private readings = 0
  private whole = 0
  private nextK = 0
  private closed = false

  constructor(
    private readonly all: readonly LoggedSeries[],
    private readonly full: boolean,
    private readonly gen: number,
    private readonly pruneBelow: number,
    next: number,
    private readonly done: (summary: ChunkSummary) => void,
  ) {
    const n = all.length
    this.state = {
      keys: '',
      flags: new Uint8Array(n),
      ever: new Float64Array(2 * n),
      head: new Float64Array(n),
      len: new Uint32Array(n),
      logGen: new Float64Array(n),
      next,
    }
    this.keys = new Array(n)
    this.early = new Array(n)
    for (let k = 0; k < n; k++) {
      const s = all[k]!
      s.capture = this
      s.captureIndex = k
    }
  }

  /** Whether it is still running (not complete, not closed). */
  get open(): boolean {
    return !this.closed
  }

  /** The series `k` is about to change (ReadingSeries): taken now, as it stands at the snapshot. */
  beforeChange(k: number): void {
    const taken = this.take(k)
    this.early[k] = taken === undefined ? null : { k, t: taken.t.slice(), v: taken.v?.slice() }
  }

  /**
   * Takes series in order while `more()` says so (at least one) and writes what they log as one
   * part; true once every series is taken (the state is then complete, no series armed any more).
   */
  slice(more: () => boolean): boolean {
    if (this.closed) throw new Error('reading log capture is closed')
    const n = this.all.length
    const list: Taken[] = []
    while (this.nextK < n) {
      const k = this.nextK++
      const early = this.early[k]
      let taken: Taken | undefined
      if (early === undefined) taken = this.take(k)
      else {
        this.early[k] = undefined
        taken = early ?? undefined
      }
      if (taken !== undefined) list.push(taken)
      if (!more()) break
    }
    if (list.length > 0) this.parts.push(this.part(list))
    if (this.nextK < n) return false
    this.state.keys = this.keys.join('\n')
    this.closed = true
    this.done({ gen: this.gen, series: this.series, maxT: Float64Array.from(this.maxT), readings: this.readings })
    return true
  }

  /** The chunk's write; complete once `slice` returned true. */
  write(): ReadingLogWrite {
    return { gen: this.gen, parts: this.parts, pruneBelow: this.pruneBelow, readings: this.readings, whole: this.whole }
  }

  /**
   * Disarms the series not taken yet (a checkpoint given up: its chunk is never written, so the
   * next one must be full, as after a failed write). Safe to call twice.
   */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (let k = this.nextK; k < this.all.length; k++) {
      const s = this.all[k]!
      if (s.capture === this) s.capture = undefined
    }
  }

  /** Series k's state now and its readings to log (views into the series), and disarms it. */
  private take(k: number): Taken | undefined {
    const s = this.all[k]!
    s.capture = undefined
    this.keys[k] = s.logKey
    const { state } = this
    state.flags[k] = (s.v ? 1 : 0) | (s.evicted ? 2 : 0)
    state.ever[2 * k] = s.firstEver
    state.ever[2 * k + 1] = s.lastEver
    state.head[k] = s.len > 0 ? s.time(0) : Number.POSITIVE_INFINITY
    state.len[k] = s.len
    const whole = this.full || s.logGen < 0 || s.dirtyFrom === Number.NEGATIVE_INFINITY
    if (whole) s.logGen = this.gen
    state.logGen[k] = s.logGen
    const from = whole ? 0 : s.dirtyFrom === Number.POSITIVE_INFINITY ? s.len : s.lowerBound(s.dirtyFrom)
    s.dirtyFrom = Number.POSITIVE_INFINITY
    const count = s.len - from
    if (count === 0) return undefined
    if (whole) this.whole += count
    this.readings += count
    this.series.push(s)
    this.maxT.push(s.time(s.len - 1))
    return {
      k,
      t: s.t.subarray(s.head + from, s.head + s.len),
      v: s.v?.subarray(s.head + from, s.head + s.len),
    }
  }

  /** One Float64Array: header, per logged series its count and flags, the readings, then the keys. */
  private part(list: Taken[]): Uint8Array {
    const m = list.length
    let values = 0
    const keys: string[] = new Array(m)
    for (let j = 0; j < m; j++) {
      const { k, t, v } = list[j]!
      values += t.length * (v ? 2 : 1)
      keys[j] = this.keys[k]!
    }
    const keyBytes = new TextEncoder().encode(keys.join('\n'))
    const out = new Float64Array(HEADER + 2 * m + values + Math.ceil(keyBytes.byteLength / 8))
    out[0] = VERSION
    out[1] = m
    out[2] = values
    out[3] = keyBytes.byteLength
    let at = HEADER + 2 * m
    for (let j = 0; j < m; j++) {
      const { t, v } = list[j]!
      out[HEADER + 2 * j] = t.length
      out[HEADER + 2 * j + 1] = v ? 1 : 0
      out.set(t, at)
      at += t.length
      if (v) {
        out.set(v, at)
        at += v.length
      }
    }
    new Uint8Array(out.buffer, at * 8, keyBytes.byteLength).set(keyBytes)
    return new Uint8Array(out.buffer)
  }
}
