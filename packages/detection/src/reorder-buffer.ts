// The reorder buffer of one site (CONTRACT.md §7 "state machines take each equipment's readings in
// its own time order"): readings wait here until the release watermark (site clock − latenessS)
// passes them, then leave in (time, equipment, device, measurement) order. Under §7's lateness bound
// every reading before the watermark has arrived, so what leaves, and in which order per equipment,
// depends only on the set of readings — never on how different devices' arrivals interleave.
//
// No reading is released earlier: NB-IoT devices retransmit and reorder their own readings, so no
// per-device order can be assumed, and nothing short of the watermark proves that an earlier
// reading of the same equipment will not still come (§7 allows alerts to wait latenessS).
//
// Memory: a binary heap over parallel typed arrays, ~24 bytes per buffered reading (time, order key,
// value), no object per reading; it holds about latenessS × the site's rate of power and output
// readings, and shrinks back when it empties.

/**
 * The buffered readings: typed arrays since issue 13 (a checkpoint copies them as they are, where
 * an array of numbers per reading cost the event loop hundreds of ms at 10,000 devices); plain arrays
 * in older checkpoints, and objects with index keys after a JSON round trip, are read too.
 */
export interface BufferJson {
  t: ArrayLike<number>
  k: ArrayLike<number>
  v: ArrayLike<number>
}

function numbers(x: ArrayLike<number> | Record<string, number>): ArrayLike<number> {
  return Array.isArray(x) || ArrayBuffer.isView(x) ? (x as ArrayLike<number>) : Object.values(x)
}

const INITIAL = 256

export class ReorderBuffer {
  private t = new Float64Array(INITIAL)
  private k = new Float64Array(INITIAL)
  private v = new Float64Array(INITIAL)
  private n = 0
  /** A checkpoint's copy being taken over several turns (beginCapture), if any. */
  private capture: BufferCapture | undefined

  get size(): number {
    return this.n
  }

  /** Time of the earliest buffered reading, or +∞. */
  get earliest(): number {
    return this.n > 0 ? this.t[0]! : Number.POSITIVE_INFINITY
  }

  /** `order` breaks ties between equal times: equipment, then device slot, then measurement. */
  push(time: number, order: number, value: number): void {
    if (this.n === this.t.length) this.resize(this.n * 2)
    const { t, k, v, capture } = this
    let i = this.n++
    while (i > 0) {
      const p = (i - 1) >> 1
      if (t[p]! < time || (t[p]! === time && k[p]! <= order)) break
      capture?.before(i)
      t[i] = t[p]!
      k[i] = k[p]!
      v[i] = v[p]!
      i = p
    }
    capture?.before(i)
    t[i] = time
    k[i] = order
    v[i] = value
  }

  /**
   * Removes the earliest reading into `out` (time, order, value) and returns true, provided it is
   * before `before`.
   */
  popBefore(before: number, out: Float64Array): boolean {
    if (this.n === 0 || !(this.t[0]! < before)) return false
    const { t, k, v, capture } = this
    out[0] = t[0]!
    out[1] = k[0]!
    out[2] = v[0]!
    const n = --this.n
    const time = t[n]!
    const order = k[n]!
    const value = v[n]!
    let i = 0
    for (;;) {
      let c = 2 * i + 1
      if (c >= n) break
      if (c + 1 < n && (t[c + 1]! < t[c]! || (t[c + 1]! === t[c]! && k[c + 1]! < k[c]!))) c++
      if (t[c]! > time || (t[c]! === time && k[c]! >= order)) break
      capture?.before(i)
      t[i] = t[c]!
      k[i] = k[c]!
      v[i] = v[c]!
      i = c
    }
    capture?.before(i)
    t[i] = time
    k[i] = order
    v[i] = value
    if (n === 0 && this.t.length > INITIAL) this.resize(INITIAL)
    return true
  }

  private resize(size: number): void {
    // New arrays: the old ones, which a capture copies from, are never written again, so it
    // needs no more telling of writes.
    this.capture = undefined
    const grow = (a: Float64Array) => {
      const b = new Float64Array(size)
      b.set(a.subarray(0, Math.min(this.n, size)))
      return b
    }
    this.t = grow(this.t)
    this.k = grow(this.k)
    this.v = grow(this.v)
  }

