// Learned thresholds of equipment with more power levels than off / idle / running (CONTRACT.md §1
// `idle` absent, §7): a drying oven of the simulator's model (simulators/fleet/src/model/equipment.ts)
// shows four — off (controls only, ≈ 0.3 % of rated), a heater fault (heaters stopped, fans at their
// 40 % standby speed, ≈ 2 % of rated), standby at temperature (the idle level, 14–22 %) and the web
// running. Both of the lowest are `off` by the simulator's truth (below 2 % of rated); taking the
// fault level for idle put runAboveW below the real idle level, so every idle episode after the
// first heater fault read as running and was missed (docs/benchmarks.md, idle recall, cause 3).

import type { Alert } from '@plantwatt/contract'
import { decodeSenml } from '@plantwatt/contract'
import { generatePlant, PlantSimulation } from '@plantwatt/fleet'
import { type EquipmentNode, isEquipment, PlantIndex } from '@plantwatt/plant'
import { beforeAll, describe, expect, it } from 'vitest'
import { Detection } from '../src/index.ts'
import { detectedEpisodes, match } from './evaluate.ts'

// The replay-day benchmark's 2,000-device plant and start (services/processor/bench/replay-day.ts),
// where this oven's learned idle band was wrong after its heater fault at +16.9 h.
const OVEN = 'yibin/electrode/coating-31/coater-31-oven'
const START = Date.UTC(2025, 2, 3, 16, 0) / 1000
const HOURS = 24
const INTERVAL_S = 60

describe('learned thresholds of a four-level oven (simulator model)', () => {
  const plantModel = generatePlant({ devices: 2000, seed: 1 })
  const plant = new PlantIndex(plantModel)
  const found = plant.scope(OVEN)
  if (found === undefined || !isEquipment(found)) throw new Error(`${OVEN} is not an equipment of the generated plant`)
  const node: EquipmentNode = found
  let events: Alert[]
  let detection: Detection
  let truth: ReturnType<PlantSimulation['truth']['idleEpisodes']>
  let rule: ReturnType<PlantSimulation['truth']['idleRules']>[number]
  const powerByTime = new Map<number, number>()

  beforeAll(() => {
    const devices = node.spec.devices
    // Only the oven's devices: the same bytes as a whole-plant run (simulation.ts, emitDevices).
    const sim = new PlantSimulation({
      plant: plantModel,
      seed: 1,
      startS: START,
      reportIntervalS: INTERVAL_S,
      emitDevices: new Set(devices),
    })
    const endS = START + HOURS * 3600
    detection = new Detection(plant, { energyBetween: () => ({ wh: 0, co2G: 0 }), onIdleSpan: () => {} })
    events = []
    for (const m of sim.advanceTo(endS + 600)) {
      if (m.kind !== 'up') continue
      for (const reading of decodeSenml(m.payload, { receivedAt: m.sendAtS }).readings) {
        if (reading.time > endS) continue
        if (reading.name === 'power')
          powerByTime.set(reading.time, (powerByTime.get(reading.time) ?? 0) + reading.value)
        detection.observe(plant.device(m.deviceId)!, reading)
      }
    }
    for (const site of plant.sites.keys()) detection.advance(site, endS + 3600)
    for (const e of detection.takeAlertEvents()) events.push(e.event)
    truth = sim.truth.idleEpisodes().filter((e) => e.scope === OVEN)
    rule = sim.truth.idleRules().find((r) => r.scope === OVEN)!
  }, 60_000)

  it('the oven really has a powered level below the truth offBelowW besides off (the fault level)', () => {
    expect(rule.source).toBe('simulator')
    const powers = [...powerByTime.values()]
    const ratedW = node.spec.ratedPowerW
    const controlsOnly = powers.filter((p) => p < 0.005 * ratedW).length
    const fault = powers.filter((p) => p >= 0.01 * ratedW && p < rule.offBelowW).length
    const idle = powers.filter((p) => p >= rule.offBelowW && p < rule.runAboveW).length
    expect(controlsOnly).toBeGreaterThan(60)
    expect(fault).toBeGreaterThan(10)
    expect(idle).toBeGreaterThan(10)
  })

  it('learns an idle band holding the standby level, and finds every idle episode after learning', () => {
    const th = detection.thresholds(OVEN)!
    expect(th.origin).toBe('learned')
    const judged = truth.filter((e) => e.startS >= START + detection.options.learnMinSpanS)
    expect(judged.length).toBeGreaterThanOrEqual(3)
    const result = match(judged, detectedEpisodes(events), START + HOURS * 3600)
    expect(result.missed.map((e) => `+${Math.round(e.startS - START)} s`)).toEqual([])
    expect(result.extra).toEqual([])
    // The standby level (readings inside the truth's episodes) lies inside the learned band.
    const standby = [...powerByTime]
      .filter(([t]) => truth.some((e) => t >= e.startS && t < (e.endS ?? Number.POSITIVE_INFINITY)))
      .map(([, p]) => p)
      .sort((a, b) => a - b)
    expect(standby.length).toBeGreaterThan(10)
    const median = standby[Math.floor(standby.length / 2)]!
    expect(th.offBelowW!).toBeLessThan(median)
    expect(th.runAboveW!).toBeGreaterThan(median)
  })
})
