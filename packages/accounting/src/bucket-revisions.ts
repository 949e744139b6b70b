// Revisions of buckets already sent (CONTRACT.md §5 v1.1, revision-gate.ts): changes to sent
// minutes become each scope's unsent difference in the buckets holding them; a bucket sends the
// scopes that moved materially, at most once a second of the site clock, and all it holds unsent
// at its last revision or before its first minute leaves the ring.

import type { AccountingCore } from './accounting-core.ts'
import type { BucketEvent } from './accounting-types.ts'
import { PEAK_WATTS } from './bucket-store.ts'
import { type BucketStep, STEPS } from './calendar.ts'
import { carbonAt, gridIntensity, marketIntensity, minuteFactors } from './carbon.ts'
import type { ColdRevisions } from './cold-revisions.ts'
import {
  anyUnsent,
  type BucketGate,
  CO2,
  CO2_MARKET,
  ENERGY,
  FIGURE_COUNT,
  FINAL_AFTER_LATENESS,
  IDLE,
  IDLE_CO2,
  type MinuteChange,
  material,
  OUTPUT,
  PEAK,
  PV,
} from './revision-gate.ts'
import { bucketRow, newFigures, type ScopeFigures } from './scope-figures.ts'
import type { SiteState } from './site-state.ts'

/** Site clock (s) at which a bucket ending at minute `end` gets its last revision (§5). */
export function finalAt(site: SiteState, end: number): number {
  return end * 60 + FINAL_AFTER_LATENESS * site.info.latenessS
}

export class BucketRevisions {
  constructor(
    private readonly core: AccountingCore,
    private readonly figs: ScopeFigures,
    private readonly coldRevisions: ColdRevisions,
  ) {}

  /**
   * The history store holds bucket (`scope`, `step`, `tMs`) at `storedRevision` with other figures
   * than the ones just emitted: revisions counted from an older checkpoint are behind the store
   * (a journal replayed after a restore). The bucket is sent again, with its current figures and a
   * revision above the stored one, on the next takeBucketEvents(), so revisions only go up (§5).
   * False when the bucket is no longer in the 1-minute history: the caller re-sends what it has.
   */
  reviseAbove(scope: string, step: BucketStep, tMs: number, storedRevision: number): boolean {
    const ref = this.core.scopes.get(scope)
    if (ref === undefined || !Number.isSafeInteger(tMs / 60_000)) return false
    const site = ref.site
    const start = tMs / 60_000
    const end = site.calendar.bucketEnd(step, start)
    if (start < site.store.oldest() || end - 1 > site.emittedThrough) return false
    if ((site.revisions[step].get(start) ?? 0) < storedRevision) site.revisions[step].set(start, storedRevision)
    site.gate.bucket(step, start, end, finalAt(site, end), site.clock ?? Number.NEGATIVE_INFINITY).whole = true
    return true
  }

  /**
   * Whether a revision waits for the next takeBucketEvents(): a change to a sent minute not yet
   * looked at, a material difference (also one held for its second of the site clock), a last
   * revision that is due, a bucket to send whole. Differences under the threshold whose last
   * revision is not due yet do not count: the figures sent are within the threshold of the exact ones.
   */
  hasPendingRevisions(): boolean {
    for (const site of this.core.sites.values()) {
      if (site.dirty.size > 0) return true
      if (site.clock !== undefined && site.gate.pending(site.clock)) return true
    }
    return false
  }

