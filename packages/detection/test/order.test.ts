// The final alerts depend only on the set of readings (within the lateness bound), not on arrival
// order; a checkpoint restored mid-stream continues exactly; no wall clock, no randomness.

import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Reading } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { describe, expect, it } from 'vitest'
import { Detection } from '../src/index.ts'
import { harness, output, power, smallPlant, T0 } from './helpers.ts'

/** Two hours of press, oven and mixer readings in time order, with idle stretches. */
function script(): [string, Reading][] {
  const out: [string, Reading][] = []
  let count = 0
  for (let t = T0; t < T0 + 7200; t += 10) {
    const m = Math.floor((t - T0) / 60)
    const producing = m % 40 < 25
    out.push(['press-p', power(t, producing ? 30_000 : m % 40 < 37 ? 12_000 : 200)])
    if (producing) count++
    out.push(['press-o', output(t, count)])
    out.push(['oven-p', power(t, m % 30 < 18 ? 80_000 : 25_000)])
    out.push(['mixer-p', power(t, m % 20 < 10 ? 50_000 : 400)])
  }
  return out
}

/** A deterministic shuffle within a window of 50 s of reading time (inside latenessS = 60). */
function shuffled(items: [string, Reading][]): [string, Reading][] {
  let seed = 12345
  const next = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    return seed / 2 ** 32
  }
  return items
    .map((item) => ({ item, key: item[1].time + next() * 50 }))
    .sort((a, b) => a.key - b.key)
    .map((x) => x.item)
}

const run = (items: [string, Reading][]) => {
  const h = harness()
  for (const [device, reading] of items) h.feed(device, reading)
  h.clock(T0 + 9000)
  return h
}

const key = (a: { id: string; state: string; at: number; since: number; data: unknown }) =>
  JSON.stringify([a.id, a.state, a.at, a.since, a.data])

describe('arrival order', () => {
  it('out-of-order arrival (within latenessS) gives the same alerts', () => {
    const inOrder = run(script())
    const outOfOrder = run(shuffled(script()))
    expect(inOrder.events.filter((a) => a.kind === 'idle').length).toBeGreaterThan(6)
    expect(outOfOrder.detection.behindWatermark).toBe(0)
    expect(outOfOrder.events.map(key).sort()).toEqual(inOrder.events.map(key).sort())
  })

  it('duplicates count once', () => {
    const items = script()
    const doubled = items.flatMap((x, i) => (i % 7 === 0 ? [x, x] : [x]))
    expect(run(doubled).events.map(key)).toEqual(run(items).events.map(key))
  })

  it('a checkpoint restored mid-stream gives the same alerts, seq and state as an uninterrupted run', () => {
    const items = shuffled(script())
    const reference = run(items)
    const plant = new PlantIndex(smallPlant())
    const ports = { energyBetween: () => ({ wh: 1, co2G: 2 }), onIdleSpan: () => {} }
    const refPorts = new Detection(plant, ports)
    for (const [d, r] of items) refPorts.observe(plant.device(d)!, r)
    refPorts.advance('s', T0 + 9000)
    for (const cut of [1000, 2345, 2000 + Math.floor(items.length / 2)]) {
      let detection = new Detection(plant, ports)
      items.forEach(([d, r], i) => {
        if (i === cut) detection = Detection.restore(plant, ports, JSON.parse(JSON.stringify(detection.checkpoint())))
        detection.observe(plant.device(d)!, r)
      })
      detection.advance('s', T0 + 9000)
      expect(detection.alertsSince(0)).toEqual(refPorts.alertsSince(0))
      expect(detection.checkpoint()).toEqual(refPorts.checkpoint())
      expect(detection.idleNow('s')).toEqual(refPorts.idleNow('s'))
    }
    expect(reference.events.length).toBe(refPorts.alertsSince(0).events.length)
  })
})

describe('determinism', () => {
  it('the package reads no clock and draws no random numbers', () => {
    const dir = join(import.meta.dirname, '..', 'src')
    for (const file of readdirSync(dir)) {
      const text = readFileSync(join(dir, file), 'utf8')
      expect(text, file).not.toMatch(/Math\.random|Date\.now|new Date\(|performance\.now|process\.hrtime/)
    }
  })
})
