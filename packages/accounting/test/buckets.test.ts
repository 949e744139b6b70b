// Local boundaries (§7), closing and revisions (§5 buckets), carbon (§7), idle energy, demand,
// history (§6) and checkpoint/restore.

import { describe, expect, it } from 'vitest'
import { Accounting, LocalCalendar } from '../src/index.ts'
import { CARBON, E1, E2, energy, engineOf, L1, plantOf, power, utc } from './helpers.ts'

const T = utc(2025, 3, 3, 10, 0)

describe('local calendar (§7 local boundaries)', () => {
  const minute = (s: number) => s / 60
  it('Asia/Shanghai: days start at 16:00 UTC', () => {
    const cal = new LocalCalendar('Asia/Shanghai')
    const m = minute(utc(2025, 3, 3, 17, 7))
    expect(cal.bucketStart('1d', m) * 60).toBe(utc(2025, 3, 3, 16, 0))
    expect(cal.bucketEnd('1d', cal.bucketStart('1d', m)) * 60).toBe(utc(2025, 3, 4, 16, 0))
    expect(cal.bucketStart('1h', m) * 60).toBe(utc(2025, 3, 3, 17, 0))
    expect(cal.bucketStart('15m', m) * 60).toBe(utc(2025, 3, 3, 17, 0))
    expect(cal.hourOfDay(m)).toBe(1)
  })

  it('Asia/Kolkata (+5:30): hours start at :30 UTC', () => {
    const cal = new LocalCalendar('Asia/Kolkata')
    const m = minute(utc(2025, 3, 3, 10, 20))
    expect(cal.bucketStart('1h', m) * 60).toBe(utc(2025, 3, 3, 9, 30))
    expect(cal.bucketStart('15m', m) * 60).toBe(utc(2025, 3, 3, 10, 15))
    expect(cal.bucketStart('1d', m) * 60).toBe(utc(2025, 3, 2, 18, 30))
    expect(cal.hourOfDay(m)).toBe(15)
  })

  it('Asia/Kathmandu (+5:45): quarter hours still align, hours start at :15 UTC', () => {
    const cal = new LocalCalendar('Asia/Kathmandu')
    const m = minute(utc(2025, 3, 3, 10, 20))
    expect(cal.bucketStart('1h', m) * 60).toBe(utc(2025, 3, 3, 10, 15))
    expect(cal.bucketStart('1d', m) * 60).toBe(utc(2025, 3, 2, 18, 15))
  })

  it('Europe/Berlin on the DST change days: 23 and 25 hour days', () => {
    const cal = new LocalCalendar('Europe/Berlin')
    const spring = minute(utc(2025, 3, 30, 12, 0))
    const start = cal.bucketStart('1d', spring)
    expect(start * 60).toBe(utc(2025, 3, 29, 23, 0))
    expect((cal.bucketEnd('1d', start) - start) / 60).toBe(23)
    expect(cal.bucketStart('1h', minute(utc(2025, 3, 30, 1, 30))) * 60).toBe(utc(2025, 3, 30, 1, 0))
    expect(cal.hourOfDay(minute(utc(2025, 3, 30, 1, 30)))).toBe(3)
    const autumn = minute(utc(2025, 10, 26, 12, 0))
    const start2 = cal.bucketStart('1d', autumn)
    expect(start2 * 60).toBe(utc(2025, 10, 25, 22, 0))
    expect((cal.bucketEnd('1d', start2) - start2) / 60).toBe(25)
    // The repeated 02:00–03:00 hour gives two separate hour buckets.
    expect(cal.bucketStart('1h', minute(utc(2025, 10, 26, 0, 30))) * 60).toBe(utc(2025, 10, 26, 0, 0))
    expect(cal.bucketStart('1h', minute(utc(2025, 10, 26, 1, 30))) * 60).toBe(utc(2025, 10, 26, 1, 0))
  })

  it('rolls 1d buckets up at the local day in the engine', () => {
    const { engine, send } = engineOf(plantOf({ timezone: 'Asia/Shanghai' }))
    send('d2', energy(utc(2025, 3, 3, 15, 59), 0))
    send('d2', energy(utc(2025, 3, 3, 16, 1), 120))
    const days = engine.history(E2, '1d', 0, 1e15)
    expect(days.map((d) => [d.t / 1000, d.energyWh])).toEqual([
      [utc(2025, 3, 2, 16), 60],
      [utc(2025, 3, 3, 16), 60],
    ])
  })
})