  /**
   * Revisions of buckets already sent (CONTRACT.md §5 v1.1, revision-gate.ts): the changes logged
   * for sent minutes become each scope's unsent difference in the buckets holding them, then every
   * bucket with something unsent sends the scopes that moved materially (at most once a second of
   * the site clock), or all it holds unsent at its last revision, or when its first minute is
   * about to leave the ring (`evictBefore`: the ring moves to it next), or everything it holds
   * unsent when the site's clock stands still (`settle`, stalled-clocks.ts).
   */
  emitRevisions(site: SiteState, events: BucketEvent[], evictBefore = Number.NEGATIVE_INFINITY, settle = false): void {
    const clock = site.clock
    if (clock === undefined) return
    const oldest = site.store.oldest()
    const gate = site.gate
    if (site.dirty.size > 0) this.foldChanges(site, clock)
    else gate.changes.clear()
    for (const step of STEPS) {
      const map = gate.buckets[step]
      for (const [start, bucket] of map) {
        if (start < oldest) {
          // Its first minute left the ring (sent before, see wouldEvictUnsent): nothing exact to send.
          map.delete(start)
          continue
        }
        if (bucket.whole) this.sendScopes(site, bucket, 'all', events, clock)
        else if (bucket.unsent.size > 0) {
          const due = bucket.finalDue(clock)
          if (settle || start < evictBefore || (due && bucket.mayRevise(clock))) {
            this.sendScopes(site, bucket, 'unsent', events, clock)
          } else if (bucket.candidates.size > 0 && bucket.mayRevise(clock)) {
            this.sendScopes(site, bucket, 'material', events, clock)
          }
        }
        if (bucket.unsent.size === 0 && bucket.finalDue(clock)) bucket.finalDone = true
        if (bucket.idle(clock)) map.delete(start)
      }
      // Revisions of buckets that left the history are no longer needed.
      for (const start of site.revisions[step].keys()) if (start < oldest - 1440) site.revisions[step].delete(start)
    }
  }

  /** Turns the changes logged for sent minutes into unsent differences of the buckets holding them. */
  private foldChanges(site: SiteState, clock: number): void {
    const minutes = [...site.dirty].sort((a, b) => a - b)
    site.dirty.clear()
    const oldest = site.store.oldest()
    const gate = site.gate
    /** Per bucket, per scope position, per minute: the scope's peak in that minute before it rose. */
    const peaks = new Map<BucketGate, Map<number, Map<number, number>>>()
    for (const m of minutes) {
      const change = gate.changes.get(m)
      const slot = site.store.slotOf(m)
      const deltas = change !== undefined && slot >= 0 ? this.minuteDeltas(site, m, slot, change) : undefined
      for (const step of STEPS) {
        const start = site.calendar.bucketStart(step, m)
        const end = site.calendar.bucketEnd(step, start)
        if (end - 1 > site.emittedThrough) continue
        if (start < oldest) {
          // The ring no longer holds the bucket's first minute, so it cannot sum the bucket: the
          // change goes on the bucket as last sent, as for a cold minute.
          if (deltas !== undefined) this.straddled(site, step, start, slot, deltas)
          continue
        }
        const bucket = gate.bucket(step, start, end, finalAt(site, end), clock)
        // A minute marked without a log (a checkpoint from before the log): its buckets go whole.
        if (deltas === undefined) {
          bucket.whole = true
          continue
        }
        for (const [position, delta] of deltas.figures) bucket.add(position, delta)
        if (deltas.peaks.size === 0) continue
        let byScope = peaks.get(bucket)
        if (byScope === undefined) {
          byScope = new Map()
          peaks.set(bucket, byScope)
        }
        for (const [position, before] of deltas.peaks) {
          let byMinute = byScope.get(position)
          if (byMinute === undefined) {
            byMinute = new Map()
            byScope.set(position, byMinute)
          }
          if (!byMinute.has(m)) byMinute.set(m, before)
        }
      }
    }
    gate.changes.clear()
    // A bucket's peak is the highest of its minutes': it moved by (highest now) − (highest before).
    const delta = new Float64Array(FIGURE_COUNT)
    const f = newFigures()
    for (const [bucket, byScope] of peaks) {
      for (const [position, byMinute] of byScope) {
        const ref = site.refs[position]!
        let now = 0
        let before = 0
        for (let m = Math.max(bucket.start, oldest); m < bucket.end; m++) {
          const slot = site.store.slotOf(m)
          if (slot < 0) continue
          const peak = this.figs.scopeMinute(ref, site.store, slot, f).peak
          now = Math.max(now, peak)
          before = Math.max(before, byMinute.get(m) ?? peak)
        }
        if (now === before) continue
        delta.fill(0)
        delta[PEAK] = now - before
        bucket.add(position, delta)
      }
    }
  }

