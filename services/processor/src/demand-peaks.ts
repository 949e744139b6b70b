// The highest 15-minute demand of a scope over a range (GET /api/v1/reports' peakKW/peakAt, §6),
// from the history store's demand intervals, with each whole UTC day's peak remembered: a year
// report of a site and its children otherwise reads 35,040 intervals per scope and period every
// time (docs/benchmarks.md "Reports"), where the remembered days make it 365 look-ups.
//
// Exact because the processor is the store's only writer and every demand write goes through the
// history sink, which tells this cache (`changed`) before the write is queued and again once it
// has settled: a day with a newer interval is forgotten, and a peak read while any demand write was
// in flight is used for that answer but not remembered (the read may have seen the older value).
// Pruning forgets the days it reached. Bounded: at most `maxDays` remembered (scope, day) peaks; when full,
// all are dropped and the cache fills again from the store (simple, and a refill costs one scan).

import type { DemandRecord, HistoryStore } from '@plantwatt/history-store'

const DAY_MS = 86_400_000

export interface Peak {
  kW: number
  t: number
}

export class DemandPeaks {
  /** `${scope} ${utcDay}` → the day's peak, null for a day without intervals. */
  private readonly days = new Map<string, Peak | null>()
  /** Demand writes started or settled: a read spanning a change is not remembered. */
  private epoch = 0

  constructor(
    private readonly store: HistoryStore,
    private readonly maxDays = 500_000,
  ) {}

  /** Demand intervals of these scopes and times are being (or were just) written. */
  changed(rows: readonly { scope: string; t: number }[]): void {
    this.epoch++
    for (const row of rows) this.days.delete(`${row.scope} ${Math.floor(row.t / DAY_MS)}`)
  }

  /** Days that start before `ms` forgotten (pruning: the store no longer holds all their intervals). */
  forgetBefore(ms: number): void {
    this.epoch++
    const firstKept = Math.floor(ms / DAY_MS) + 1
    for (const key of this.days.keys()) {
      if (Number(key.slice(key.lastIndexOf(' ') + 1)) < firstKept) this.days.delete(key)
    }
  }

  /** The highest interval of `scope` with fromMs ≤ t < toMs (the earliest of equal ones). */
  async peak(scope: string, fromMs: number, toMs: number): Promise<Peak | null> {
    if (!(toMs > fromMs)) return null
    const firstDay = Math.ceil(fromMs / DAY_MS)
    const endDay = Math.floor(toMs / DAY_MS)
    if (endDay <= firstDay) return this.scan(scope, fromMs, toMs)
    let best: Peak | null = null
    const take = (peak: Peak | null) => {
      if (peak !== null && (best === null || peak.kW > best.kW)) best = peak
    }
    // In time order, so that of equal peaks the earliest wins: the part before the first whole day,
    // the whole days (remembered, or read in runs), the part after the last.
    take(await this.scan(scope, fromMs, firstDay * DAY_MS))
    let runFrom: number | undefined
    for (let day = firstDay; day <= endDay; day++) {
      const key = `${scope} ${day}`
      if (day < endDay && !this.days.has(key)) {
        runFrom ??= day
        continue
      }
      if (runFrom !== undefined) {
        for (const peak of await this.readDays(scope, runFrom, day)) take(peak)
        runFrom = undefined
      }
      if (day < endDay) take(this.days.get(key)!)
    }
    take(await this.scan(scope, endDay * DAY_MS, toMs))
    return best
  }

  /** The peaks of whole days [firstDay, endDay), read in one scan, remembered if nothing changed meanwhile. */
  private async readDays(scope: string, firstDay: number, endDay: number): Promise<(Peak | null)[]> {
    const epoch = this.epoch
    const peaks: (Peak | null)[] = new Array(endDay - firstDay).fill(null)
    const rows: DemandRecord[] = await this.store.demand(
      scope,
      firstDay * DAY_MS,
      endDay * DAY_MS,
      Number.POSITIVE_INFINITY,
    )
    for (const row of rows) {
      const k = Math.floor(row.t / DAY_MS) - firstDay
      const peak = peaks[k]
      if (peak === null || peak === undefined || row.kW > peak.kW) peaks[k] = { kW: row.kW, t: row.t }
    }
    if (epoch === this.epoch) {
      if (this.days.size + peaks.length > this.maxDays) this.days.clear()
      for (let k = 0; k < peaks.length; k++) this.days.set(`${scope} ${firstDay + k}`, peaks[k] ?? null)
    }
    return peaks
  }

  private async scan(scope: string, fromMs: number, toMs: number): Promise<Peak | null> {
    if (!(toMs > fromMs)) return null
    const row = await this.store.peakDemand(scope, fromMs, toMs)
    return row === null ? null : { kW: row.kW, t: row.t }
  }
}
