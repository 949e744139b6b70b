// What is read from the engine (CONTRACT.md §5 `live`, §6 GET /api/v1/energy): live figures with
// today's sums kept per scope asked (today-sums.ts), and the buckets of a scope over a span, exact
// or as last sent.

import type { AccountingCore } from './accounting-core.ts'
import type { BucketRow, LiveAccounting } from './accounting-types.ts'
import type { BucketStep } from './calendar.ts'
import { carbonAt, gridIntensity } from './carbon.ts'
import { forecastKW, intervalKW } from './demand.ts'
import { asSent, CO2, CO2_MARKET, ENERGY, IDLE, IDLE_CO2, OUTPUT, PEAK, PV } from './revision-gate.ts'
import { bucketRow, type Figures, newFigures, type ScopeFigures } from './scope-figures.ts'
import type { ScopeRef } from './site-state.ts'
import { type TodayFigures, TodaySums } from './today-sums.ts'

export class ReadModels {
  /**
   * Per scope asked, today's figures over the minutes already closed, by hour (today-sums.ts):
   * live() adds only the open minutes to them instead of summing the whole day again (a line's
   * day is its equipment × 1,440 minutes, asked for every second); a changed closed minute makes
   * only its hour summed again.
   */
  private readonly today = new TodaySums((ref, from, to, out) => {
    const f = this.figs.figures(ref, from, to, this.figs.minuteFactorsOf(ref.site, from, to), this.todayScratch)
    out.energy += f.energy
    out.co2 += f.co2
    out.co2Market += f.co2Market
    out.pv += f.pv
  })
  private readonly todayScratch: Figures = newFigures()
  private readonly todayFigures: TodayFigures = { energy: 0, co2: 0, co2Market: 0, pv: 0 }

  constructor(
    private readonly core: AccountingCore,
    private readonly figs: ScopeFigures,
  ) {}

  /**
   * Buckets of `step` with fromMs ≤ t < toMs that exist (§6 GET /api/v1/energy): those whose
   * minutes are all held in the 1-minute history (the last 25 h 16 min of the site clock by
   * default, so at least the last 24 h at every step, and the whole local day for 1d) and that
   * start no later than the site clock's minute; the open ones hold what has arrived so far.
   * Longer history is the history store's (InfluxDB) job.
   *
   * The rows are the exact figures (§7) unless `asSent`: then a closed bucket is answered with the
   * figures last sent for it (§5 v1.1: the history API answers exactly those), which differ from
   * the exact ones by less than the revision threshold while a small change waits for the
   * bucket's last revision (revision-gate.ts).
   */
  history(
    scope: string,
    step: BucketStep,
    fromMs: number,
    toMs: number,
    options: { asSent?: boolean } = {},
  ): BucketRow[] {
    const ref = this.core.scopes.get(scope)
    if (ref === undefined) return []
    const site = ref.site
    if (site.clock === undefined) return []
    const store = site.store
    const cal = site.calendar
    const oldest = store.oldest()
    const firstFrom = Math.max(Math.ceil(fromMs / 60_000), oldest)
    const rows: BucketRow[] = []
    const f = newFigures()
    let start = cal.bucketStart(step, firstFrom)
    if (start < firstFrom) start = cal.bucketEnd(step, start)
    for (; start <= store.newest && start * 60_000 < toMs; start = cal.bucketEnd(step, start)) {
      const end = cal.bucketEnd(step, start)
      if (end <= site.firstMinute) continue
      this.figs.figures(ref, start, end, this.figs.minuteFactorsOf(site, start, end), f)
      const row = bucketRow(start * 60_000, f)
      if (options.asSent) this.rowAsSent(ref, step, start, row)
      rows.push(row)
    }
    return rows
  }

  /**
   * §5 v1.1: the history answers the figures last sent. A closed bucket whose scope has a change
   * not sent yet (under the threshold, waiting for its last revision) is answered as sent.
   */
  private rowAsSent(ref: ScopeRef, step: BucketStep, start: number, row: BucketRow): void {
    const unsent = ref.site.gate.buckets[step].get(start)?.unsent.get(ref.position)
    if (unsent === undefined) return
    row.energyWh = asSent(row.energyWh, unsent, ENERGY)
    row.idleWh = asSent(row.idleWh, unsent, IDLE)
    row.co2G = asSent(row.co2G, unsent, CO2)
    row.co2MarketG = asSent(row.co2MarketG, unsent, CO2_MARKET)
    row.pvWh = asSent(row.pvWh ?? 0, unsent, PV)
    row.idleCo2G = asSent(row.idleCo2G ?? 0, unsent, IDLE_CO2)
    row.peakW = asSent(row.peakW, unsent, PEAK)
    const output = asSent(row.outputUnits ?? 0, unsent, OUTPUT)
    if (output !== 0) row.outputUnits = output
    else delete row.outputUnits
  }