  /** Hands a ring minute's change of a bucket that began before the ring to the cold revisions. */
  private straddled(
    site: SiteState,
    step: BucketStep,
    start: number,
    slot: number,
    deltas: { figures: Map<number, Float64Array>; peaks: Map<number, number> },
  ): void {
    const f = newFigures()
    for (const [position, delta] of deltas.figures) {
      const peakW = deltas.peaks.has(position)
        ? this.figs.scopeMinute(site.refs[position]!, site.store, slot, f).peak
        : -1
      this.coldRevisions.noteStraddled(site, step, start, position, delta, peakW)
    }
    for (const position of deltas.peaks.keys()) {
      if (deltas.figures.has(position)) continue
      const peakW = this.figs.scopeMinute(site.refs[position]!, site.store, slot, f).peak
      this.coldRevisions.noteStraddled(site, step, start, position, new Float64Array(FIGURE_COUNT), peakW)
    }
  }

  /**
   * Each scope's change of figures in minute `m` from the minute's log: the scopes holding the
   * equipment changed, and, when the minute's carbon factors moved (§7: CO2 is shared as energy ×
   * I/E), every scope with energy in it. `peaks`: the scope's peak in the minute before it rose.
   */
  private minuteDeltas(
    site: SiteState,
    m: number,
    slot: number,
    change: MinuteChange,
  ): { figures: Map<number, Float64Array>; peaks: Map<number, number> } {
    const store = site.store
    // Per scope: mWh of energy and idle, milli-units, peak W added.
    const touched = new Map<number, [number, number, number, number]>()
    let siteEnergy = 0
    for (const [eq, c] of change.equipment) {
      siteEnergy += c.energy
      const peakAdded =
        c.peakBefore < 0 ? 0 : PEAK_WATTS[store.eqPeak[slot * store.nEq + eq]!]! - PEAK_WATTS[c.peakBefore]!
      for (const position of site.scopesOf(eq)) {
        let t = touched.get(position)
        if (t === undefined) {
          t = [0, 0, 0, 0]
          touched.set(position, t)
        }
        t[0] += c.energy
        t[1] += c.idle
        t[2] += c.output
        t[3] += peakAdded
      }
    }
    const carbon = carbonAt(site.carbon, m)
    const grid = gridIntensity(carbon, site.calendar, m)
    const market = marketIntensity(carbon)
    const eNow = store.aggEnergy[slot * store.nAgg]!
    const now = minuteFactors(
      eNow,
      store.pv[slot]!,
      store.grid[slot]!,
      site.hasGridMeters,
      grid,
      market,
      this.figs.factors,
    )
    const [locNow, marketNow, pvNow] = [now.location, now.market, now.pvShare]
    const old = minuteFactors(
      eNow - siteEnergy,
      store.pv[slot]! - change.pv,
      store.grid[slot]! - change.grid,
      site.hasGridMeters,
      grid,
      market,
      this.figs.factors,
    )
    const [locOld, marketOld, pvOld] = [old.location, old.market, old.pvShare]
    const figures = new Map<number, Float64Array>()
    const peaks = new Map<number, number>()
    const f = newFigures()
    const add = (position: number, energy: number, idle: number, t: [number, number, number, number] | undefined) => {
      const dEnergy = t?.[0] ?? 0
      const dIdle = t?.[1] ?? 0
      const eOld = energy - dEnergy
      const iOld = idle - dIdle
      const d = new Float64Array(FIGURE_COUNT)
      d[ENERGY] = dEnergy
      d[IDLE] = dIdle
      d[CO2] = (energy * locNow - eOld * locOld) / 1000
      d[CO2_MARKET] = (energy * marketNow - eOld * marketOld) / 1000
      d[PV] = (energy * pvNow - eOld * pvOld) / 1000
      d[IDLE_CO2] = (idle * locNow - iOld * locOld) / 1000
      d[OUTPUT] = t?.[2] ?? 0
      if (anyUnsent(d)) figures.set(position, d)
      if (t !== undefined && t[3] !== 0) {
        this.figs.scopeMinute(site.refs[position]!, store, slot, f)
        peaks.set(position, f.peak - t[3])
      }
    }
    if (locNow === locOld && marketNow === marketOld && pvNow === pvOld) {
      // The factors stayed: only the scopes holding the equipment changed moved.
      for (const [position, t] of touched) {
        this.figs.scopeMinute(site.refs[position]!, store, slot, f)
        add(position, f.energy, f.idle, t)
      }
    } else {
      // Every scope's CO2 and PV share moved with the factors: compute, and keep what is not zero.
      for (const ref of site.refs) {
        const t = touched.get(ref.position)
        this.figs.scopeMinute(ref, store, slot, f)
        if (t === undefined && f.energy === 0 && f.idle === 0) continue
        add(ref.position, f.energy, f.idle, t)
      }
    }
    return { figures, peaks }
  }

