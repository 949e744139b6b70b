// Taking readings (CONTRACT.md §2 dedup and range checks, §7 energy): each accepted reading is
// inserted in its device's series, the intervals it splits are spread over their minutes
// (device-energy.ts) and the net change placed in the ring, in a cold minute, or logged against a
// minute already sent so that its buckets are revised.

import type { Reading } from '@plantwatt/contract'
import type { DeviceInfo } from '@plantwatt/plant'
import type { AccountingCore } from './accounting-core.ts'
import type { AcceptResult } from './accounting-types.ts'
import type { ColdRevisions } from './cold-revisions.ts'
import { counterIncrement, coverageNow, type DeviceSink } from './device-energy.ts'
import type { MinuteClosing } from './minute-closing.ts'
import { OutputMinutes } from './output-minutes.ts'
import { meterPowerInRange, powerInRange } from './reading-ranges.ts'
import type { ReadingSeries } from './series.ts'
import type { SiteState } from './site-state.ts'
import { spreadPart } from './spread.ts'

export class Ingest {
  constructor(
    private readonly core: AccountingCore,
    private readonly closing: MinuteClosing,
    private readonly coldRevisions: ColdRevisions,
  ) {}

  /**
   * Takes one decoded reading of a device (in arrival order). Readings older than the device's
   * retained window (see AccountingOptions.retentionS) but within maxAgeS are accepted and
   * counted `approximated`: the interval that holds them was already accounted from its two
   * (since evicted) ends, so the device's total is right and only the split of that interval
   * across minutes keeps the even spread; such a reading only raises the minute's peak, and a
   * repeat of it cannot be told from a new one (it changes nothing, so it is never counted twice).
   */
  accept(device: DeviceInfo, reading: Reading): AcceptResult {
    const site = this.core.sites.get(device.siteId)
    if (site === undefined) throw new RangeError(`unknown site ${device.siteId}`)
    const t = reading.time
    if (site.clock !== undefined && t < site.clock - site.info.maxAgeS) {
      this.core.counters.too_old++
      return 'too_old'
    }
    const dev = this.core.deviceOf(device)
    const name = reading.name
    const series = dev.series(name)
    const pos = series.lowerBound(t)
    if (pos < series.len && series.time(pos) === t) {
      this.core.counters.duplicate++
      return 'duplicate'
    }
    const beyond = pos === 0 && series.evicted
    const equipment = device.role === 'equipment' ? device.equipment : undefined
    // Cumulative counters (§2 `energy`, `output`) count up from zero: a negative value is no
    // reading of one (a reset restarts at zero), whoever reports it.
    if ((name === 'energy' || name === 'output') && reading.value < 0) {
      this.core.counters.out_of_range++
      return 'out_of_range'
    }
    if (equipment !== undefined) {
      const rated = equipment.spec.ratedPowerW
      if (name === 'power' && !powerInRange(rated, reading.value)) {
        this.core.counters.out_of_range++
        return 'out_of_range'
      }
      if (name === 'energy' && pos > 0) {
        const dt = t - series.time(pos - 1)
        const implied = (counterIncrement(series.value(pos - 1), reading.value) * 3600) / dt
        if (!powerInRange(rated, implied)) {
          this.core.counters.out_of_range++
          return 'out_of_range'
        }
      }
    } else {
      const limit = site.meterLimitW
      if (name === 'power' && !meterPowerInRange(limit, reading.value)) {
        this.core.counters.out_of_range++
        return 'out_of_range'
      }
      if (name === 'energy' && pos > 0) {
        const dt = t - series.time(pos - 1)
        const implied = (counterIncrement(series.value(pos - 1), reading.value) * 3600) / dt
        if (!meterPowerInRange(limit, implied)) {
          this.core.counters.out_of_range++
          return 'out_of_range'
        }
      }
    }
    this.core.counters.accepted++
    this.closing.advanceClock(site, t)
    if (beyond) {
      this.core.counters.approximated++
      if (equipment !== undefined && name === 'power') this.raisePeak(site, equipment.index, t, reading.value)
      return 'accepted'
    }
    if (name === 'output' && equipment !== undefined) {
      series.insert(pos, t, reading.value)
      this.outputInserted(site, equipment.index, series, pos)
      series.evictBefore(series.lastEver - site.retentionS, this.core.maxRetained)
      return 'accepted'
    }
    const sink = dev.sink
    this.core.context.spans = sink.kind === 'equipment' ? site.spans[sink.eq] : undefined
    if (name === 'energy') {
      const before = coverageNow(dev)
      series.insert(pos, t, reading.value)
      this.core.context.energyInserted(dev, pos, before)
    } else if (name === 'power') {
      series.insert(pos, t, reading.value)
      this.core.context.powerInserted(dev, pos)
      if (equipment !== undefined) this.raisePeak(site, equipment.index, t, reading.value)
    } else {
      series.insert(pos, t, 0)
    }
    this.flush(site, sink)
    series.evictBefore(series.lastEver - site.retentionS, this.core.maxRetained)
    return 'accepted'
  }

