// What the devices published, decoded the way the processor would (CONTRACT.md §2): SenML JSON,
// readings identified by (device, measurement, time), repeats counted once.

import { decodeSenml, type Equipment, type PlantModel } from '@plantwatt/contract'
import type { OutgoingMessage } from '../../../src/model/index.ts'

export interface Series {
  t: number[]
  v: number[]
}

/** device → measurement → readings sorted by time, duplicates removed (they must agree). */
export type Published = Map<string, Map<string, Series>>

export function decodeAll(messages: OutgoingMessage[]): Published {
  const raw = new Map<string, Map<string, Map<number, number>>>()
  for (const m of messages) {
    if (m.kind !== 'up') continue
    const { readings, rejections } = decodeSenml(m.payload, { receivedAt: m.sendAtS })
    if (rejections.length > 0) throw new Error(`rejected: ${JSON.stringify(rejections)}`)
    let byName = raw.get(m.deviceId)
    if (!byName) {
      byName = new Map()
      raw.set(m.deviceId, byName)
    }
    for (const r of readings) {
      let byTime = byName.get(r.name)
      if (!byTime) {
        byTime = new Map()
        byName.set(r.name, byTime)
      }
      const seen = byTime.get(r.time)
      if (seen !== undefined && seen !== r.value) {
        throw new Error(`${m.deviceId} ${r.name} at ${r.time}: two values ${seen} and ${r.value}`)
      }
      byTime.set(r.time, r.value)
    }
  }
  const out: Published = new Map()
  for (const [device, byName] of raw) {
    const names = new Map<string, Series>()
    for (const [name, byTime] of byName) {
      const times = [...byTime.keys()].sort((a, b) => a - b)
      names.set(name, { t: times, v: times.map((t) => byTime.get(t)!) })
    }
    out.set(device, names)
  }
  return out
}

/** Readings up to tMax (inclusive). */
export function until(series: Series, tMax: number): Series {
  let n = 0
  while (n < series.t.length && series.t[n]! <= tMax) n++
  return { t: series.t.slice(0, n), v: series.v.slice(0, n) }
}

/** Counter increments by CONTRACT.md §7: a decrease is a reset and counts the new value. */
export function increments(series: Series): number[] {
  const out: number[] = [0]
  for (let i = 1; i < series.v.length; i++) {
    const d = series.v[i]! - series.v[i - 1]!
    out.push(d < 0 ? series.v[i]! : d)
  }
  return out
}

export function sum(xs: number[]): number {
  let s = 0
  for (const x of xs) s += x
  return s
}

export function equipmentList(plant: PlantModel): { scope: string; spec: Equipment }[] {
  const out: { scope: string; spec: Equipment }[] = []
  for (const site of plant.sites) {
    for (const area of site.areas) {
      for (const line of area.lines) {
        for (const spec of line.equipment) out.push({ scope: `${site.id}/${area.id}/${line.id}/${spec.id}`, spec })
      }
    }
  }
  return out
}

/** Epoch seconds of a UTC date. */
export function utc(year: number, month: number, day: number, hour = 0, minute = 0): number {
  return Date.UTC(year, month - 1, day, hour, minute) / 1000
}

/** Runs a simulation in steps of `stepS` from its start to `toS`, collecting every message. */
export function collect(sim: { advanceTo(t: number): OutgoingMessage[] }, fromS: number, toS: number, stepS = 60) {
  const out: OutgoingMessage[] = []
  for (let t = fromS; t < toS; t = Math.min(toS, t + stepS)) out.push(...sim.advanceTo(Math.min(toS, t + stepS)))
  return out
}
