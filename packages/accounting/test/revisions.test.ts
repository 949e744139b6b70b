// Revisions that follow material change (CONTRACT.md §5 `buckets`, v1.1; issue 14): a bucket
// already sent is sent again only for the scopes whose figures moved by more than 0.1 Wh / 0.1 g
// (or 1e-6 of the figure, whichever is larger), at most once a second of the site clock per
// bucket; smaller changes ride on the next revision, or on a last one once the site clock has
// passed the bucket's end by 10 × latenessS. Real engine, real readings.

import { describe, expect, it } from 'vitest'
import { Accounting, type BucketEvent } from '../src/index.ts'
import { E1, E2, energy, engineOf, L1, plantOf, power, utc } from './helpers.ts'

const T = utc(2025, 3, 3, 10, 0)
const E3 = 's/a/l2/e3'
const L2 = 's/a/l2'
/** latenessS of the test plant is 120 s: the last revision comes 1,200 s after a bucket's end. */
const FINAL_AFTER_S = 1200

/** d1 (e1) reports its energy counter every minute from T to `toS`, 100 Wh a minute. */
function feedE1(send: (id: string, r: ReturnType<typeof energy>) => unknown, fromS: number, toS: number) {
  for (let t = fromS; t <= toS; t += 60) send('d1', energy(t, e1At(t)))
}

/** e1's counter at time t: 100 Wh a minute from T. */
const e1At = (t: number) => ((t - T) / 60) * 100

const minuteOf = (events: BucketEvent[], scope: string, t: number, step = '1m') =>
  events.filter((e) => e.scope === scope && e.step === step && e.t === t * 1000)

const exactOf = (engine: Accounting, scope: string, t: number, step: '1m' | '15m' | '1h' | '1d' = '1m') => {
  const row = engine.history(scope, step, t * 1000, t * 1000 + 1)[0]!
  return row
}

