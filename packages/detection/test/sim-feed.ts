// Drives a seeded PlantSimulation with NB-IoT faults and decodes what the devices published, the way
// the processor would (CONTRACT.md §2), keeping arrival order (the simulator's send order).

import { decodeSenml, type PlantModel, type Reading } from '@plantwatt/contract'
import {
  generatePlant,
  type IdleEpisode,
  type IdleRuleInfo,
  type OutgoingMessage,
  PlantSimulation,
} from '@plantwatt/fleet'

export interface Arrival {
  deviceId: string
  /** Simulated arrival time (s). */
  arriveS: number
  reading: Reading
}

export interface SimRun {
  plant: PlantModel
  startS: number
  endS: number
  reportIntervalS: number
  arrivals: Arrival[]
  episodes: IdleEpisode[]
  rules: IdleRuleInfo[]
}

export function runSimulation(o: {
  devices: number
  hours: number
  startS: number
  reportIntervalS: number
  latenessS: number
}): SimRun {
  const plant = generatePlant({ devices: o.devices, seed: 3 })
  for (const site of plant.sites) site.latenessS = o.latenessS
  const sim = new PlantSimulation({
    plant,
    seed: 11,
    startS: o.startS,
    reportIntervalS: o.reportIntervalS,
    faults: {
      psm: { share: 0.3, batchIntervalS: 120 },
      latency: { meanMs: 400, jitterMs: 300 },
      loss: { probability: 0.02, retransmitAfterS: 20 },
      reorder: { probability: 0.02 },
      counterResets: { perDevicePerDay: 24 },
    },
  })
  const endS = o.startS + o.hours * 3600
  const messages: OutgoingMessage[] = []
  for (let t = o.startS; t < endS; t = Math.min(endS, t + 300)) messages.push(...sim.advanceTo(Math.min(endS, t + 300)))
  // The truth as it stands at the end, before draining late messages.
  const episodes = sim.truth.idleEpisodes()
  const rules = sim.truth.idleRules()
  messages.push(...sim.advanceTo(endS + 600))
  const arrivals: Arrival[] = []
  for (const m of messages) {
    if (m.kind !== 'up') continue
    const { readings } = decodeSenml(m.payload, { receivedAt: m.sendAtS })
    for (const reading of readings) {
      if (reading.time <= endS) arrivals.push({ deviceId: m.deviceId, arriveS: m.sendAtS, reading })
    }
  }
  return { plant, startS: o.startS, endS, reportIntervalS: o.reportIntervalS, arrivals, episodes, rules }
}

/** A different interleaving across devices: each device delayed by its own constant (0–60 s), so
 * each device's own order is kept. */
export function reinterleave(arrivals: Arrival[]): Arrival[] {
  const delay = new Map<string, number>()
  const delayOf = (id: string) => {
    let d = delay.get(id)
    if (d === undefined) {
      let h = 2166136261
      for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619) >>> 0
      d = (h % 6001) / 100
      delay.set(id, d)
    }
    return d
  }
  return arrivals
    .map((a, i) => ({ a, key: a.arriveS + delayOf(a.deviceId), i }))
    .sort((x, y) => x.key - y.key || x.i - y.i)
    .map((x) => x.a)
}

/** The largest (site clock − reading time) at arrival: how late readings came, against latenessS. */
export function maxLatenessS(arrivals: Arrival[]): number {
  let clock = Number.NEGATIVE_INFINITY
  let worst = 0
  for (const a of arrivals) {
    clock = Math.max(clock, a.reading.time)
    worst = Math.max(worst, clock - a.reading.time)
  }
  return worst
}