  /**
   * The buffered readings as one array, times then order keys then values (3 × size): a copy that a
   * checkpoint stores as it is (capture.ts), no node:v8. `unpack` reads it back.
   */
  pack(): Float64Array {
    const n = this.n
    const out = new Float64Array(3 * n)
    out.set(this.t.subarray(0, n), 0)
    out.set(this.k.subarray(0, n), n)
    out.set(this.v.subarray(0, n), 2 * n)
    return out
  }

  /**
   * The same copy as pack() at this moment, taken over later turns (BufferCapture.step): the heap's
   * array is copied position by position, and a position a reading is about to overwrite before
   * the copy reaches it is saved first (copy-on-write), so the copy is the buffer at this moment.
   * Nothing is copied in this turn. One capture at a time.
   */
  beginCapture(): BufferCapture {
    if (this.capture !== undefined) throw new Error('a reorder buffer capture is running already')
    const capture = new BufferCapture(this.n, this.t, this.k, this.v, () => {
      if (this.capture === capture) this.capture = undefined
    })
    this.capture = capture
    return capture
  }

  toJSON(): BufferJson {
    return { t: this.t.slice(0, this.n), k: this.k.slice(0, this.n), v: this.v.slice(0, this.n) }
  }

  restore(json: BufferJson): void {
    this.n = 0
    const t = numbers(json.t)
    const k = numbers(json.k)
    const v = numbers(json.v)
    for (let i = 0; i < t.length; i++) this.push(t[i]!, k[i]!, v[i]!)
  }
}

/** A pack()'s array as BufferJson (views into it). */
export function unpack(packed: Float64Array): BufferJson {
  const n = Math.floor(packed.length / 3)
  return { t: packed.subarray(0, n), k: packed.subarray(n, 2 * n), v: packed.subarray(2 * n, 3 * n) }
}

/**
 * A ReorderBuffer's copy taken over several turns (ReorderBuffer.beginCapture): `packed` is, once
 * `step` returned true, what pack() gave at the beginning.
 */
export class BufferCapture {
  private copied = 0
  private out: Float64Array | undefined
  /** Positions saved before a write, ahead of the copy. */
  private saved: Uint8Array | undefined
  private done = false

  /**
   * `n`: readings at the beginning; `t`, `k`, `v`: the buffer's arrays at the beginning (a resize
   * replaces them and leaves these as they are); `detach` stops the buffer telling this capture
   * of writes.
   */
  constructor(
    private readonly n: number,
    private readonly t: Float64Array,
    private readonly k: Float64Array,
    private readonly v: Float64Array,
    private readonly detach: () => void,
  ) {}

  /** The copy (3 × n: times, order keys, values), complete once `step` returned true. */
  get packed(): Float64Array {
    this.out ??= new Float64Array(3 * this.n)
    return this.out
  }

  /** Position `i` of the buffer is about to be written: saved first if the copy needs it still. */
  before(i: number): void {
    if (i >= this.n || i < this.copied) return
    this.saved ??= new Uint8Array(this.n)
    const saved = this.saved
    if (saved[i] === 1) return
    saved[i] = 1
    this.copyAt(i)
  }

  /** Copies up to `count` more positions; true once all are copied (the capture is then detached). */
  step(count: number): boolean {
    if (this.done) return true
    const to = Math.min(this.n, this.copied + count)
    const saved = this.saved
    for (let i = this.copied; i < to; i++) if (saved === undefined || saved[i] === 0) this.copyAt(i)
    this.copied = to
    if (to < this.n) return false
    this.done = true
    this.saved = undefined
    this.detach()
    return true
  }

  /** Stops without finishing (a checkpoint given up): the buffer goes on without it. */
  close(): void {
    if (this.done) return
    this.done = true
    this.detach()
  }

  private copyAt(i: number): void {
    const out = this.packed
    const n = this.n
    out[i] = this.t[i]!
    out[n + i] = this.k[i]!
    out[2 * n + i] = this.v[i]!
  }
}
