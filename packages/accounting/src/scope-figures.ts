// A scope's figures over a run of minutes of the 1-minute ring (CONTRACT.md §7): energy, idle and
// peak from the ring, CO2 and PV share from each minute's carbon factors (carbon.ts), units produced
// from output-minutes.ts. Every part of the engine that reads buckets reads them through here.

import type { AccountingCore } from './accounting-core.ts'
import type { BucketRow } from './accounting-types.ts'
import { PEAK_WATTS, type SiteBuckets } from './bucket-store.ts'
import { carbonAt, gridIntensity, type MinuteFactors, marketIntensity, minuteFactors } from './carbon.ts'
import type { OutputMinutes } from './output-minutes.ts'
import type { ScopeRef, SiteState } from './site-state.ts'

export interface Figures {
  energy: number
  idle: number
  /** Location-based CO2 of the idle energy. */
  idleCo2: number
  co2: number
  co2Market: number
  pv: number
  peak: number
  /** Milli-units produced (output counters), and whether the scope has any equipment counting. */
  output: number
  counts: boolean
}

export function newFigures(): Figures {
  return { energy: 0, idle: 0, idleCo2: 0, co2: 0, co2Market: 0, pv: 0, peak: 0, output: 0, counts: false }
}

/**
 * A bucket's figures as sent (§5) and answered (§6). `outputUnits` is present where units were
 * counted: decided by the figures alone, so the same readings give the same fields in any arrival
 * order (an equipment's first reading adds no units).
 */
export function bucketRow(t: number, f: Figures): BucketRow {
  const row: BucketRow = {
    t,
    energyWh: f.energy,
    co2G: f.co2,
    co2MarketG: f.co2Market,
    idleWh: f.idle,
    peakW: f.peak,
    pvWh: f.pv,
    idleCo2G: f.idleCo2,
  }
  if (f.output !== 0) row.outputUnits = f.output
  return row
}

export class ScopeFigures {
  /** Shared result of minuteFactors(): read at once by every caller. */
  readonly factors: MinuteFactors = { location: 0, market: 0, pvShare: 0 }
  private factorBuffer = new Float64Array(0)

  constructor(private readonly core: AccountingCore) {}

  /** Per-minute carbon factors and PV share of a site for minutes [from, to), in a shared buffer. */
  minuteFactorsOf(site: SiteState, from: number, to: number): Float64Array {
    const n = Math.max(0, to - from)
    if (this.factorBuffer.length < n * 3) this.factorBuffer = new Float64Array(n * 3)
    const buf = this.factorBuffer
    const store = site.store
    for (let i = 0; i < n; i++) {
      const m = from + i
      const slot = store.slotOf(m)
      if (slot < 0) {
        buf[i * 3] = 0
        buf[i * 3 + 1] = 0
        buf[i * 3 + 2] = 0
        continue
      }
      const f = this.slotFactors(site, store, slot, m)
      buf[i * 3] = f.location
      buf[i * 3 + 1] = f.market
      buf[i * 3 + 2] = f.pvShare
    }
    return buf
  }