describe('closing and revisions (§5 buckets, §7)', () => {
  it('closes a minute once the site clock passed its end by latenessS, then revises it', () => {
    const { engine, send } = engineOf(plantOf())
    send('d1', energy(T, 0))
    send('d1', energy(T + 60, 60))
    expect(engine.takeBucketEvents()).toEqual([])
    send('d1', energy(T + 179, 179)) // clock T+179: minute 0 ends at T+60, +120 = T+180
    expect(engine.takeBucketEvents()).toEqual([])
    send('d1', energy(T + 180, 180))
    const events = engine.takeBucketEvents()
    const e1 = events.filter((e) => e.scope === E1)
    expect(e1).toEqual([
      {
        scope: E1,
        step: '1m',
        t: T * 1000,
        energyWh: 60,
        co2G: 30,
        co2MarketG: 33.6,
        idleWh: 0,
        peakW: 0,
        revision: 0,
        pvWh: 0,
        idleCo2G: 0,
      },
    ])
    expect(events.map((e) => e.scope).sort()).toEqual(['s', 's/a', 's/a/l1', E1, E2, 's/a/l2/e3', 's/a/l2'].sort())
    expect(engine.takeBucketEvents()).toEqual([])
    // A late reading of another device changes minute 0: the scopes whose figures moved (§5 v1.1:
    // e2 and its line, area and site; without PV or grid meters no other scope's CO2 moves) are
    // re-sent with revision 1.
    send('d2', power(T, 3600))
    send('d2', power(T + 60, 3600))
    const revised = engine.takeBucketEvents()
    expect(revised.find((e) => e.scope === E2)).toMatchObject({ t: T * 1000, energyWh: 60, revision: 1 })
    expect(revised.find((e) => e.scope === 's')).toMatchObject({ energyWh: 120, revision: 1 })
    expect(revised.map((e) => e.scope).sort()).toEqual(['s', 's/a', L1, E2].sort())
    expect(revised.every((e) => e.step === '1m' && e.revision === 1)).toBe(true)
  })

  it('emits 15m, 1h and 1d buckets when their last minute closes', () => {
    const { engine, send } = engineOf(plantOf())
    send('d1', energy(T, 0))
    send('d1', energy(T + 3600 + 120, 3720))
    const events = engine.takeBucketEvents().filter((e) => e.scope === E1)
    expect(events.filter((e) => e.step === '1m')).toHaveLength(60)
    expect(events.filter((e) => e.step === '15m').map((e) => e.energyWh)).toEqual([900, 900, 900, 900])
    expect(events.filter((e) => e.step === '1h').map((e) => [e.t / 1000, e.energyWh])).toEqual([[T, 3600]])
  })

  it('sends every closed hour when days of buffered readings arrive between two takes', () => {
    // A fleet flushing four days of buffers in seconds moves the clock past the ring (25 h 16 min)
    // between two takes of the processor's timer: no closed minute may leave the ring unsent.
    const { engine, send } = engineOf(plantOf())
    const days = 4
    for (let t = T; t <= T + days * 86_400; t += 600) send('d2', power(t, 1000))
    const events = engine.takeBucketEvents().filter((e) => e.scope === E2)
    const hours = events.filter((e) => e.step === '1h').map((e) => [(e.t / 1000 - T) / 3600, Math.round(e.energyWh)])
    // Closed: every hour whose end the clock passed by latenessS (the last one, 95, is still open).
    expect(hours).toEqual(Array.from({ length: days * 24 - 1 }, (_, h) => [h, 1000]))
    // Each day bucket whole: the first from 10:00, then three full UTC days.
    expect(events.filter((e) => e.step === '1d').map((e) => Math.round(e.energyWh))).toEqual([
      14_000, 24_000, 24_000, 24_000,
    ])
    expect(events.every((e) => e.revision === 0)).toBe(true)
  })

  it('sends a revision of a minute before a jump of the clock carries it out of the ring', () => {
    const { engine, send } = engineOf(plantOf())
    send('d2', power(T, 1000))
    send('d2', power(T + 600, 1000))
    engine.takeBucketEvents()
    send('d1', energy(T, 0)) // late: minute 0..9 of e1 change after they were sent
    send('d1', energy(T + 600, 100))
    send('d2', power(T + 2 * 86_400, 1000)) // two days on, before the next take
    const minutes = engine.takeBucketEvents().filter((e) => e.scope === E1 && e.step === '1m' && e.t < (T + 600) * 1000)
    // Minutes 0–7 were sent (closed at clock T+600 with latenessS 120): revised; 8 and 9 close now.
    expect(minutes.map((e) => [(e.t / 1000 - T) / 60, e.revision])).toEqual([
      ...[0, 1, 2, 3, 4, 5, 6, 7].map((m) => [m, 1]),
      [8, 0],
      [9, 0],
    ])
    expect(minutes.reduce((sum, e) => sum + e.energyWh, 0)).toBeCloseTo(100, 9)
  })
})