  /**
   * What today's sums keep (today-sums.ts): scopes asked and the bytes of their sums, the bytes of
   * the sites' change logs, and the minutes summed so far (the cost of keeping them).
   */
  todayStats(): { scopes: number; bytes: number; siteBytes: number; minutesRead: number } {
    const { scopes, bytes } = this.today.stats()
    let siteBytes = 0
    for (const site of this.core.sites.values()) siteBytes += site.closedChanges.bytes()
    return { scopes, bytes, siteBytes, minutesRead: this.today.minutesRead }
  }

  /**
   * Live accounting figures of a scope (§5 `live` minus powerW and idle). `powerW`, the scope's
   * current power as the caller knows it, drives the demand forecast (see demand.ts); without it
   * the average power of the last complete minute stands in.
   */
  live(scope: string, powerW?: number): LiveAccounting | undefined {
    const ref = this.core.scopes.get(scope)
    if (ref === undefined) return undefined
    const site = ref.site
    if (site.clock === undefined) {
      return {
        scope,
        at: null,
        energyTodayWh: 0,
        co2TodayG: 0,
        co2MarketTodayG: 0,
        gridGPerKWh: gridIntensity(carbonAt(site.carbon, 0), site.calendar, 0),
        pvShare: 0,
        demand: null,
      }
    }
    const clock = site.clock
    const cal = site.calendar
    const store = site.store
    const minute = Math.floor(clock / 60)
    const f = newFigures()
    const dayStart = cal.dayStart(cal.dayNumber(minute))
    const dayFrom = Math.max(dayStart, store.oldest())
    const through = Math.min(site.emittedThrough, minute)
    const closed = this.today.closed(ref, site.closedChanges, dayStart, dayFrom, through, this.todayFigures)
    const openFrom = Math.max(dayFrom, through + 1)
    this.figs.figures(ref, openFrom, minute + 1, this.figs.minuteFactorsOf(site, openFrom, minute + 1), f)
    const today = {
      energy: closed.energy + f.energy,
      co2: closed.co2 + f.co2,
      co2Market: closed.co2Market + f.co2Market,
      pv: closed.pv + f.pv,
    }
    const quarter = cal.bucketStart('15m', minute)
    this.figs.figures(ref, quarter, minute + 1, this.figs.minuteFactorsOf(site, quarter, minute + 1), f)
    const soFarWh = f.energy
    this.figs.figures(ref, minute - 1, minute, this.figs.minuteFactorsOf(site, minute - 1, minute), f)
    const currentW = powerW ?? f.energy * 60
    // The month's highest completed interval: closed ones are kept at emission; the interval just
    // completed may not be closed yet (latenessS), so it is looked at here.
    let peakWh = cal.monthKey(quarter) === site.monthKey ? site.monthPeakWh[ref.position]! : 0
    const previous = quarter - 15
    if (cal.monthKey(previous) === cal.monthKey(quarter) && previous >= store.oldest()) {
      this.figs.figures(ref, previous, quarter, this.figs.minuteFactorsOf(site, previous, quarter), f)
      peakWh = Math.max(peakWh, f.energy)
    }
    const startS = quarter * 60
    return {
      scope,
      at: clock * 1000,
      energyTodayWh: today.energy,
      co2TodayG: today.co2,
      co2MarketTodayG: today.co2Market,
      gridGPerKWh: gridIntensity(carbonAt(site.carbon, minute), cal, minute),
      pvShare: today.energy > 0 ? today.pv / today.energy : 0,
      demand: {
        intervalStart: startS * 1000,
        kW: intervalKW(soFarWh, clock - startS),
        forecastKW: forecastKW(soFarWh, currentW, startS, clock),
        monthPeakKW: peakWh / 250,
      },
    }
  }
}
