// A bounded histogram of power on a logarithmic scale relative to the equipment's rated power:
// memory per equipment is fixed whatever the history length (the brief's "bounded memory"), and a
// log scale gives off (≈0.1 % of rated), idle (≈10 %) and running (≈70 %) levels the same relative
// resolution. Counts are halved when the total passes a cap, so old history fades.

export interface HistogramJson {
  /**
   * The bins that hold a count and their counts: two typed arrays that node:v8 copies whole (the
   * processor's checkpoint, issue 13), objects with index keys after a JSON round trip.
   */
  index?: Uint16Array | Record<string, number>
  count?: Uint32Array | Record<string, number>
  /** Sparse [bin, count] pairs: checkpoints written before `index` and `count`. */
  bins?: [number, number][]
  total: number
}

export class LogHistogram {
  readonly counts: Uint32Array
  total = 0
  private readonly logLo: number

  /**
   * @param loW lower edge of bin 1; bin 0 holds everything at or below it (off, zero, negative).
   * @param perDecade bins per factor of 10.
   */
  constructor(
    loW: number,
    decades: number,
    readonly perDecade: number,
    private readonly cap: number,
  ) {
    this.logLo = Math.log10(loW)
    this.counts = new Uint32Array(Math.ceil(decades * perDecade) + 2)
  }

  binOf(powerW: number): number {
    if (!(powerW > 0)) return 0
    const x = (Math.log10(powerW) - this.logLo) * this.perDecade
    if (x < 0) return 0
    return Math.min(this.counts.length - 1, Math.floor(x) + 1)
  }

  /** log10 of a bin's centre (bin 0: half a bin below the lower edge). */
  logCenter(bin: number): number {
    return this.logLo + (bin - 0.5) / this.perDecade
  }

  /** Half a bin, in log10 units. */
  get halfBinLog(): number {
    return 0.5 / this.perDecade
  }

  add(powerW: number): void {
    this.counts[this.binOf(powerW)]!++
    if (++this.total > this.cap) this.halve()
  }

  /** The bins of `n` evenly spaced quantiles, in order: a fixed-size sample of the whole history. */
  quantileBins(n: number): number[] {
    const out: number[] = []
    if (this.total === 0) return out
    const counts = this.counts
    let bin = 0
    let cumulative = counts[0]!
    for (let j = 0; j < n; j++) {
      const target = ((j + 0.5) / n) * this.total
      while (cumulative <= target && bin < counts.length - 1) cumulative += counts[++bin]!
      out.push(bin)
    }
    return out
  }

  /** Power (W) at quantile q, interpolated within its bin on the log scale. */
  quantileW(q: number): number {
    const counts = this.counts
    const target = q * this.total
    let cumulative = 0
    for (let bin = 0; bin < counts.length; bin++) {
      const c = counts[bin]!
      if (c > 0 && cumulative + c >= target) {
        const within = (target - cumulative) / c
        return 10 ** (this.logLo + (bin - 1 + within) / this.perDecade)
      }
      cumulative += c
    }
    return 10 ** this.logCenter(counts.length - 1)
  }

  /** Median absolute deviation (W) around `centerW`, from the bin centres. */
  madW(centerW: number): number {
    const devs: [number, number][] = []
    const counts = this.counts
    for (let bin = 0; bin < counts.length; bin++) {
      const c = counts[bin]!
      if (c > 0) devs.push([Math.abs(10 ** this.logCenter(bin) - centerW), c])
    }
    devs.sort((a, b) => a[0] - b[0])
    let cumulative = 0
    for (const [d, c] of devs) {
      cumulative += c
      if (cumulative >= this.total / 2) return d
    }
    return 0
  }

  private halve(): void {
    let total = 0
    for (let i = 0; i < this.counts.length; i++) {
      const c = this.counts[i]! >>> 1
      this.counts[i] = c
      total += c
    }
    this.total = total
  }

  toJSON(): HistogramJson {
    const { counts } = this
    let n = 0
    for (let i = 0; i < counts.length; i++) if (counts[i]! > 0) n++
    const index = new Uint16Array(n)
    const count = new Uint32Array(n)
    for (let i = 0, k = 0; i < counts.length; i++) {
      if (counts[i]! > 0) {
        index[k] = i
        count[k++] = counts[i]!
      }
    }
    return { index, count, total: this.total }
  }

  restore(json: HistogramJson): void {
    this.counts.fill(0)
    if (json.index !== undefined && json.count !== undefined) {
      const values = (x: ArrayLike<number> | Record<string, number>) =>
        ArrayBuffer.isView(x) ? (x as ArrayLike<number>) : Object.values(x)
      const index = values(json.index)
      const count = values(json.count)
      for (let k = 0; k < index.length; k++) if (index[k]! < this.counts.length) this.counts[index[k]!] = count[k]!
    }
    for (const [i, c] of json.bins ?? []) if (i >= 0 && i < this.counts.length) this.counts[i] = c
    this.total = json.total
  }
}
