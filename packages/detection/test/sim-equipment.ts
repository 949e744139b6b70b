// One equipment of the replay-day benchmark's plant (services/processor/bench/replay-day.ts: 2,000
// devices unless told, seed 1, from midnight in Yibin, one reading a minute), simulated alone and fed to a
// Detection: a restricted simulation gives its devices the same bytes as a whole-plant run
// (simulators/fleet/src/model/simulation.ts, emitDevices), so a whole-day case costs well under a second.

import type { Alert } from '@plantwatt/contract'
import { decodeSenml } from '@plantwatt/contract'
import { generatePlant, type IdleEpisode, type IdleRuleInfo, PlantSimulation } from '@plantwatt/fleet'
import { type EquipmentNode, isEquipment, PlantIndex } from '@plantwatt/plant'
import { Detection } from '../src/index.ts'

export const DAY_START = Date.UTC(2025, 2, 3, 16, 0) / 1000
const HOURS = 24
const INTERVAL_S = 60

export interface EquipmentDay {
  node: EquipmentNode
  detection: Detection
  events: Alert[]
  /** The truth's idle episodes of this equipment, and its rule (thresholds the truth used). */
  truth: IdleEpisode[]
  rule: IdleRuleInfo
  /** Sum of the devices' power readings per reading time (W). */
  powerByTime: Map<number, number>
  endS: number
}

export function simulateEquipmentDay(scope: string, devices = 2000): EquipmentDay {
  const plantModel = generatePlant({ devices, seed: 1 })
  const plant = new PlantIndex(plantModel)
  const node = plant.scope(scope)
  if (node === undefined || !isEquipment(node)) throw new Error(`${scope} is not an equipment of the generated plant`)
  const sim = new PlantSimulation({
    plant: plantModel,
    seed: 1,
    startS: DAY_START,
    reportIntervalS: INTERVAL_S,
    emitDevices: new Set(node.spec.devices),
  })
  const endS = DAY_START + HOURS * 3600
  const detection = new Detection(plant, { energyBetween: () => ({ wh: 0, co2G: 0 }), onIdleSpan: () => {} })
  const powerByTime = new Map<number, number>()
  for (const m of sim.advanceTo(endS + 600)) {
    if (m.kind !== 'up') continue
    for (const reading of decodeSenml(m.payload, { receivedAt: m.sendAtS }).readings) {
      if (reading.time > endS) continue
      if (reading.name === 'power') powerByTime.set(reading.time, (powerByTime.get(reading.time) ?? 0) + reading.value)
      detection.observe(plant.device(m.deviceId)!, reading)
    }
  }
  for (const site of plant.sites.keys()) detection.advance(site, endS + 3600)
  const events = detection.takeAlertEvents().map((e) => e.event)
  return {
    node,
    detection,
    events,
    truth: sim.truth.idleEpisodes().filter((e) => e.scope === scope),
    rule: sim.truth.idleRules().find((r) => r.scope === scope)!,
    powerByTime,
    endS,
  }
}
