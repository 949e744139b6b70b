// Energy per UTC minute for the ground truth: one growable Float64Array per equipment or meter,
// indexed by minute from a common first bucket, filled by exact integration of piecewise-constant
// power (every step's power splits across a minute boundary in proportion to time).

export class MinuteSeries {
  data: Float64Array
  length = 0
  /** floor(epoch ms / 60 000) of data[0]. */
  readonly baseBucket: number

  constructor(baseBucket: number, capacity = 64) {
    this.baseBucket = baseBucket
    this.data = new Float64Array(capacity)
  }

  /** Adds the energy of `watts` held over [fromMs, toMs). */
  add(fromMs: number, toMs: number, watts: number): void {
    let a = fromMs
    while (a < toMs) {
      const bucket = Math.floor(a / 60_000)
      const boundary = (bucket + 1) * 60_000
      const end = Math.min(toMs, boundary)
      const i = bucket - this.baseBucket
      if (i >= this.data.length) this.grow(i + 1)
      this.data[i]! += (watts * (end - a)) / 3_600_000
      if (i >= this.length) this.length = i + 1
      a = end
    }
  }

  private grow(min: number): void {
    let capacity = this.data.length * 2
    while (capacity < min) capacity *= 2
    const next = new Float64Array(capacity)
    next.set(this.data)
    this.data = next
  }

  /** A copy of the filled part, optionally scaled. */
  snapshot(scale = 1): Float64Array {
    const out = this.data.slice(0, this.length)
    if (scale !== 1) for (let i = 0; i < out.length; i++) out[i]! *= scale
    return out
  }
}