  /** The names of a device's other measurements (§2 process variables) held for ordering and dedup. */
  otherMeasurements(deviceId: string): string[] {
    const dev = this.core.devices.get(deviceId)
    return dev === undefined ? [] : [...dev.others.keys()]
  }

  /**
   * Drops a device's series of one other measurement (the caller bounds the names a device holds,
   * CONTRACT.md §2). Such series carry no energy, only ordering and dedup: a repeat of a reading
   * of a forgotten name is taken as new. False when there was none (power and energy never go).
   */
  forgetMeasurement(deviceId: string, name: string): boolean {
    return this.core.devices.get(deviceId)?.others.delete(name) ?? false
  }

  /**
   * Accounts an `output` reading just inserted at `pos` of its series: as a counter (§7 energy
   * counter rules, §2 a decrease is a reset), the interval it splits is taken out and its two
   * halves put in, spread evenly over their time, in whole milli-units.
   */
  private outputInserted(site: SiteState, eq: number, series: ReadingSeries, pos: number): void {
    const out = this.core.scratch
    const part = (i: number, j: number, sign: number) => {
      const a = series.time(i)
      const b = series.time(j)
      spreadPart(out, a, b, counterIncrement(series.value(i), series.value(j)) * 1000, a, b, sign, undefined)
    }
    const hasPrev = pos > 0
    const hasNext = pos + 1 < series.len
    if (hasPrev && hasNext) part(pos - 1, pos + 1, -1)
    if (hasPrev) part(pos - 1, pos, 1)
    if (hasNext) part(pos, pos + 1, 1)
    let minutes = this.core.outputs.get(site.info.node.id)
    if (minutes === undefined) {
      minutes = new OutputMinutes(site.store.length, site.store.nAgg)
      this.core.outputs.set(site.info.node.id, minutes)
    }
    // From its first reading on (which adds nothing yet), the equipment's buckets carry outputUnits.
    minutes.track(eq)
    if (out.empty) return
    const aggs = site.equipmentAggregates[eq]!
    for (let m = out.lo; m <= out.hi; m++) {
      const units = out.energy[m - out.base]!
      if (units === 0) continue
      const slot = site.store.slotOf(m)
      if (slot < 0) {
        this.core.counters.beyondHistory++
        continue
      }
      minutes.add(m, slot, eq, aggs, units)
      if (m <= site.emittedThrough) {
        site.dirty.add(m)
        site.closedChanges.note(m)
        site.gate.change(m).of(eq).output += units
      }
    }
    out.clear()
  }

  private raisePeak(site: SiteState, eq: number, t: number, watts: number): void {
    const minute = Math.floor(t / 60)
    const slot = site.store.slotOf(minute)
    if (slot < 0) {
      const cold = this.coldRevisions.coldColumn(site, minute)
      if (cold?.buckets.raisePeak(0, eq, site.equipmentAggregates[eq]!, watts))
        this.coldRevisions.coldTouched(site, cold)
      return
    }
    const before = site.store.eqPeak[slot * site.store.nEq + eq]!
    if (site.store.raisePeak(slot, eq, site.equipmentAggregates[eq]!, watts) && minute <= site.emittedThrough) {
      site.dirty.add(minute)
      site.closedChanges.note(minute)
      const change = site.gate.change(minute).of(eq)
      if (change.peakBefore < 0) change.peakBefore = before
    }
  }

  /** Applies the scratch's net per-minute changes to the sink's buckets. */
  flush(site: SiteState, sink: DeviceSink): void {
    const out = this.core.scratch
    if (out.empty) return
    const store = site.store
    const aggs = sink.kind === 'equipment' ? site.equipmentAggregates[sink.eq]! : undefined
    for (let m = out.lo; m <= out.hi; m++) {
      const energy = out.energy[m - out.base]!
      const idle = out.idle[m - out.base]!
      if (energy === 0 && idle === 0) continue
      const slot = store.slotOf(m)
      if (slot < 0) {
        const cold = this.coldRevisions.coldColumn(site, m)
        if (cold === undefined) {
          this.core.counters.beyondHistory++
          continue
        }
        const b = cold.buckets
        if (sink.kind === 'equipment') b.addEquipment(0, sink.eq, aggs!, energy, idle)
        else if (sink.kind === 'pv') b.addPv(0, energy)
        else b.addGrid(0, energy)
        this.coldRevisions.coldTouched(site, cold)
        this.core.counters.coldPlaced++
        continue
      }
      if (sink.kind === 'equipment') store.addEquipment(slot, sink.eq, aggs!, energy, idle)
      else if (sink.kind === 'pv') store.addPv(slot, energy)
      else store.addGrid(slot, energy)
      if (m <= site.emittedThrough) {
        site.dirty.add(m)
        site.closedChanges.note(m)
        const change = site.gate.change(m)
        if (sink.kind === 'equipment') {
          const of = change.of(sink.eq)
          of.energy += energy
          of.idle += idle
        } else if (sink.kind === 'pv') change.pv += energy
        else change.grid += energy
      }
    }
    out.clear()
  }
}