describe('carbon (§7)', () => {
  it('without meters: I = E, location and market factors', () => {
    const { engine, send } = engineOf(plantOf())
    send('d1', energy(T, 0))
    send('d1', energy(T + 60, 1000))
    const [row] = engine.history(E1, '1m', 0, 1e15)
    expect(row!.co2G).toBeCloseTo(500, 9) // 1 kWh × 500 g/kWh
    expect(row!.co2MarketG).toBeCloseTo(1 * 0.8 * 700, 9)
  })

  it('with PV and no grid meter: I = max(0, E − G), shared in proportion; pvShare', () => {
    const { engine, send } = engineOf(plantOf({ pv: true }))
    send('d1', energy(T, 0))
    send('d1', energy(T + 60, 1000))
    send('d2', energy(T, 0))
    send('d2', energy(T + 60, 3000))
    send('pv1', energy(T, 0))
    send('pv1', energy(T + 60, 1000))
    const site = engine.history('s', '1m', 0, 1e15)[0]!
    expect(site.energyWh).toBe(4000) // PV is not consumption
    expect(site.co2G).toBeCloseTo(3 * 500, 9) // I = 3 kWh
    const e1 = engine.history(E1, '1m', 0, 1e15)[0]!
    expect(e1.co2G).toBeCloseTo(1 * (3 / 4) * 500, 9)
    expect(e1.co2MarketG).toBeCloseTo(1 * (3 / 4) * 0.8 * 700, 9)
    expect(engine.live('s')!.pvShare).toBeCloseTo(0.25, 12)
    expect(engine.live(E1)!.pvShare).toBeCloseTo(0.25, 12)
  })

  it('with a grid meter: I is what it measured', () => {
    const { engine, send } = engineOf(plantOf({ pv: true, grid: true }))
    send('d1', energy(T, 0))
    send('d1', energy(T + 60, 4000))
    send('pv1', energy(T, 0))
    send('pv1', energy(T + 60, 1000))
    send('grid1', energy(T, 0))
    send('grid1', energy(T + 60, 2000))
    expect(engine.history('s', '1m', 0, 1e15)[0]!.co2G).toBeCloseTo(2 * 500, 9)
    expect(engine.history(L1, '1m', 0, 1e15)[0]!.co2G).toBeCloseTo(2 * 500, 9)
  })

  it('hourly intensity of the local hour', () => {
    const hourly = Array.from({ length: 24 }, (_, h) => 100 + h)
    const { engine, send } = engineOf(plantOf({ timezone: 'Asia/Kolkata', carbon: { ...CARBON, gridGPerKWh: hourly } }))
    send('d1', energy(T, 0)) // 10:00 UTC = 15:30 local
    send('d1', energy(T + 60, 1000))
    expect(engine.history(E1, '1m', 0, 1e15)[0]!.co2G).toBeCloseTo(115, 9)
    expect(engine.live(E1)!.gridGPerKWh).toBe(115)
  })

  it('setCarbon applies to the buckets after the site clock, earlier ones keep their figures', () => {
    const { engine, send } = engineOf(plantOf())
    send('d1', energy(T, 0))
    send('d1', energy(T + 90, 90))
    engine.setCarbon('s', { gridGPerKWh: 1000, residualMixGPerKWh: 700, greenShare: 0.2 })
    send('d1', energy(T + 180, 180))
    const rows = engine.history(E1, '1m', 0, 1e15)
    expect(rows.map((r) => Math.round(r.co2G * 1000) / 1000)).toEqual([30, 30, 60, 0])
  })
})

describe('idle energy (§7 idle)', () => {
  it('counts the energy within a span, revises when the span closes, energyBetween is exact', () => {
    const { engine, send } = engineOf(plantOf())
    for (let i = 0; i <= 6; i++) send('d2', energy(T + i * 60, i * 60))
    engine.setIdleSpan(E2, T + 90, undefined)
    expect(engine.history(E2, '1m', 0, 1e15).map((r) => r.idleWh)).toEqual([0, 30, 60, 60, 60, 60, 0])
    send('d2', energy(T + 420, 420)) // open span: new energy is idle as it arrives
    expect(engine.history(E2, '1m', 0, 1e15)[6]!.idleWh).toBe(60)
    engine.setIdleSpan(E2, T + 90, T + 200)
    expect(engine.history(E2, '1m', 0, 1e15).map((r) => r.idleWh)).toEqual([0, 30, 60, 20, 0, 0, 0, 0])
    expect(engine.history(L1, '1m', 0, 1e15)[3]!.idleWh).toBe(20)
    expect(engine.energyBetween(E2, T + 90, T + 200)).toEqual({ energyWh: 110, co2G: 55, co2MarketG: 110 * 0.56 })
  })
})

