// Idle spans and energy between two times (CONTRACT.md §5 idle alert, §7 idle): opening, moving or
// closing an equipment's idle span corrects the idle energy of the minutes it touches; the energy
// an equipment drew over a span is computed from the retained readings and the closed buckets.

import type { AccountingCore } from './accounting-core.ts'
import type { EnergyFigures } from './accounting-types.ts'
import type { DeviceEnergy } from './device-energy.ts'
import type { Ingest } from './ingest.ts'
import type { ScopeFigures } from './scope-figures.ts'
import type { SiteState } from './site-state.ts'

export class IdleEnergy {
  constructor(
    private readonly core: AccountingCore,
    private readonly figs: ScopeFigures,
    private readonly ingest: Ingest,
  ) {}

  /**
   * Energy of an equipment within [x, y] into the scratch's energy (mWh per minute): exact under
   * the even-spreading model where its devices' readings are retained; before that, the minute's
   * bucket energy in proportion to the part of the minute inside (counted `approximated`).
   */
  private regionEnergy(site: SiteState, eq: number, x: number, y: number): void {
    const node = site.info.equipment[eq]!
    let exactFrom = Number.NEGATIVE_INFINITY
    let latest = Number.NEGATIVE_INFINITY
    const devices: DeviceEnergy[] = []
    for (const id of node.spec.devices) {
      const dev = this.core.devices.get(id)
      if (dev === undefined) continue
      devices.push(dev)
      exactFrom = Math.max(exactFrom, dev.exactFrom())
      latest = Math.max(latest, dev.energy.lastEver, dev.power.lastEver)
    }
    y = Math.min(y, latest)
    if (!(y > x)) return
    this.core.context.spans = undefined
    if (x < exactFrom) {
      this.core.counters.approximated++
      const store = site.store
      const to = Math.min(y, exactFrom)
      for (let m = Math.floor(x / 60); m * 60 < to; m++) {
        const slot = store.slotOf(m)
        if (slot < 0) continue
        const part = Math.min(to, (m + 1) * 60) - Math.max(x, m * 60)
        this.core.scratch.add(m, Math.round((store.eqEnergy[slot * store.nEq + eq]! * part) / 60), 0)
      }
      x = exactFrom
    }
    if (y > x) for (const dev of devices) this.core.context.energyOver(dev, x, y, 1)
  }

  /**
   * Opens, moves the end of, or closes an idle span of an equipment (§7 idle; the caller's idle
   * detection decides). The same start identifies the span; `endS` undefined means still idle.
   * Idle energy of every minute the change touches is corrected, emitted minutes are revised.
   */
  setIdleSpan(equipmentScope: string, startS: number, endS: number | undefined): void {
    const ref = this.core.scopes.get(equipmentScope)
    if (ref === undefined || ref.kind !== 'equipment') throw new RangeError(`${equipmentScope} is not an equipment`)
    const site = ref.site
    const eq = ref.index
    const spans = site.spans[eq] ?? []
    site.spans[eq] = spans
    const index = spans.findIndex((s) => s.start === startS)
    const oldEnd = index >= 0 ? spans[index]!.end : startS
    const newEnd = Math.max(startS, endS ?? Number.POSITIVE_INFINITY)
    if (newEnd === oldEnd) return
    if (index >= 0) {
      if (newEnd === startS) spans.splice(index, 1)
      else spans[index]!.end = newEnd
    } else {
      spans.push({ start: startS, end: newEnd })
      spans.sort((a, b) => a.start - b.start)
    }
    const sign = newEnd > oldEnd ? 1 : -1
    this.regionEnergy(site, eq, Math.min(oldEnd, newEnd), Math.max(oldEnd, newEnd))
    const out = this.core.scratch
    if (!out.empty) {
      for (let m = out.lo; m <= out.hi; m++) {
        out.idle[m - out.base] = sign * out.energy[m - out.base]!
        out.energy[m - out.base] = 0
      }
      this.ingest.flush(site, { kind: 'equipment', eq })
    }
    // Spans that ended before the history are no longer needed.
    const horizon = site.store.oldest() * 60
    site.spans[eq] = spans.filter((s) => s.end >= horizon)
  }

  /**
   * Energy an equipment drew within [fromS, toS] and its CO2 (§5 idle alert `wastedWh`,
   * `wastedCo2G`), per minute with each minute's carbon factors.
   *
   * Asked for once the minute holding toS is final (detection holds an idle clear until the
   * watermark is latenessS past that minute's end), the answer is a function of the readings only,
   * whatever order they arrived in (§7): the minutes wholly inside come from the closed buckets; the
   * partial last minute from the retained readings; the partial first minute from the retained
   * readings when it lies within `retentionS − 2 × latenessS − 60` of toS — then its readings are
   * retained however the arrivals interleaved (the site clock is about toS + 60 + 2 × latenessS at
   * that moment) — and, for a longer span, from its closed bucket in proportion to the part of the
   * minute inside. Deciding that by whether the readings happen to be retained now would make the
   * first minute exact or approximated depending on how far each device's latest reading had got.
   */
  energyBetween(equipmentScope: string, fromS: number, toS: number): EnergyFigures {
    const ref = this.core.scopes.get(equipmentScope)
    if (ref === undefined || ref.kind !== 'equipment') throw new RangeError(`${equipmentScope} is not an equipment`)
    const site = ref.site
    const eq = ref.index
    const result = { energyWh: 0, co2G: 0, co2MarketG: 0 }
    if (!(toS > fromS)) return result
    const out = this.core.scratch
    const store = site.store
    const first = Math.floor(fromS / 60)
    const last = Math.floor(toS / 60)
    const headEnd = Math.min(toS, (first + 1) * 60)
    const exactSpanS = Math.max(0, site.retentionS - 2 * site.info.latenessS - 60)
    if (fromS >= toS - exactSpanS) this.regionEnergy(site, eq, fromS, headEnd)
    else {
      const slot = store.slotOf(first)
      if (slot >= 0) out.add(first, Math.round((store.eqEnergy[slot * store.nEq + eq]! * (headEnd - fromS)) / 60), 0)
    }
    for (let m = first + 1; m < last; m++) {
      const slot = store.slotOf(m)
      if (slot >= 0) out.add(m, store.eqEnergy[slot * store.nEq + eq]!, 0)
    }
    if (last > first && toS > last * 60) this.regionEnergy(site, eq, last * 60, toS)
    if (out.empty) return result
    const factors = this.figs.minuteFactorsOf(site, out.lo, out.hi + 1)
    for (let m = out.lo; m <= out.hi; m++) {
      const wh = out.energy[m - out.base]! / 1000
      result.energyWh += wh
      result.co2G += wh * factors[(m - out.lo) * 3]!
      result.co2MarketG += wh * factors[(m - out.lo) * 3 + 1]!
    }
    out.clear()
    return result
  }
}