  /**
   * Sends a bucket for some of its scopes with the next revision: `all` of them, those with an
   * `unsent` difference, or those whose difference is `material` (checked against the exact
   * figures). Their differences are cleared: what is sent is exact.
   */
  private sendScopes(
    site: SiteState,
    bucket: BucketGate,
    which: 'all' | 'unsent' | 'material',
    events: BucketEvent[],
    clock: number,
  ): void {
    const { step, start, end } = bucket
    const from = Math.max(start, site.store.oldest())
    const factors = this.figs.minuteFactorsOf(site, from, end)
    const positions: Iterable<number> =
      which === 'all'
        ? site.refs.map((r) => r.position)
        : which === 'unsent'
          ? [...bucket.unsent.keys()]
          : [...bucket.candidates]
    const f = newFigures()
    const exact = new Float64Array(FIGURE_COUNT)
    const sameMonth = step === '15m' && site.calendar.monthKey(start) === site.monthKey
    let revision = -1
    for (const position of positions) {
      const ref = site.refs[position]!
      const unsent = bucket.unsent.get(position)
      if (which === 'unsent' && (unsent === undefined || !anyUnsent(unsent))) {
        bucket.unsent.delete(position)
        continue
      }
      this.figs.figures(ref, from, end, factors, f)
      if (which === 'material') {
        exact[ENERGY] = f.energy
        exact[IDLE] = f.idle
        exact[CO2] = f.co2
        exact[CO2_MARKET] = f.co2Market
        exact[PV] = f.pv
        exact[IDLE_CO2] = f.idleCo2
        exact[OUTPUT] = f.output
        exact[PEAK] = f.peak
        if (unsent === undefined || !material(unsent, exact)) continue
      }
      if (revision < 0) {
        revision = (site.revisions[step].get(start) ?? 0) + 1
        site.revisions[step].set(start, revision)
      }
      events.push({ scope: ref.scope, step, revision, ...bucketRow(start * 60_000, f) })
      bucket.unsent.delete(position)
      if (sameMonth && f.energy > site.monthPeakWh[position]!) site.monthPeakWh[position] = f.energy
    }
    bucket.candidates.clear()
    if (which === 'all') {
      bucket.unsent.clear()
      bucket.whole = false
    }
    if (which !== 'material' && bucket.finalDue(clock)) bucket.finalDone = true
    if (revision >= 0) bucket.lastSentS = clock
  }
}
