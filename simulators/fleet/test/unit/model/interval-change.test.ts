// A simulation that changes its report interval between ticks (the demo's backfill runs two days
// at a coarse interval, then goes live at the fine one) and devices that continue the counters a
// platform already holds (a demo restarted on its data directory).

import { describe, expect, it } from 'vitest'
import { PlantSimulation } from '../../../src/model/index.ts'
import { generatePlant } from '../../../src/plant-generator.ts'
import { collect, decodeAll, equipmentList, type Series, utc } from './published.ts'

const START = utc(2025, 3, 4, 0, 30) // Tuesday 08:30 in Yibin: production running
const COARSE_S = 60
const FINE_S = 5

describe('changing the report interval between ticks', () => {
  const plant = generatePlant({ devices: 60, seed: 5 })

  function switched() {
    const sim = new PlantSimulation({ plant, seed: 3, startS: START, reportIntervalS: COARSE_S })
    const boundaryS = sim.tickStartAtOrBefore(START + 3600 + 37)
    expect(boundaryS).toBe(START + 3600)
    const before = collect(sim, START, boundaryS - 0.001, 600)
    sim.setReportInterval(FINE_S)
    const after = collect(sim, boundaryS - 0.001, boundaryS + 600, 7)
    return { sim, boundaryS, before, after }
  }

  it('samples every device at the old interval before the boundary and at the new one after it, never twice', () => {
    const { boundaryS, before, after } = switched()
    expect(before.every((m) => m.sendAtS < boundaryS)).toBe(true)
    expect(after.every((m) => m.sendAtS >= boundaryS)).toBe(true)
    const published = decodeAll([...before, ...after])
    expect(published.size).toBe(60)
    for (const [device, byName] of published) {
      const { t } = [...byName.values()][0]! as Series
      const gaps = t.slice(1).map((time, k) => Math.round((time - t[k]!) * 1000) / 1000)
      const early = gaps.filter((_gap, k) => t[k + 1]! < boundaryS)
      const late = gaps.filter((_gap, k) => t[k]! >= boundaryS)
      expect(new Set(early), device).toEqual(new Set([COARSE_S]))
      expect(new Set(late), device).toEqual(new Set([FINE_S]))
      // The one gap across the boundary: positive, and no longer than the two intervals together.
      const across = gaps.find((_gap, k) => t[k]! < boundaryS && t[k + 1]! >= boundaryS)!
      expect(across, device).toBeGreaterThan(0)
      expect(across, device).toBeLessThanOrEqual(COARSE_S + FINE_S)
    }
  })

  it('keeps the energy counters equal to the true energy across the change', () => {
    const { sim, before, after } = switched()
    const published = decodeAll([...before, ...after])
    let checked = 0
    for (const { scope, spec } of equipmentList(plant)) {
      const energy = published.get(spec.devices[0]!)?.get('energy')
      if (!energy) continue
      const counted = energy.v.at(-1)! - energy.v[0]!
      // Counters have a 0.01 Wh resolution (device.ts).
      expect(Math.abs(counted - sim.truth.energyTotalWh(scope)), scope).toBeLessThan(0.02)
      checked++
    }
    expect(checked).toBeGreaterThan(20)
  })

  it('refuses a change in the middle of a tick', () => {
    const sim = new PlantSimulation({ plant, seed: 3, startS: START, reportIntervalS: COARSE_S })
    collect(sim, START, START + 90, 30)
    expect(() => sim.setReportInterval(FINE_S)).toThrow(RangeError)
    expect(() => sim.setReportInterval(0)).toThrow(RangeError)
  })
})

describe('continuing counters a platform already holds', () => {
  const plant = generatePlant({ devices: 60, seed: 5 })

  it("starts a device's energy and output counters at the given values and counts on from there", () => {
    const withOutput = equipmentList(plant).find(({ spec }) => spec.devices.length > 1)!
    const probe = new PlantSimulation({ plant, seed: 3, startS: START, reportIntervalS: COARSE_S })
    const names = decodeAll(collect(probe, START, START + 60, 60))
    const outputDevice = withOutput.spec.devices.find((id) => names.get(id)?.has('output'))
    const powerDevice = withOutput.spec.devices[0]!

    const sim = new PlantSimulation({ plant, seed: 3, startS: START, reportIntervalS: COARSE_S })
    sim.continueCounters(powerDevice, { energy: 1234.56 })
    if (outputDevice) sim.continueCounters(outputDevice, { output: 777 })
    const published = decodeAll(collect(sim, START, START + 1800, 300))
    const energy = published.get(powerDevice)!.get('energy')!
    expect(energy.v[0]).toBe(1234.56)
    expect(Math.abs(energy.v.at(-1)! - 1234.56 - sim.truth.energyTotalWh(withOutput.scope))).toBeLessThan(0.02)
    for (let k = 1; k < energy.v.length; k++) expect(energy.v[k]!).toBeGreaterThanOrEqual(energy.v[k - 1]!)
    if (outputDevice) expect(published.get(outputDevice)!.get('output')!.v[0]).toBe(777)
    expect(() => sim.continueCounters('no-such-device', { energy: 1 })).toThrow(RangeError)
  })
})
