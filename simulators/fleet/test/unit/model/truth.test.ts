// The ground truth against what the devices published: energy from the published counters equals
// the truth, idle episodes found in the published data by CONTRACT.md §7 are exactly the truth's,
// with power-saving mode, loss, reordering, latency and counter resets all on.

import type { PlantModel } from '@plantwatt/contract'
import { beforeAll, describe, expect, it } from 'vitest'
import { IdleDetector, type IdleEpisode, type OutgoingMessage, PlantSimulation } from '../../../src/model/index.ts'
import { deviceRolesOf, generatePlant } from '../../../src/plant-generator.ts'
import {
  collect,
  decodeAll,
  equipmentList,
  increments,
  type Published,
  type Series,
  sum,
  until,
  utc,
} from './published.ts'

// Monday 21:00 in Yibin (UTC+8): a shift end at 22:00, handovers, people leaving machines on.
const START = utc(2025, 3, 3, 13, 0)
const HOURS = 3
const END = START + HOURS * 3600
const BATCH_S = 120

describe('ground truth against the published readings (faults on)', () => {
  let plant: PlantModel
  let sim: PlantSimulation
  let published: Published
  let totals: Map<string, number>
  let minutes: Map<string, { startMs: number; wh: Float64Array }>
  let episodes: IdleEpisode[]
  let messages: OutgoingMessage[]

  beforeAll(() => {
    plant = generatePlant({ devices: 60, seed: 3 })
    sim = new PlantSimulation({
      plant,
      seed: 11,
      startS: START,
      faults: {
        psm: { share: 0.3, batchIntervalS: BATCH_S },
        latency: { meanMs: 400, jitterMs: 300 },
        loss: { probability: 0.02, retransmitAfterS: 20 },
        reorder: { probability: 0.02 },
        counterResets: { perDevicePerDay: 24 },
      },
    })
    messages = collect(sim, START, END)
    // The truth as it stands at END, the latest sample of every line being at or before END.
    totals = new Map(sim.truth.equipmentScopes().map((scope) => [scope, sim.truth.energyTotalWh(scope)]))
    minutes = new Map(sim.truth.equipmentScopes().map((scope) => [scope, sim.truth.energyByMinute(scope)]))
    episodes = sim.truth.idleEpisodes()
    // Let buffered batches, held and retransmitted messages arrive; keep only readings up to END.
    messages.push(...collect(sim, END, END + 3 * BATCH_S + 60))
    published = decodeAll(messages)
  }, 120_000)

  it('has the faults it was asked for', () => {
    expect(sim.truth.counterResets().length).toBeGreaterThan(20)
    const seen = new Set<string>()
    let duplicates = 0
    for (const m of messages) {
      const key = `${m.deviceId}|${m.payload.toString('latin1')}`
      if (seen.has(key)) duplicates++
      seen.add(key)
    }
    expect(duplicates).toBeGreaterThan(0)
    // Batches: some messages carry many samples.
    expect(messages.some((m) => m.payload.length > 2000)).toBe(true)
  })

  it('energy from the published counters equals the truth per equipment within 0.01 %', () => {
    let checked = 0
    for (const { scope, spec } of equipmentList(plant)) {
      const counter = until(published.get(spec.devices[0]!)!.get('energy')!, END)
      const fromCounters = sum(increments(counter))
      const truth = totals.get(scope)!
      expect(truth).toBeGreaterThan(0)
      expect(Math.abs(fromCounters - truth), scope).toBeLessThanOrEqual(truth * 1e-4)
      // Rounding only: 0.01 Wh at either end of each reset-free stretch.
      expect(Math.abs(fromCounters - truth), scope).toBeLessThan(0.02 * (counter.t.length / 100 + 2))
      checked++
    }
    expect(checked).toBe(equipmentList(plant).length)
  })

  it('energy per minute from the counters (spread evenly between readings) equals the truth', () => {
    for (const { scope, spec } of equipmentList(plant)) {
      const counter = until(published.get(spec.devices[0]!)!.get('energy')!, END)
      const inc = increments(counter)
      const truth = minutes.get(scope)!
      const fromCounters = new Float64Array(truth.wh.length)
      for (let i = 1; i < counter.t.length; i++) {
        // Spread over (t[i-1], t[i]] in proportion to time, as CONTRACT.md §7 does.
        const a = counter.t[i - 1]! * 1000
        const b = counter.t[i]! * 1000
        let x = a
        while (x < b) {
          const bucket = Math.floor(x / 60_000)
          const end = Math.min(b, (bucket + 1) * 60_000)
          fromCounters[bucket - truth.startMs / 60_000]! += (inc[i]! * (end - x)) / (b - a)
          x = end
        }
      }
      for (let m = 0; m < truth.wh.length; m++) {
        expect(Math.abs(fromCounters[m]! - truth.wh[m]!), `${scope} minute ${m}`).toBeLessThan(0.03)
      }
    }
  })

  it('finds exactly the truth idle episodes in the published power and output (CONTRACT.md §7)', () => {
    const rules = new Map(sim.truth.idleRules().map((rule) => [rule.scope, rule]))
    const found: IdleEpisode[] = []
    for (const { scope, spec } of equipmentList(plant)) {
      const rule = rules.get(scope)
      if (!rule) continue
      const roles = deviceRolesOf(spec)
      const power = until(published.get(roles.power)!.get('power')!, END)
      const energy = until(published.get(roles.power)!.get('energy')!, END)
      const output: Series | undefined = roles.output
        ? until(published.get(roles.output)!.get('output')!, END)
        : undefined
      expect(rule.output).toBe(output !== undefined)
      const cumulative: number[] = []
      let e = 0
      for (const d of increments(energy)) {
        e += d
        cumulative.push(e)
      }
      const outputAt = new Map<number, number>()
      if (output) for (let i = 0; i < output.t.length; i++) outputAt.set(output.t[i]!, output.v[i]!)
      const detector = new IdleDetector(rule)
      let previous: number | undefined
      let misaligned = 0
      for (let i = 0; i < power.t.length; i++) {
        const t = power.t[i]!
        if (energy.t[i] !== t) misaligned++
        let increased = false
        if (output) {
          const o = outputAt.get(t)
          if (o === undefined) misaligned++
          else {
            if (previous !== undefined) increased = o < previous ? o > 0 : o > previous
            previous = o
          }
        }
        detector.push(t * 1000, power.v[i]!, increased, cumulative[i]!)
      }
      expect(misaligned, `${scope}: power, energy and output readings at the same instants`).toBe(0)
      found.push(...detector.episodes(scope))
    }
    const truth = episodes
    expect(truth.length).toBeGreaterThan(5)
    const key = (ep: IdleEpisode) => `${ep.scope}@${ep.startS}-${ep.endS}`
    expect(found.map(key).sort()).toEqual(truth.map(key).sort())
    const wasted = new Map(truth.map((ep) => [key(ep), ep.wastedWh]))
    for (const ep of found) expect(Math.abs(ep.wastedWh - wasted.get(key(ep))!)).toBeLessThan(0.03)
  })

  it('truth survives its JSON form', async () => {
    const { truthFromJson } = await import('../../../src/model/index.ts')
    const json = JSON.parse(JSON.stringify(sim.truth))
    const back = truthFromJson(json)
    const scope = sim.truth.equipmentScopes()[0]!
    expect(back.energyByMinute(scope).wh.length).toBe(sim.truth.energyByMinute(scope).wh.length)
    expect(back.idleEpisodes().length).toBe(sim.truth.idleEpisodes().length)
    expect(back.counterResets()).toEqual(sim.truth.counterResets())
  })
})
