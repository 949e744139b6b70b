// GET /api/v1/reports (CONTRACT.md §6), asked by the gateway over the bus as GET /api/v1/energy
// is: the period holding `at`, local to the scope's site, summed from the scope's daily buckets
// (whole local days tile every period, a DST day included; the running day is accounting's held
// bucket with what has arrived so far, the closed ones the history store's, exactly as
// GET /api/v1/energy answers them), the highest 15-minute demand from the store's demand intervals
// and accounting's completed quarters it has not written yet; the previous period likewise, and
// each direct child over the same period.

import {
  type Accounting,
  type BucketRow,
  type DemandPeak,
  LocalCalendar,
  type PeriodBounds,
  periodBounds,
  previousBounds,
  REPORT_PERIODS,
  type ReportFigures,
  type ReportPeriod,
  reportFigures,
} from '@plantwatt/accounting'
import type { BucketStep } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'
import { energyAnswer, isTooMany } from './energy-query.ts'
import type { HistoryStoreSink } from './history-sink.ts'
import { quarterHourKW } from './history-sink.ts'

export interface ReportParams {
  scope: string
  period: ReportPeriod
  /** The time the period holds, ms; absent: the site clock (or the wall clock before any reading). */
  atMs?: number
}

export interface Report extends ReportFigures {
  scope: string
  period: ReportPeriod
  from: number
  to: number
  previous: ReportFigures & { from: number; to: number }
  children: (ReportFigures & { scope: string })[]
}

const QUARTER_MS = 900_000

export class ReportQuery {
  private readonly calendars = new Map<string, LocalCalendar>()

  constructor(
    private readonly plant: PlantIndex,
    private readonly accounting: Accounting,
    private readonly sink: HistoryStoreSink | undefined,
    /** The same completion of held rows as GET /api/v1/energy's (tuning savings). */
    private readonly completeHeld: (row: BucketRow, scope: string, step: BucketStep) => BucketRow,
    private readonly now: () => number,
  ) {}

  async answer(params: unknown): Promise<Report> {
    const { scope, period, atMs } = (params ?? {}) as Record<string, unknown>
    const node = typeof scope === 'string' ? this.plant.scope(scope) : undefined
    if (node === undefined) throw new Error('bad report query: unknown scope')
    if (!REPORT_PERIODS.includes(period as ReportPeriod)) throw new Error('bad report query: period')
    if (atMs !== undefined && (typeof atMs !== 'number' || !Number.isFinite(atMs))) {
      throw new Error('bad report query: at')
    }
    const site = this.plant.sites.get(node.siteId)!
    const calendar = this.calendarOf(node.siteId, site.spec.timezone)
    const clock = this.accounting.siteClock(node.siteId)
    const at = (atMs as number | undefined) ?? (clock !== undefined ? clock * 1000 : this.now())
    const bounds = periodBounds(calendar, period as ReportPeriod, Math.floor(at / 60_000))
    const before = previousBounds(calendar, period as ReportPeriod, bounds)
    const [figures, previous, ...children] = await Promise.all([
      this.figures(node.scope, bounds),
      this.figures(node.scope, before),
      ...node.children.map((child) => this.figures(child.scope, bounds)),
    ])
    return {
      scope: node.scope,
      period: period as ReportPeriod,
      from: bounds.from * 60_000,
      to: bounds.to * 60_000,
      ...figures!,
      previous: { from: before.from * 60_000, to: before.to * 60_000, ...previous! },
      children: node.children.map((child, k) => ({ scope: child.scope, ...children[k]! })),
    }
  }

  private async figures(scope: string, bounds: PeriodBounds): Promise<ReportFigures> {
    const fromMs = bounds.from * 60_000
    const toMs = bounds.to * 60_000
    const [days, peak] = await Promise.all([
      energyAnswer(this.accounting, this.sink, { scope, step: '1d', fromMs, toMs }, this.completeHeld),
      this.peak(scope, fromMs, toMs),
    ])
    // A period holds at most 366 daily buckets: never more than an answer's 100,000.
    if (isTooMany(days)) throw new Error('report period holds too many buckets')
    return reportFigures(days, peak)
  }

  /**
   * The highest completed 15-minute demand of the scope in [fromMs, toMs): the store's intervals
   * before the quarters accounting still holds, and those held ones that the site clock has passed.
   */
  private async peak(scope: string, fromMs: number, toMs: number): Promise<DemandPeak | null> {
    const siteId = scope.split('/', 1)[0]!
    const clock = this.accounting.siteClock(siteId)
    // Read before the store's await: the answer is the state of one moment.
    const held = this.accounting.history(scope, '15m', fromMs, toMs, { asSent: true })
    const heldFrom = held[0]?.t ?? toMs
    let peak: DemandPeak | null = null
    if (this.sink) {
      peak = await this.sink.demandPeaks.peak(scope, fromMs, heldFrom)
    }
    if (clock === undefined) return peak
    for (const row of held) {
      if (row.t + QUARTER_MS > clock * 1000) break
      const kW = quarterHourKW(row.energyWh)
      if (peak === null || kW > peak.kW) peak = { kW, t: row.t }
    }
    return peak
  }

  private calendarOf(siteId: string, timeZone: string): LocalCalendar {
    let calendar = this.calendars.get(siteId)
    if (calendar === undefined) {
      calendar = new LocalCalendar(timeZone)
      this.calendars.set(siteId, calendar)
    }
    return calendar
  }
}
