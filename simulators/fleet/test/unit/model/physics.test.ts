// Physics against its own truth: the least feasible setpoint really is the least one, and moves
// with production; PV follows the sun of the site's time zone; the grid meter reads consumption − PV.

import type { PlantModel } from '@plantwatt/contract'
import { beforeAll, describe, expect, it } from 'vitest'
import { type FeasibleSetpoints, PlantSimulation } from '../../../src/model/index.ts'
import { deviceRolesOf, generatePlant } from '../../../src/plant-generator.ts'
import { collect, decodeAll, increments, sum, utc } from './published.ts'

describe('tuned oven', () => {
  const plant = generatePlant({ devices: 8, seed: 1 })
  const eqs = plant.sites[0]!.areas.flatMap((area) => area.lines.flatMap((line) => line.equipment))
  const oven = eqs.find((eq) => eq.id === 'coater-1-oven')!
  const scope = 'yibin/electrode/coating-1/coater-1-oven'
  const sensor = deviceRolesOf(oven).process!.device
  const tuning = oven.tuning!
  const target = tuning.constraint.max * (1 - tuning.constraint.margin)
  const START = utc(2025, 3, 4, 1, 0) // Tuesday 09:00 in Yibin
  const HOURS = 16

  let series: FeasibleSetpoints
  beforeAll(() => {
    const truthRun = new PlantSimulation({ plant, seed: 21, startS: START })
    collect(truthRun, START, START + HOURS * 3600, 600)
    series = truthRun.truth.feasibleSetpoints().find((s) => s.scope === scope)!
  })

  /** Highest 1-minute mean of the published constraint measure in [from, to) with the setpoint at `value`. */
  function worstMinute(value: number, from: number, to: number): number {
    const sim = new PlantSimulation({ plant, seed: 21, startS: START, emitDevices: new Set(oven.devices) })
    collect(sim, START, from, 600)
    sim.receiveCommand(sensor, { type: 'setpoint', id: 'x', name: tuning.setpoint, value, issuedAt: from }, from)
    const ppm = decodeAll(collect(sim, from, to, 600))
      .get(sensor)!
      .get(tuning.constraint.measure)!
    const byMinute = new Map<number, number[]>()
    for (let i = 0; i < ppm.t.length; i++) {
      if (ppm.t[i]! < from + 360) continue // let the fan and the concentration settle
      const minute = Math.floor(ppm.t[i]! / 60)
      byMinute.set(minute, [...(byMinute.get(minute) ?? []), ppm.v[i]!])
    }
    return Math.max(...[...byMinute.values()].map((vs) => sum(vs) / vs.length))
  }

  it('moves the least feasible setpoint when production changes', () => {
    expect(series.name).toBe('fan_hz')
    expect(series.points[0]!.tS).toBeLessThan(START + 1)
    const values = new Set(series.points.map((p) => p.value))
    expect(values.size).toBeGreaterThanOrEqual(3)
    for (const p of series.points) {
      expect(p.value).toBeGreaterThanOrEqual(tuning.min)
      expect(p.value).toBeLessThanOrEqual(tuning.max)
    }
  })

  it('keeps the constraint at max × (1 − margin) at that setpoint, and breaks it below', () => {
    // A stretch of at least 30 minutes with one feasible value inside the range.
    const i = series.points.findIndex(
      (p, k) =>
        p.value > tuning.min + 3 &&
        p.value < tuning.max - 1 &&
        (series.points[k + 1]?.tS ?? START + HOURS * 3600) - p.tS >= 1800 &&
        p.tS > START,
    )
    expect(i).toBeGreaterThanOrEqual(0)
    const point = series.points[i]!
    const to = Math.min(series.points[i + 1]?.tS ?? START + HOURS * 3600, point.tS + 2400)
    const at = worstMinute(Math.ceil((point.value + 0.3) * 100) / 100, point.tS, to)
    expect(at).toBeLessThanOrEqual(target + 1.5)
    expect(at).toBeGreaterThan(target - 10)
    const below = worstMinute(point.value - 2.5, point.tS, to)
    expect(below).toBeGreaterThan(target + 5)
  })
})

