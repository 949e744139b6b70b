// The uplink of each simulated device in `pnpm bench:up-load`, loaded by the fleet's generator
// workers (runFleetProcesses `payloadModule`). The plant file is named by PLANTWATT_LOAD_PLANT
// (the workers inherit the environment of the bench).
//
// One SenML JSON pack per publish, the usual records of CONTRACT.md §2: power, the energy and
// output counters, one process variable. Each device draws a constant share of its equipment's
// rated power, and its counters are functions of the publish time, so they never go backwards,
// whatever the interval, and the energy between two packs always matches the power reported:
// nothing the processor rightly rejects (out_of_range, a counter reset) is sent.

import { readFileSync } from 'node:fs'
import { encodeSenmlJson, type PlantModel } from '@plantwatt/contract'
import type { FleetDevice, PayloadFactory } from '@plantwatt/fleet'

/** Counters start here, so that their values stay small and realistic. */
const COUNTERS_FROM_S = Date.UTC(2026, 0, 1) / 1000

/** A small stable number per device, so devices differ without random state. */
function salt(id: string): number {
  let hash = 2166136261
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 16777619)
  return hash >>> 0
}

/** Watts each device draws: 20–80 % of its equipment's rating shared by its devices; meters below. */
export function devicePowers(plant: PlantModel): Map<string, number> {
  const powers = new Map<string, number>()
  for (const site of plant.sites) {
    for (const id of site.meters?.pv ?? []) powers.set(id, 50_000 + (salt(id) % 100_000))
    for (const id of site.meters?.grid ?? []) powers.set(id, 500_000 + (salt(id) % 500_000))
    for (const area of site.areas) {
      for (const line of area.lines) {
        for (const equipment of line.equipment) {
          for (const id of equipment.devices) {
            const share = 0.2 + ((salt(id) % 1000) / 1000) * 0.6
            powers.set(id, Math.round((equipment.ratedPowerW * share) / equipment.devices.length))
          }
        }
      }
    }
  }
  return powers
}

/** Records in each pack (the bench counts readings as packs × this). */
export const READINGS_PER_PACK = 4

export function loadPack(device: FleetDevice, powerW: number, nowMs: number): Buffer {
  const t = nowMs / 1000
  const since = t - COUNTERS_FROM_S
  return encodeSenmlJson([
    { bn: `urn:dev:imei:${device.id}:`, bt: t, n: 'power', u: 'W', v: powerW + (salt(device.id) % 7) },
    { n: 'energy', u: 'Wh', s: Math.floor((since * powerW) / 360) / 10 },
    { n: 'output', u: 'count', s: Math.floor(since / 20) },
    { n: 'temperature', u: 'Cel', v: 40 + (Math.floor(since) % 200) / 10 },
  ])
}

const plantFile = process.env.PLANTWATT_LOAD_PLANT
const powers = plantFile ? devicePowers(JSON.parse(readFileSync(plantFile, 'utf8')) as PlantModel) : new Map()

export const payload: PayloadFactory = (device, _seq, nowMs) => loadPack(device, powers.get(device.id) ?? 1000, nowMs)