  /** A scope's figures over minutes [from, to), with factors from minuteFactorsOf(site, from, to). */
  figures(ref: ScopeRef, from: number, to: number, factors: Float64Array, out: Figures): Figures {
    const store = ref.site.store
    out.energy = 0
    out.idle = 0
    out.idleCo2 = 0
    out.co2 = 0
    out.co2Market = 0
    out.pv = 0
    out.peak = 0
    out.output = 0
    const output = this.core.outputs.get(ref.site.info.node.id)
    out.counts = output !== undefined && this.countsOutput(ref, output)
    let seen = false
    for (let m = from; m < to; m++) {
      const slot = store.slotOf(m)
      if (slot < 0) continue
      let energy = 0
      let idle = 0
      let peak = 0
      if (ref.kind === 'equipment') {
        const i = slot * store.nEq + ref.index
        energy = store.eqEnergy[i]!
        idle = store.eqIdle[i]!
        peak = PEAK_WATTS[store.eqPeak[i]!]!
      } else if (ref.kind === 'aggregate') {
        const i = slot * store.nAgg + ref.index
        energy = store.aggEnergy[i]!
        idle = store.aggIdle[i]!
        peak = store.aggPeak[i]!
      } else {
        const base = slot * store.nEq
        const eqs = ref.equipment
        for (let k = 0; k < eqs.length; k++) {
          energy += store.eqEnergy[base + eqs[k]!]!
          idle += store.eqIdle[base + eqs[k]!]!
          peak += PEAK_WATTS[store.eqPeak[base + eqs[k]!]!]!
        }
      }
      const j = (m - from) * 3
      out.energy += energy
      out.idle += idle
      out.idleCo2 += idle * factors[j]!
      out.co2 += energy * factors[j]!
      out.co2Market += energy * factors[j + 1]!
      out.pv += energy * factors[j + 2]!
      if (!seen || peak > out.peak) out.peak = peak
      seen = true
      if (out.counts) {
        out.output +=
          ref.kind === 'equipment'
            ? output!.ofEquipment(m, slot, ref.index)
            : ref.kind === 'aggregate'
              ? output!.ofAggregate(m, slot, ref.index)
              : output!.ofEquipmentList(m, slot, ref.equipment)
      }
    }
    // Stored in mWh; factors are per Wh.
    out.energy /= 1000
    out.idle /= 1000
    out.idleCo2 /= 1000
    out.co2 /= 1000
    out.co2Market /= 1000
    out.pv /= 1000
    out.output /= 1000
    return out
  }

  /** Per site: which scopes (by position) hold equipment that report output, for how many such. */
  private readonly countingScopes = new Map<string, { reporting: number; flags: Uint8Array }>()

  /** Whether the scope holds equipment that report `output` (its buckets carry outputUnits, §5). */
  private countsOutput(ref: ScopeRef, output: OutputMinutes): boolean {
    const site = ref.site
    const id = site.info.node.id
    const reporting = output.reporting()
    let cached = this.countingScopes.get(id)
    if (cached === undefined || cached.reporting !== reporting.length) {
      const flags = new Uint8Array(site.refs.length)
      for (const eq of reporting) {
        for (const ancestor of site.info.equipment[eq]!.ancestors) {
          const position = this.core.scopes.get(ancestor.scope)?.position
          if (position !== undefined) flags[position] = 1
        }
      }
      cached = { reporting: reporting.length, flags }
      this.countingScopes.set(id, cached)
    }
    return cached.flags[ref.position] === 1
  }

  /** A scope's energy and idle (mWh) and peak (W) in one slot of a cold column. */
  scopeMinute(ref: ScopeRef, b: SiteBuckets, slot: number, out: Figures): Figures {
    out.energy = 0
    out.idle = 0
    out.peak = 0
    if (ref.kind === 'equipment') {
      const i = slot * b.nEq + ref.index
      out.energy = b.eqEnergy[i]!
      out.idle = b.eqIdle[i]!
      out.peak = PEAK_WATTS[b.eqPeak[i]!]!
    } else if (ref.kind === 'aggregate') {
      const i = slot * b.nAgg + ref.index
      out.energy = b.aggEnergy[i]!
      out.idle = b.aggIdle[i]!
      out.peak = b.aggPeak[i]!
    } else {
      const base = slot * b.nEq
      for (const eq of ref.equipment) {
        out.energy += b.eqEnergy[base + eq]!
        out.idle += b.eqIdle[base + eq]!
        out.peak += PEAK_WATTS[b.eqPeak[base + eq]!]!
      }
    }
    return out
  }

  /** Carbon factors of one slot of a cold column (the site's row is aggregate 0, as in the ring). */
  coldFactors(site: SiteState, b: SiteBuckets, slot: number, minute: number): [number, number, number] {
    const f = this.slotFactors(site, b, slot, minute)
    return [f.location, f.market, f.pvShare]
  }

  /** Carbon factors and PV share of `minute`, held in `slot` of `b` (the ring or a cold column), into `factors`. */
  private slotFactors(site: SiteState, b: SiteBuckets, slot: number, minute: number): MinuteFactors {
    const carbon = carbonAt(site.carbon, minute)
    return minuteFactors(
      b.aggEnergy[slot * b.nAgg]!,
      b.pv[slot]!,
      b.grid[slot]!,
      site.hasGridMeters,
      gridIntensity(carbon, site.calendar, minute),
      marketIntensity(carbon),
      this.factors,
    )
  }
}
