// Closing by the site clock (CONTRACT.md §5, §7): a minute closes once the clock passed its end by
// latenessS, a 15m/1h/1d bucket with its last minute, and its buckets are sent for every scope.
// Also the clock itself: a jump that would drop unsent minutes from the ring sends them first.

import type { AccountingCore } from './accounting-core.ts'
import type { BucketEvent } from './accounting-types.ts'
import type { BucketRevisions } from './bucket-revisions.ts'
import { type BucketStep, STEPS } from './calendar.ts'
import type { ColdRevisions } from './cold-revisions.ts'
import { bucketRow, newFigures, type ScopeFigures } from './scope-figures.ts'
import type { SiteState } from './site-state.ts'

const NONE: ReadonlySet<string> = new Set()

export class MinuteClosing {
  /** Buckets sent ahead of a jump of a site clock (advanceClock), handed out by the next take. */
  private readonly sentAhead: BucketEvent[] = []

  constructor(
    private readonly core: AccountingCore,
    private readonly figs: ScopeFigures,
    private readonly revisions: BucketRevisions,
    private readonly coldRevisions: ColdRevisions,
  ) {}

  /**
   * Buckets of CONTRACT.md §5 that closed or changed since the last call, for every step and
   * scope: a minute closes once the site clock passed its end by latenessS, a 15m/1h/1d bucket
   * with its last minute. A change to an emitted minute (late reading, idle span, PV or grid
   * reading: a site's carbon factor moves every scope's CO2) re-sends the buckets holding it with
   * the revision increased, for the scopes whose figures moved materially (revision-gate.ts); for
   * the sites in `settle` (their clock stands still, stalled-clocks.ts), everything held unsent.
   */
  takeBucketEvents(settle: ReadonlySet<string> = NONE): BucketEvent[] {
    const events: BucketEvent[] = this.sentAhead.splice(0)
    for (const site of this.core.sites.values()) {
      if (site.clock === undefined) continue
      this.revisions.emitRevisions(site, events, Number.NEGATIVE_INFINITY, settle.has(site.info.node.id))
      this.emitClosed(site, events)
      if (site.coldDirty.size > 0 || site.straddled.length > 0) this.coldRevisions.emitCold(site, events)
    }
    return events
  }

  advanceClock(site: SiteState, t: number): void {
    const minute = Math.floor(t / 60)
    if (minute < site.firstMinute) site.firstMinute = minute
    if (site.clock === undefined || t > site.clock) {
      const newOldest = minute - site.store.length + 1
      if (minute > site.store.newest && this.wouldEvictUnsent(site, newOldest)) {
        // Days of buffered readings can arrive between two takes (a fleet flushing NB-IoT buffers
        // after an outage): what closed by the clock so far is sent now, while the ring holds all
        // of its buckets' minutes. The reading that moves the clock is not placed yet; where it
        // adds to a minute sent here, that minute is revised like any late one.
        this.revisions.emitRevisions(site, this.sentAhead, newOldest)
        this.emitClosed(site, this.sentAhead)
        // A single jump past the ring: the minutes it drops are sent as they stand (the reading's
        // own part of them goes the way of any reading older than the ring).
        site.clock = t
        this.emitClosed(site, this.sentAhead, newOldest - 1)
      }
      site.clock = t
      site.store.advanceTo(minute)
    }
  }

  /**
   * Moving the ring's oldest minute to `newOldest` drops a minute that a bucket not sent yet (or
   * to be revised) still needs: a day bucket needs every minute from the start of its local day.
   */
  private wouldEvictUnsent(site: SiteState, newOldest: number): boolean {
    const needs = (minute: number) => Math.max(site.calendar.bucketStart('1d', minute), site.store.oldest()) < newOldest
    const firstUnsent = Math.max(site.emittedThrough + 1, site.firstMinute)
    if (firstUnsent <= site.store.newest && needs(firstUnsent)) return true
    for (const m of site.dirty) if (needs(m)) return true
    // A bucket with unsent differences is sent before its first minute leaves (revision-gate.ts).
    return newOldest > site.store.oldest() && site.gate.holdsBefore(newOldest)
  }

  private emitClosed(site: SiteState, events: BucketEvent[], through = Number.POSITIVE_INFINITY): void {
    const closed = Math.min(site.closedThrough(), site.store.newest, through)
    const from = Math.max(site.emittedThrough + 1, site.firstMinute, site.store.oldest())
    for (let m = from; m <= closed; m++) {
      for (const step of STEPS) {
        const start = site.calendar.bucketStart(step, m)
        const end = site.calendar.bucketEnd(step, start)
        if (end !== m + 1) continue
        this.emitBucket(site, step, start, end, site.revisions[step].get(start) ?? 0, events)
      }
    }
    if (closed > site.emittedThrough) site.emittedThrough = closed
  }

  private emitBucket(
    site: SiteState,
    step: BucketStep,
    start: number,
    end: number,
    revision: number,
    events: BucketEvent[],
  ): void {
    const from = Math.max(start, site.store.oldest())
    const factors = this.figs.minuteFactorsOf(site, from, end)
    const f = newFigures()
    const isQuarter = step === '15m'
    if (isQuarter) {
      const key = site.calendar.monthKey(start)
      if (key > site.monthKey) {
        site.monthKey = key
        site.monthPeakWh.fill(0)
      }
    }
    const sameMonth = isQuarter && site.calendar.monthKey(start) === site.monthKey
    const t = start * 60_000
    for (const ref of site.refs) {
      this.figs.figures(ref, from, end, factors, f)
      events.push({ scope: ref.scope, step, revision, ...bucketRow(t, f) })
      if (sameMonth && f.energy > site.monthPeakWh[ref.position]!) site.monthPeakWh[ref.position] = f.energy
    }
  }
}