describe('revisions that follow material change (§5 buckets, v1.1)', () => {
  it('sends a sub-threshold late change nothing until the last revision, which carries it exactly', () => {
    const { engine, send } = engineOf(plantOf())
    feedE1(send, T, T + 600)
    engine.takeBucketEvents() // minute 0 closed and sent at revision 0
    // 0.05 Wh of e2 in minute 0: below 0.1 Wh in every figure of every scope.
    send('d2', energy(T, 0))
    send('d2', energy(T + 60, 0.05))
    expect(engine.takeBucketEvents().filter((e) => e.revision > 0)).toEqual([])
    const later: BucketEvent[] = []
    for (let t = T + 660; t < T + 60 + FINAL_AFTER_S; t += 60) {
      feedE1(send, t, t)
      later.push(...engine.takeBucketEvents())
    }
    expect(later.filter((e) => e.revision > 0)).toEqual([])
    feedE1(send, T + 60 + FINAL_AFTER_S, T + 60 + FINAL_AFTER_S)
    const last = engine.takeBucketEvents().filter((e) => e.revision > 0)
    // The last revision of minute 0: the scopes that changed, exactly as the history answers them.
    expect(
      last
        .filter((e) => e.t === T * 1000)
        .map((e) => `${e.step} ${e.scope}`)
        .sort(),
    ).toEqual(['1m s', '1m s/a', `1m ${L1}`, `1m ${E2}`].sort())
    for (const scope of [E2, L1, 's/a', 's']) {
      const [event] = minuteOf(last, scope, T)
      const { revision, scope: _s, step: _st, ...figures } = event!
      expect(revision).toBe(1)
      expect(figures).toEqual(exactOf(engine, scope, T))
    }
    expect(minuteOf(last, E2, T)[0]!.energyWh).toBeCloseTo(0.05, 12)
    // Nothing more to send for it afterwards.
    feedE1(send, T + 60 + FINAL_AFTER_S + 60, T + 60 + FINAL_AFTER_S + 120)
    expect(engine.takeBucketEvents().filter((e) => e.revision > 0)).toEqual([])
  })

  it('sends an over-threshold change at once, only for the scopes whose figures moved', () => {
    const { engine, send } = engineOf(plantOf())
    feedE1(send, T, T + 600)
    send('d3', energy(T, 0))
    send('d3', energy(T + 600, 600)) // e3 on the other line, 60 Wh a minute
    engine.takeBucketEvents()
    send('d2', energy(T, 0))
    send('d2', energy(T + 60, 5)) // 5 Wh late in minute 0 of e2
    const revised = engine.takeBucketEvents()
    expect(revised.map((e) => `${e.step} ${e.scope} ${(e.t / 1000 - T) / 60}`).sort()).toEqual(
      ['1m s 0', '1m s/a 0', `1m ${L1} 0`, `1m ${E2} 0`].sort(),
    )
    expect(revised.every((e) => e.revision === 1)).toBe(true)
    expect(minuteOf(revised, E2, T)[0]!.energyWh).toBe(5)
    expect(minuteOf(revised, L1, T)[0]!.energyWh).toBe(105)
    // e1 (same line, unchanged), e3 and its line: not sent.
    expect(revised.some((e) => [E1, E3, L2].includes(e.scope))).toBe(false)
  })

  it('sends a bucket at most once a second of the site clock: two changes within it give one revision', () => {
    const { engine, send } = engineOf(plantOf())
    feedE1(send, T, T + 600)
    engine.takeBucketEvents()
    send('d2', energy(T, 0))
    send('d2', energy(T + 30, 5))
    const first = minuteOf(engine.takeBucketEvents(), E2, T)
    expect(first.map((e) => [e.revision, e.energyWh])).toEqual([[1, 5]])
    // More of minute 0 within the same second of the site clock: held.
    send('d2', energy(T + 60, 10))
    expect(minuteOf(engine.takeBucketEvents(), E2, T)).toEqual([])
    send('d1', energy(T + 601, e1At(T + 601))) // the site clock moves one second
    const second = minuteOf(engine.takeBucketEvents(), E2, T)
    expect(second.map((e) => [e.revision, e.energyWh])).toEqual([[2, 10]])
    // Both changes between two takes: one revision.
    send('d2', energy(T + 90, 15))
    send('d2', energy(T + 120, 20))
    send('d1', energy(T + 660, e1At(T + 660)))
    const third = engine.takeBucketEvents().filter((e) => e.scope === E2 && e.revision > 0 && e.step === '1m')
    expect(third.map((e) => [(e.t / 1000 - T) / 60, e.revision, e.energyWh])).toEqual([[1, 1, 10]])
  })

  it('a PV reading moves every scope CO2: only those whose CO2 moved over the threshold are sent', () => {
    const { engine, send } = engineOf(plantOf({ pv: true }))
    feedE1(send, T, T + 600) // e1: 100 Wh a minute
    send('d2', energy(T, 0))
    send('d2', energy(T + 600, 3)) // e2: 0.3 Wh a minute
    send('pv1', energy(T, 0))
    send('pv1', energy(T + 600, 0))
    engine.takeBucketEvents()
    // A late PV reading: 20 Wh of PV in minute 0 of 100.3 Wh consumed, I falls by 20 Wh.
    send('pv1', energy(T + 60, 20))
    const revised = engine.takeBucketEvents().filter((e) => e.t === T * 1000)
    // e1's CO2 moves by 100 × 20/100.3 × 0.5 = 10 g: sent; e2's CO2 by 0.03 g, its market CO2 by
    // 0.033 g and its PV energy by 0.06 Wh: not; e3 had no energy.
    expect(revised.map((e) => `${e.step} ${e.scope}`).sort()).toEqual(['1m s', '1m s/a', `1m ${L1}`, `1m ${E1}`].sort())
    for (const event of revised) {
      const { revision: _r, scope, step: _st, ...figures } = event
      expect(figures).toEqual(exactOf(engine, scope, T))
    }
    // e2's small change rides on the last revision.
    const last: BucketEvent[] = []
    for (let t = T + 660; t <= T + 60 + FINAL_AFTER_S; t += 60) {
      feedE1(send, t, t)
      last.push(...engine.takeBucketEvents().filter((e) => e.t === T * 1000 && e.step === '1m'))
    }
    expect(last.map((e) => e.scope)).toEqual([E2])
    const { revision, scope: _s, step: _st, ...figures } = last[0]!
    expect(revision).toBe(2)
    expect(figures).toEqual(exactOf(engine, E2, T))
  })

  it('counts the peak in watts: a late power reading raising a minute peak is sent', () => {
    const { engine, send } = engineOf(plantOf())
    feedE1(send, T, T + 600)
    engine.takeBucketEvents()
    send('d2', power(T + 10, 50_000))
    const revised = engine.takeBucketEvents()
    expect(minuteOf(revised, E2, T).map((e) => e.peakW)).toEqual([exactOf(engine, E2, T).peakW])
    expect(exactOf(engine, E2, T).peakW).toBeGreaterThan(49_000)
    expect(revised.some((e) => e.scope === E1 || e.scope === E3)).toBe(false)
  })

  for (const format of ['checkpoint', 'snapshot'] as const) {
    it(`after a restore (${format}) revisions continue above the ones sent and pending changes still go out`, () => {
      const plant = plantOf()
      const a = engineOf(plant)
      feedE1(a.send, T, T + 600)
      a.engine.takeBucketEvents()
      a.send('d2', energy(T, 0))
      a.send('d2', energy(T + 30, 5))
      expect(minuteOf(a.engine.takeBucketEvents(), E2, T).map((e) => e.revision)).toEqual([1])
      a.send('d2', energy(T + 60, 5.05)) // sub-threshold, pending at the checkpoint
      a.engine.takeBucketEvents()
      let b: Accounting
      if (format === 'checkpoint') b = Accounting.restore(plant, a.engine.checkpoint())
      else {
        const snap = a.engine.snapshot(true)
        const columns = new Map(snap.columns.map((c) => [`${c.site} ${c.minute}`, c.bytes]))
        b = Accounting.restoreFrom(plant, structuredClone(snap.state), (s, m) => columns.get(`${s} ${m}`))
      }
      const after: BucketEvent[] = []
      const sendB = (id: string, r: ReturnType<typeof energy>) => b.accept(plant.device(id)!, r)
      for (let t = T + 660; t <= T + 60 + FINAL_AFTER_S; t += 60) {
        feedE1(sendB, t, t)
        after.push(...b.takeBucketEvents())
      }
      const e2 = minuteOf(after, E2, T)
      expect(e2.length).toBeGreaterThan(0)
      expect(e2.every((e) => e.revision > 1)).toBe(true)
      const { revision: _r, scope: _s, step: _st, ...figures } = e2.at(-1)!
      expect(figures).toEqual(exactOf(b, E2, T))
      expect(figures.energyWh).toBeCloseTo(5.05, 12)
      // A later over-threshold change: above every revision sent before.
      sendB('d2', power(T + 20, 50_000))
      const later = minuteOf(b.takeBucketEvents(), E2, T)
      expect(later).toHaveLength(1)
      expect(later[0]!.revision).toBeGreaterThan(e2.at(-1)!.revision)
    })
  }

  it('sends a bucket whole above a revision the history store holds with other figures (reviseAbove)', () => {
    const { engine, send } = engineOf(plantOf())
    feedE1(send, T, T + 600)
    engine.takeBucketEvents()
    expect(engine.reviseAbove(E2, '1m', T * 1000, 5)).toBe(true)
    expect(engine.hasPendingRevisions()).toBe(true)
    const again = engine.takeBucketEvents()
    expect(
      again
        .filter((e) => e.t === T * 1000)
        .map((e) => e.scope)
        .sort(),
    ).toEqual(['s', 's/a', L1, L2, E1, E2, E3].sort())
    expect(again.every((e) => e.revision === 6)).toBe(true)
    expect(minuteOf(again, E1, T)[0]!.energyWh).toBe(100)
    expect(engine.hasPendingRevisions()).toBe(false)
  })

  it('tells the processor a revision is still to be sent while one waits for its second', () => {
    const { engine, send } = engineOf(plantOf())
    feedE1(send, T, T + 600)
    engine.takeBucketEvents()
    send('d2', energy(T, 0))
    send('d2', energy(T + 30, 5))
    engine.takeBucketEvents()
    send('d2', energy(T + 60, 10))
    expect(engine.hasPendingRevisions()).toBe(true)
    engine.takeBucketEvents() // held: the same second
    expect(engine.hasPendingRevisions()).toBe(true)
    send('d1', energy(T + 601, e1At(T + 601)))
    engine.takeBucketEvents()
    expect(engine.hasPendingRevisions()).toBe(false)
  })
})

