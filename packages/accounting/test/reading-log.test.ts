// The retained readings as a log (issue 13): each snapshot hands out only what was inserted since
// the previous one, the chunks held are pruned from the oldest, and a restore from the state and
// the chunks held gives back every series exactly (times, values, evicted, first and last ever),
// whatever arrived late, repeated, was evicted by time or by count, or was forgotten and seen again.

import type { Reading } from '@plantwatt/contract'
import { describe, expect, it } from 'vitest'
import { Accounting, type AccountingSnapshot } from '../src/index.ts'
import { energy, plantOf, power } from './helpers.ts'

/** A small deterministic PRNG (mulberry32): the same readings on every run. */
function rng(seed: number) {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const temperature = (time: number, value: number): Reading => ({
  name: 'temperature',
  time,
  value,
  field: 'v',
  unit: 'Cel',
})

/** Every series of an engine by `device name`, as plain numbers. */
function seriesOf(engine: Accounting) {
  const p = engine.packSeries()
  const out = new Map<string, { t: number[]; v: number[] | undefined; flags: number; ever: number[] }>()
  let at = 0
  for (let k = 0; k < p.device.length; k++) {
    const n = p.len[k]!
    const t = [...p.data.subarray(at, at + n)]
    at += n
    let v: number[] | undefined
    if ((p.flags[k]! & 1) === 1) {
      v = [...p.data.subarray(at, at + n)]
      at += n
    }
    out.set(`${p.device[k]} ${p.name[k]}`, { t, v, flags: p.flags[k]!, ever: [p.ever[2 * k]!, p.ever[2 * k + 1]!] })
  }
  return out
}

/** The state store's part for the reading log: chunks (in parts) by generation, pruned as each snapshot says. */
class ChunkStore {
  readonly chunks = new Map<number, Uint8Array[]>()
  apply(snapshot: Pick<AccountingSnapshot, 'readings'>): void {
    for (const gen of [...this.chunks.keys()]) if (gen < snapshot.readings.pruneBelow) this.chunks.delete(gen)
    this.chunks.set(
      snapshot.readings.gen,
      snapshot.readings.parts.map((part) => part.slice()),
    )
  }
  restore(
    plant: ReturnType<typeof plantOf>,
    snapshot: Pick<AccountingSnapshot, 'state'>,
    options: { maxRetained: number },
  ) {
    const held = [...this.chunks.entries()]
      .sort((a, b) => a[0] - b[0])
      .flatMap(([gen, parts]) => parts.map((part): [number, Uint8Array] => [gen, part]))
    return Accounting.restoreFrom(
      plant,
      structuredClone(snapshot.state),
      () => undefined,
      options,
      () => held,
    )
  }
}

describe('retained readings as a log', () => {
  const options = { maxRetained: 24 }

  it('restores every series exactly after many snapshots, with late, repeated, evicted and forgotten readings', () => {
    const plant = plantOf({ pv: true, grid: true })
    const random = rng(7)
    let engine = new Accounting(plant, options)
    const store = new ChunkStore()
    const t0 = 1_700_000_000
    let now = t0
    const send = (id: string, r: Reading) => engine.accept(plant.device(id)!, r)
    let restores = 0
    for (let checkpoint = 0; checkpoint < 60; checkpoint++) {
      for (let i = 0; i < 40; i++) {
        now += 1 + Math.floor(random() * 2)
        // d3 goes quiet after checkpoint 10: its readings must survive the pruning of old chunks.
        const devices =
          checkpoint < 10 ? ['d1', 'd1b', 'd2', 'd3', 'pv1', 'grid1'] : ['d1', 'd1b', 'd2', 'pv1', 'grid1']
        const id = devices[Math.floor(random() * devices.length)]!
        // Mostly now; some late (up to 300 s), some a repeat of a late time.
        const late = random() < 0.15 ? Math.floor(random() * 300) : 0
        const t = now - late
        const pick = random()
        if (pick < 0.45) send(id, power(t, Math.round(random() * 40_000)))
        else if (pick < 0.85) send(id, energy(t, (t - t0) * 0.01))
        else send(id, temperature(t, Math.round(random() * 100)))
      }
      // A measurement forgotten and seen again (a new series under the same key).
      if (checkpoint % 13 === 6) engine.forgetMeasurement('d2', 'temperature')
      const snapshot = engine.snapshot()
      store.apply(snapshot)
      if (checkpoint % 5 === 4) {
        const restored = store.restore(plant, snapshot, options)
        expect(restored.restoreMismatches).toBe(0)
        expect(seriesOf(restored)).toEqual(seriesOf(engine))
        restores++
        // Carry on from the restored engine half the time: its log must go on where the state left it.
        if (checkpoint % 10 === 4) engine = restored
      }
    }
    expect(restores).toBe(12)
    // Pruned: about retention (360 s) over a checkpoint's span (~60 s), not all 60 chunks.
    expect(store.chunks.size).toBeLessThan(16)
    expect(seriesOf(engine).get('d3 power')!.t.length).toBeGreaterThan(0)
  })

  it('a chunk taken over several turns, with readings applied between them, restores the series as they were at the snapshot', () => {
    const plant = plantOf({ pv: true, grid: true })
    const random = rng(11)
    const engine = new Accounting(plant, options)
    const store = new ChunkStore()
    const t0 = 1_700_000_000
    let now = t0
    const devices = ['d1', 'd1b', 'd2', 'd3', 'pv1', 'grid1']
    const names = ['temperature', 'pressure', 'speed']
    /** One reading now or late (up to 300 s), of power, energy or a process variable. */
    const sendOne = () => {
      now += 1 + Math.floor(random() * 2)
      const id = devices[Math.floor(random() * devices.length)]!
      const t = now - (random() < 0.2 ? Math.floor(random() * 300) : 0)
      const pick = random()
      const device = plant.device(id)!
      if (pick < 0.35) engine.accept(device, power(t, Math.round(random() * 40_000)))
      else if (pick < 0.7) engine.accept(device, energy(t, (t - t0) * 0.01))
      else
        engine.accept(device, { ...temperature(t, Math.round(random() * 100)), name: names[Math.floor(random() * 3)]! })
    }
    let slicesTaken = 0
    for (let checkpoint = 0; checkpoint < 12; checkpoint++) {
      for (let i = 0; i < 60; i++) sendOne()
      const sliced = engine.snapshotSliced()
      const atSnapshot = seriesOf(engine)
      const { state } = sliced
      // One series per turn; between turns readings change series taken and not yet taken (late
      // inserts, evictions, new series) and a measurement is forgotten.
      let done = false
      while (!done) {
        let once = true
        done = sliced.readings.slice(() => {
          const more = once
          once = false
          return more
        })
        slicesTaken++
        for (let i = 0; i < 3; i++) sendOne()
        if (random() < 0.05) engine.forgetMeasurement('d2', names[Math.floor(random() * 3)]!)
      }
      const write = sliced.readings.write()
      expect(write.parts.length).toBeGreaterThan(1)
      store.apply({ readings: write })
      const restored = store.restore(plant, { state: { ...state, devices: sliced.readings.state } }, options)
      expect(restored.restoreMismatches).toBe(0)
      expect(seriesOf(restored)).toEqual(atSnapshot)
      // What arrived during the capture is in the next chunk: a restore then equals the engine now.
      const next = engine.snapshot()
      store.apply(next)
      const carried = store.restore(plant, next, options)
      expect(carried.restoreMismatches).toBe(0)
      expect(seriesOf(carried)).toEqual(seriesOf(engine))
    }
    expect(slicesTaken).toBeGreaterThan(12 * 4)
  })

  it('writes only what was inserted since the previous snapshot', () => {
    const plant = plantOf()
    const engine = new Accounting(plant, options)
    const send = (id: string, r: Reading) => engine.accept(plant.device(id)!, r)
    for (let t = 1000; t < 1100; t += 10) send('d1', power(t, 500))
    expect(engine.snapshot().readings.readings).toBe(10)
    send('d1', power(1100, 500))
    send('d1', power(1110, 500))
    const next = engine.snapshot().readings
    expect(next.readings).toBe(2)
    expect(next.whole).toBe(0)
    // A late reading logs itself and the ones after it in its series.
    send('d1', power(1095, 500))
    expect(engine.snapshot().readings.readings).toBe(3)
    // Nothing new: nothing logged.
    expect(engine.snapshot().readings.readings).toBe(0)
  })

  it('a full snapshot (after a failed write) logs every series whole and prunes every older chunk', () => {
    const plant = plantOf()
    const engine = new Accounting(plant, options)
    const store = new ChunkStore()
    const send = (id: string, r: Reading) => engine.accept(plant.device(id)!, r)
    for (let t = 1000; t < 1200; t += 10) send('d1', power(t, 500))
    store.apply(engine.snapshot())
    send('d1', power(1200, 700))
    engine.snapshot() // its write failed: this chunk never reached the store
    send('d2', power(1210, 300))
    const full = engine.snapshot(true)
    store.apply(full)
    expect(full.readings.pruneBelow).toBe(full.readings.gen)
    expect([...store.chunks.keys()]).toEqual([full.readings.gen])
    const restored = store.restore(plant, full, options)
    expect(restored.restoreMismatches).toBe(0)
    expect(seriesOf(restored)).toEqual(seriesOf(engine))
  })
})