describe('demand and live (§5)', () => {
  it('average so far, forecast with current power, month peak of closed intervals', () => {
    const { engine, send } = engineOf(plantOf())
    // 36 kW for the first quarter hour, then 72 kW.
    send('d1', energy(T, 0))
    send('d1', energy(T + 900, 9000))
    send('d1', energy(T + 1200, 15000))
    const live = engine.live(E1, 72_000)!
    expect(live.at).toBe((T + 1200) * 1000)
    expect(live.demand!.intervalStart).toBe((T + 900) * 1000)
    expect(live.demand!.kW).toBeCloseTo(72, 9)
    expect(live.demand!.forecastKW).toBeCloseTo(72, 9)
    expect(live.demand!.monthPeakKW).toBeCloseTo(36, 9)
    expect(live.energyTodayWh).toBe(15000)
    expect(live.co2TodayG).toBeCloseTo(7500, 6)
    expect(engine.live('nowhere')).toBeUndefined()
  })

  it("today's figures asked every minute (summed incrementally) equal those of an engine asked once", () => {
    const plant = plantOf({ pv: true })
    const often = engineOf(plant)
    const once = engineOf(plant)
    const both = (deviceId: string, reading: ReturnType<typeof energy>) => {
      often.send(deviceId, reading)
      once.send(deviceId, reading)
    }
    const scopes = [E1, E2, L1, 's/a', 's']
    for (let k = 0; k <= 240; k++) {
      const t = T + k * 60
      both('d1', energy(t, k * 600))
      both('d2', energy(t, k * 300 + (k % 7) * 10))
      both('pv1', energy(t, k * 200))
      // A late reading now and then revises a minute that has already closed.
      if (k % 30 === 29) both('d3', energy(t - 600, k * 50))
      // Minutes close as the processor takes its bucket events.
      often.engine.takeBucketEvents()
      once.engine.takeBucketEvents()
      for (const scope of scopes) often.engine.live(scope)
    }
    for (const scope of scopes) {
      const a = often.engine.live(scope)!
      const b = once.engine.live(scope)!
      expect(a.energyTodayWh).toBeGreaterThan(0)
      expect(a.energyTodayWh).toBeCloseTo(b.energyTodayWh, 6)
      expect(a.co2TodayG).toBeCloseTo(b.co2TodayG, 6)
      expect(a.co2MarketTodayG).toBeCloseTo(b.co2MarketTodayG, 6)
      expect(a.pvShare).toBeCloseTo(b.pvShare, 12)
    }
  })
})

describe('history (§6) and checkpoint', () => {
  it('returns buckets with from ≤ t < to, ordered by t', () => {
    const { engine, send } = engineOf(plantOf())
    send('d1', energy(T, 0))
    send('d1', energy(T + 300, 300))
    const rows = engine.history(E1, '1m', (T + 60) * 1000, (T + 180) * 1000)
    expect(rows.map((r) => r.t / 1000)).toEqual([T + 60, T + 120])
  })

  it('keeps at least 24 h at 1-minute resolution', () => {
    const { engine, send } = engineOf(plantOf())
    for (let i = 0; i <= 26 * 60; i += 10) send('d2', energy(T + i * 60, i * 60))
    const rows = engine.history(E2, '1m', 0, 1e15)
    expect(rows.length).toBeGreaterThan(1440)
    expect(rows.at(-1)!.t / 1000).toBe(T + 26 * 3600)
    expect(rows[0]!.t / 1000).toBeLessThanOrEqual(T + 2 * 3600)
  })

  it('restores revisions, open buckets and month peaks', () => {
    const plant = plantOf()
    const a = engineOf(plant)
    a.send('d1', energy(T, 0))
    a.send('d1', energy(T + 1200, 1200))
    a.engine.takeBucketEvents()
    a.send('d1', energy(T + 30, 30))
    const b = Accounting.restore(plant, a.engine.checkpoint())
    expect(b.takeBucketEvents()).toEqual(a.engine.takeBucketEvents())
    expect(b.live(E1)).toEqual(a.engine.live(E1))
    expect(b.history(E1, '1m', 0, 1e15)).toEqual(a.engine.history(E1, '1m', 0, 1e15))
    b.accept(plant.device('d1')!, energy(T + 1260, 1260))
    expect(b.history(E1, '1m', 0, 1e15).at(-1)!.energyWh).toBe(0)
    expect(b.history(E1, '1m', 0, 1e15).at(-2)!.energyWh).toBe(60)
  })
})
