// CONTRACT.md §5's optional bucket fields that accounting computes: pvWh (the scope's energy × the
// minute's PV share), idleCo2G (idle energy × the minute's location factor) and outputUnits (the
// increments of equipment `output` counters, spread over minutes like the energy counter, summed
// up the tree, present only where output is reported). Expected values are computed here from the
// readings sent, by the rules of §7, not read back from the engine.

import type { Reading } from '@plantwatt/contract'
import { describe, expect, it } from 'vitest'
import { Accounting, type BucketEvent } from '../src/index.ts'
import { CARBON, E1, E2, energy, engineOf, L1, plantOf, utc } from './helpers.ts'

const T = utc(2025, 3, 3, 10, 0)

function output(time: number, value: number): Reading {
  return { name: 'output', time, value, field: 's', unit: 'count' }
}

const byKey = (events: BucketEvent[]) => new Map(events.map((e) => [`${e.scope} ${e.step} ${e.t}`, e]))

describe('optional bucket figures (§5)', () => {
  it('pvWh and idleCo2G follow the minute factors of §7', () => {
    const { engine, send } = engineOf(plantOf({ pv: true }))
    // e1 draws 60 kW (1,000 Wh a minute) over two minutes; PV generates 30 kW in minute 0 and
    // 90 kW in minute 1 (more than consumption: share 1).
    send('d1', energy(T, 0))
    send('d1', energy(T + 120, 2000))
    send('pv1', energy(T, 0))
    send('pv1', energy(T + 60, 500))
    send('pv1', energy(T + 120, 2000))
    // Idle from T+30 to T+90: 1,000 Wh, 500 in each minute.
    engine.setIdleSpan(E1, T + 30, T + 90)
    send('d1', energy(T + 400, 2000 + (280 * 1000) / 60))
    const events = byKey(engine.takeBucketEvents())
    const m0 = events.get(`${E1} 1m ${T * 1000}`)!
    const m1 = events.get(`${E1} 1m ${(T + 60) * 1000}`)!
    // Minute 0: E = 1000, G = 500 → pvShare 0.5, import 500 → location factor 0.5 × 500 g/kWh.
    expect(m0.pvWh).toBeCloseTo(500, 9)
    expect(m0.idleWh).toBeCloseTo(500, 9)
    expect(m0.idleCo2G).toBeCloseTo((500 * 0.5 * (CARBON.gridGPerKWh as number)) / 1000, 9)
    // Minute 1: G = 1500 ≥ E → pvShare 1, no import, no CO2.
    expect(m1.pvWh).toBeCloseTo(1000, 9)
    expect(m1.idleWh).toBeCloseTo(500, 9)
    expect(m1.idleCo2G).toBe(0)
    // A line sums its equipment; a scope without output carries no outputUnits.
    const line = events.get(`${L1} 1m ${T * 1000}`)!
    expect(line.pvWh).toBeCloseTo(500, 9)
    expect(line.outputUnits).toBeUndefined()
  })

  it('outputUnits: counter increments spread over minutes, resets, summed up the tree, only where counted', () => {
    const { engine, send } = engineOf(plantOf())
    // e1 counts 0 → 30 over [T+30, T+90] (15 units in each minute), then resets: 30 → 6 over
    // [T+90, T+150] counts 6 (3 + 3). A late reading at T+60 (value 10) re-splits the first interval.
    send('d1', output(T + 30, 0))
    send('d1', output(T + 90, 30))
    send('d1', output(T + 150, 6))
    send('d1', output(T + 60, 10))
    // e2 reports energy only: it is not counted.
    send('d2', energy(T, 0))
    send('d2', energy(T + 400, 100))
    send('d1', output(T + 400, 6))
    const events = byKey(engine.takeBucketEvents())
    const units = (scope: string, minute: number) => events.get(`${scope} 1m ${(T + minute * 60) * 1000}`)?.outputUnits
    expect(units(E1, 0)).toBeCloseTo(10, 9)
    expect(units(E1, 1)).toBeCloseTo(20 + 3, 9)
    expect(units(E1, 2)).toBeCloseTo(3, 9)
    // A minute without units carries none (present where units were counted, in any arrival order).
    expect(units(E1, 3)).toBeUndefined()
    expect(units(L1, 1)).toBeCloseTo(23, 9)
    expect(units('s/a', 1)).toBeCloseTo(23, 9)
    expect(units('s', 1)).toBeCloseTo(23, 9)
    expect(units(E2, 1)).toBeUndefined()
    expect(units('s/a/l2', 1)).toBeUndefined()
    // GET /api/v1/energy's rows (held minutes) carry it too.
    expect(engine.history(L1, '1m', T * 1000, (T + 180) * 1000).map((r) => r.outputUnits)).toEqual([
      expect.closeTo(10, 9),
      expect.closeTo(23, 9),
      expect.closeTo(3, 9),
    ])
    expect(engine.history(E2, '1m', T * 1000, (T + 60) * 1000)[0]!.outputUnits).toBeUndefined()
  })

  it('outputUnits survive a checkpoint and restore, and a late reading after it revises exactly', () => {
    const plant = plantOf()
    const { engine, send } = engineOf(plant)
    send('d1', output(T, 0))
    send('d1', output(T + 120, 120))
    const restored = Accounting.restore(plant, engine.checkpoint())
    const again = (id: string, r: Reading) => restored.accept(plant.device(id)!, r)
    again('d1', output(T + 60, 90))
    send('d1', output(T + 60, 90))
    const rows = (e: Accounting) => e.history(E1, '1m', T * 1000, (T + 120) * 1000).map((r) => r.outputUnits)
    expect(rows(restored)).toEqual([90, 30])
    expect(rows(restored)).toEqual(rows(engine))
    // A repeat is a duplicate, not a second count.
    expect(again('d1', output(T + 60, 90))).toBe('duplicate')
  })
})