function withTimezone(plant: PlantModel, timezone: string): PlantModel {
  const copy = structuredClone(plant)
  copy.sites[0]!.timezone = timezone
  return copy
}

describe('rooftop PV', () => {
  const plant = generatePlant({ devices: 20, seed: 4 })
  const pv = plant.sites[0]!.meters!.pv![0]!

  function pvPower(model: PlantModel, startS: number, hours: number): number[] {
    const sim = new PlantSimulation({ plant: model, seed: 3, startS, emitDevices: new Set([pv]) })
    return decodeAll(collect(sim, startS, startS + hours * 3600, 600))
      .get(pv)!
      .get('power')!.v
  }

  it('is zero at night and generates by day, in the site’s time zone', () => {
    // 00:00–03:00 and 12:00–13:00 in Yibin (UTC+8).
    const yibinNight = pvPower(plant, utc(2025, 6, 10, 16), 3)
    expect(yibinNight.length).toBe(3 * 3600)
    expect(yibinNight.every((p) => p === 0)).toBe(true)
    const yibinNoon = pvPower(plant, utc(2025, 6, 10, 4), 1)
    expect(Math.min(...yibinNoon)).toBeGreaterThan(0)
    // The same UTC hours in New York (UTC−4 in June): now night at 04:00 UTC, day at 16:00 UTC.
    const newYork = withTimezone(plant, 'America/New_York')
    expect(pvPower(newYork, utc(2025, 6, 10, 4), 1).every((p) => p === 0)).toBe(true)
    expect(Math.min(...pvPower(newYork, utc(2025, 6, 10, 16), 1))).toBeGreaterThan(0)
  })
})

describe('grid meter', () => {
  it('imports site consumption minus PV, and its counter equals the truth', () => {
    const plant = generatePlant({ devices: 20, seed: 4 })
    const grid = plant.sites[0]!.meters!.grid![0]!
    const pv = plant.sites[0]!.meters!.pv![0]!
    const start = utc(2025, 6, 10, 3) // 11:00 in Yibin: PV producing
    const sim = new PlantSimulation({ plant, seed: 3, startS: start })
    const messages = collect(sim, start, start + 3600, 300)
    const gridTruth = sim.truth.meterEnergyByMinute(grid).wh
    const pvTruth = sim.truth.meterEnergyByMinute(pv).wh
    const scopes = sim.truth.equipmentScopes()
    const consumption = scopes.map((scope) => sim.truth.energyByMinute(scope).wh)
    for (let m = 1; m < gridTruth.length - 1; m++) {
      const e = sum(consumption.map((wh) => wh[m]!))
      expect(pvTruth[m]!).toBeGreaterThan(0)
      expect(Math.abs(gridTruth[m]! - (e - pvTruth[m]!)) / gridTruth[m]!).toBeLessThan(1e-3)
    }
    // The counter, spread evenly between readings, gives the same energy per minute.
    const counter = decodeAll(messages).get(grid)!.get('energy')!
    const inc = increments(counter)
    const startMs = sim.truth.meterEnergyByMinute(grid).startMs
    const fromCounter = new Float64Array(gridTruth.length)
    for (let i = 1; i < counter.t.length; i++) {
      const a = counter.t[i - 1]! * 1000
      const b = counter.t[i]! * 1000
      for (let x = a; x < b; ) {
        const bucket = Math.floor(x / 60_000)
        const end = Math.min(b, (bucket + 1) * 60_000)
        fromCounter[bucket - startMs / 60_000]! += (inc[i]! * (end - x)) / (b - a)
        x = end
      }
    }
    for (let m = 1; m < gridTruth.length - 1; m++) {
      expect(Math.abs(fromCounter[m]! - gridTruth[m]!) / gridTruth[m]!).toBeLessThan(1e-4)
    }
  })
})