describe('the history answers the figures last sent (§5 v1.1)', () => {
  it('while a sub-threshold change waits, and after the last revision carried it', () => {
    const { engine, send } = engineOf(plantOf())
    feedE1(send, T, T + 600)
    const closed = minuteOf(engine.takeBucketEvents(), L1, T)[0]!
    send('d2', energy(T, 0))
    send('d2', energy(T + 60, 0.05))
    expect(engine.takeBucketEvents().filter((e) => e.revision > 0)).toEqual([])
    const { revision: _r, scope: _s, step: _st, ...sentFigures } = closed
    const held = engine.history(L1, '1m', T * 1000, T * 1000 + 1, { asSent: true })[0]!
    expect(held.energyWh).toBe(sentFigures.energyWh)
    expect(held.idleWh).toBe(sentFigures.idleWh)
    expect(held.peakW).toBe(sentFigures.peakW)
    expect(held.co2G).toBeCloseTo(sentFigures.co2G, 9)
    expect(held.co2MarketG).toBeCloseTo(sentFigures.co2MarketG, 9)
    expect(engine.history(E2, '1m', T * 1000, T * 1000 + 1, { asSent: true })[0]!.energyWh).toBe(0)
    // The exact figures (§7) are there too.
    expect(exactOf(engine, E2, T).energyWh).toBeCloseTo(0.05, 12)
    const last: BucketEvent[] = []
    for (let t = T + 660; t <= T + 60 + FINAL_AFTER_S; t += 60) {
      feedE1(send, t, t)
      last.push(...minuteOf(engine.takeBucketEvents(), L1, T))
    }
    const { revision, scope: _s2, step: _st2, ...finalFigures } = last.at(-1)!
    expect(revision).toBe(1)
    expect(engine.history(L1, '1m', T * 1000, T * 1000 + 1, { asSent: true })[0]!).toEqual(finalFigures)
    expect(exactOf(engine, L1, T)).toEqual(finalFigures)
    expect(finalFigures.energyWh).toBeCloseTo(100.05, 12)
  })
})
