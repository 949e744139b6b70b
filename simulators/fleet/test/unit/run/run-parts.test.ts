// The pure parts of simulate and replay: speed and duration, where simulated time starts, the
// plant subset, and merging the workers' truths back into the truth of one whole-plant run.

import { describe, expect, it } from 'vitest'
import { PlantSimulation, partitionFleet } from '../../../src/model/index.ts'
import { generatePlant } from '../../../src/plant-generator.ts'
import { paceS, parseDuration, parseSpeed, simulatedStartS } from '../../../src/run/clock.ts'
import { FAULT_PRESETS } from '../../../src/run/faults.ts'
import { plantSubset } from '../../../src/run/plant-subset.ts'
import { partOf } from '../../../src/run/replay-job.ts'
import { mergeTruths } from '../../../src/run/truth-merge.ts'
import { fleetDevicesOf } from '../../../src/sessions/devices.ts'

describe('speed and duration', () => {
  it('parses max and positive numbers, and refuses the rest', () => {
    expect(parseSpeed('max')).toBe('max')
    expect(parseSpeed('60')).toBe(60)
    expect(parseSpeed('0.5')).toBe(0.5)
    for (const bad of ['0', '-1', '', 'fast', 'NaN', 'Infinity']) expect(() => parseSpeed(bad)).toThrow(RangeError)
  })

  it('parses durations with units', () => {
    expect(parseDuration('90')).toBe(90)
    expect(parseDuration('10m')).toBe(600)
    expect(parseDuration('1.5h')).toBe(5400)
    expect(parseDuration('7d')).toBe(604_800)
    for (const bad of ['0', '-5m', '10w', 'soon', '400d']) expect(() => parseDuration(bad)).toThrow(RangeError)
  })

  it('starts simulated time in the past so that the run ends at the wall clock, never after it', () => {
    const now = 1_795_000_000
    // At ×60, 24 h of simulated time take 24 min: start 24 h − 24 min ago.
    const start = simulatedStartS(now, 86_400, 60)
    expect(start).toBeCloseTo(now - 86_400 + 1440, 6)
    const wallEnd = now + 86_400 / 60
    expect(start + 86_400).toBeCloseTo(wallEnd, 6)
    // Every moment of the run: simulated time ≤ wall time.
    for (const fraction of [0, 0.25, 0.5, 1]) {
      const wall = now + fraction * (86_400 / 60)
      expect(paceS(start, 60, now * 1000, wall * 1000, Number.POSITIVE_INFINITY)).toBeLessThanOrEqual(wall + 1e-6)
    }
    expect(simulatedStartS(now, 600, 'max')).toBe(now - 600)
    expect(simulatedStartS(now, 600, 1)).toBe(now)
    expect(simulatedStartS(now, 600, 0.5)).toBe(now)
  })

  it('paces fixed speeds by the wall clock and max speed by the horizon only', () => {
    expect(paceS(1000, 10, 5000, 7000, Number.POSITIVE_INFINITY)).toBe(1020)
    expect(paceS(1000, 10, 5000, 7000, 1015)).toBe(1015)
    expect(paceS(1000, 'max', 5000, 7000, 1300)).toBe(1300)
  })
})

describe('plant subset (simulate --devices N)', () => {
  const plant = generatePlant({ devices: 600, seed: 3 })

  it('keeps site meters and whole lines up to N devices', () => {
    const subset = plantSubset(plant, 100)
    const count = fleetDevicesOf(subset).length
    expect(count).toBeGreaterThanOrEqual(100)
    const largestLine = Math.max(
      ...plant.sites.flatMap((s) =>
        s.areas.flatMap((a) => a.lines.map((l) => l.equipment.flatMap((e) => e.devices).length)),
      ),
    )
    expect(count).toBeLessThan(100 + largestLine)
    const lineIds = (p: typeof plant) => p.sites.flatMap((s) => s.areas.flatMap((a) => a.lines))
    for (const line of lineIds(subset)) expect(lineIds(plant)).toContainEqual(line)
    expect(subset.sites[0]!.meters).toEqual(plant.sites[0]!.meters)
  })

  it('keeps the whole plant when N covers it', () => {
    expect(fleetDevicesOf(plantSubset(plant, 100_000))).toEqual(fleetDevicesOf(plant))
  })
})

describe('replay partition', () => {
  it('gives each device one worker, stably, and spreads them', () => {
    const ids = fleetDevicesOf(generatePlant({ devices: 400, seed: 1 })).map((d) => d.id)
    const counts = [0, 0, 0, 0]
    for (const id of ids) {
      const part = partOf(id, 4)
      expect(partOf(id, 4)).toBe(part)
      counts[part]!++
    }
    for (const count of counts) expect(count).toBeGreaterThan(ids.length / 8)
  })
})

describe('truth of a run over several workers', () => {
  it('equals the truth of one simulation of the whole plant', () => {
    const plant = generatePlant({ devices: 120, seed: 9 })
    const options = { plant, seed: 4, startS: Date.UTC(2025, 2, 4, 1, 0) / 1000, faults: FAULT_PRESETS.nbiot }
    const endS = options.startS + 900
    const whole = new PlantSimulation(options)
    whole.advanceTo(endS)
    const parts = partitionFleet(plant, 3)
    const truths = parts.map((emitDevices) => {
      const part = new PlantSimulation({ ...options, emitDevices })
      part.advanceTo(endS)
      return part.truth.toJSON()
    })
    // Not trivially equal: no worker's own truth is the whole plant's.
    for (const truth of truths) expect(truth).not.toEqual(whole.truth.toJSON())
    expect(mergeTruths(plant, truths, parts)).toEqual(whole.truth.toJSON())
  })
})
