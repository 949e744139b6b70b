// Today's figures of `live` (CONTRACT.md §5, §7) kept as per-hour sums of the closed minutes
// (today-sums.ts): whatever changes closed minutes — late readings, a meter's long gap, PV and
// grid readings (they move every scope's CO2), idle spans — the figures equal the day's 1-minute
// buckets summed afresh, at any time of day, across midnight and on DST days; and a change costs
// one hour's minutes, not the day's.

import { describe, expect, it } from 'vitest'
import type { Accounting } from '../src/index.ts'
import { ClosedMinuteChanges, LOG_LENGTH } from '../src/today-sums.ts'
import { E1, E2, energy, engineOf, L1, plantOf, utc } from './helpers.ts'

const SCOPES = [E1, E2, L1, 's/a/l2', 's/a/l2/e3', 's/a', 's']

/** Today's figures summed afresh from the engine's 1-minute buckets of the site clock's local day. */
function fromBuckets(engine: Accounting, scope: string, dayStartS: number) {
  const clock = engine.siteClock('s')!
  const rows = engine.history(scope, '1m', dayStartS * 1000, (Math.floor(clock / 60) + 1) * 60_000)
  let energyWh = 0
  let co2G = 0
  let co2MarketG = 0
  let pvWh = 0
  for (const row of rows) {
    energyWh += row.energyWh
    co2G += row.co2G
    co2MarketG += row.co2MarketG
    pvWh += row.pvWh ?? 0
  }
  return { energyWh, co2G, co2MarketG, pvShare: energyWh > 0 ? pvWh / energyWh : 0 }
}

function close(actual: number, expected: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(expected)))
}

/** live() of every scope equals the buckets summed afresh; returns the site's energy today. */
function expectExact(engine: Accounting, dayStartS: number): number {
  for (const scope of SCOPES) {
    const live = engine.live(scope)!
    const want = fromBuckets(engine, scope, dayStartS)
    close(live.energyTodayWh, want.energyWh)
    close(live.co2TodayG, want.co2G)
    close(live.co2MarketTodayG, want.co2MarketG)
    close(live.pvShare, want.pvShare)
  }
  return engine.live('s')!.energyTodayWh
}

/** d1's energy counter (Wh) at `t`, for a day run from `fromS`: a little off a straight line. */
function d1(fromS: number, t: number): number {
  return (t - fromS) * 8 + Math.floor((t - fromS) / 7)
}

/**
 * A day of readings from `fromS`, one simulated minute at a time: d1 at :20 and d2 at :30 of
 * every minute, d3 every 5 hours only (its reading spreads over hours of closed minutes), PV
 * every 15 minutes with a 3-hour gap, grid every 10 minutes, and a d1 reading 3 minutes late,
 * a little off its neighbours' line, every 37 minutes (it re-splits two closed minutes). Buckets
 * are taken and every scope's live() asked each minute, as the processor does; `each` runs after.
 * Returns the engine and how many revised buckets were sent (closed minutes that changed).
 */
function runDay(
  opts: { timezone?: string; fromS: number; minutes: number; grid?: boolean; asked?: string[] },
  each: (engine: Accounting, t: number, k: number) => void,
) {
  const plant = plantOf({ timezone: opts.timezone, pv: true, grid: opts.grid })
  const { engine, send } = engineOf(plant)
  let revisions = 0
  for (let k = 0; k <= opts.minutes; k++) {
    const t = opts.fromS + k * 60
    if (k % 15 === 0 && !(k > 400 && k < 580)) send('pv1', energy(t, k * 200))
    if (opts.grid && k % 10 === 0) send('grid1', energy(t, k * 500))
    if (k % 300 === 0) send('d3', energy(t + 10, k * 250))
    send('d1', energy(t + 20, d1(opts.fromS, t + 20)))
    if (k % 37 === 36) send('d1', energy(t - 200, d1(opts.fromS, t - 200) + 3))
    send('d2', energy(t + 30, k * 300 + (k % 7) * 10))
    for (const event of engine.takeBucketEvents()) if (event.revision > 0) revisions++
    for (const scope of opts.asked ?? SCOPES) engine.live(scope)
    each(engine, t, k)
  }
  return { engine, revisions }
}

describe("today's figures (§5 live) from per-hour sums of the closed minutes", () => {
  it('equal the day summed afresh at every hour, with late readings, gaps and PV', () => {
    const day = utc(2025, 3, 3)
    let checked = 0
    const { revisions } = runDay({ fromS: day, minutes: 1439 }, (engine, _t, k) => {
      if (k % 60 !== 59 && k !== 1439) return
      expect(expectExact(engine, day)).toBeGreaterThan(0)
      checked++
    })
    expect(checked).toBe(24)
    expect(revisions).toBeGreaterThan(0)
  })

  it('equal the day summed afresh when grid readings move every scope’s CO2', () => {
    const day = utc(2025, 3, 3)
    let gridLate = 0
    runDay({ fromS: day, minutes: 23 * 60, grid: true }, (engine, t, k) => {
      // A grid reading 2 minutes late now and then: closed minutes' import changes.
      if (k % 90 === 45) {
        const co2Before = engine.history(E2, '1m', (t - 600) * 1000, (t - 120) * 1000).map((r) => r.co2G)
        engine.accept(engine.plant.device('grid1')!, energy(t - 125, (k - 2) * 500 + 3))
        const co2After = engine.history(E2, '1m', (t - 600) * 1000, (t - 120) * 1000).map((r) => r.co2G)
        // E2 had no new reading, yet its CO2 of closed minutes moved.
        if (co2After.some((g, i) => g !== co2Before[i])) gridLate++
      }
      if (k % 180 === 59) expectExact(engine, day)
    })
    expect(gridLate).toBeGreaterThan(10)
  })

  it('equal the day summed afresh when idle spans are opened and closed over closed minutes', () => {
    const day = utc(2025, 3, 3)
    let idle = 0
    runDay({ fromS: day, minutes: 23 * 60 }, (engine, t, k) => {
      if (k % 120 === 111) idle += engine.history(E1, '1h', day * 1000, t * 1000).reduce((a, r) => a + r.idleWh, 0)
      if (k % 120 === 100) engine.setIdleSpan(E1, t - 400, undefined)
      if (k % 120 === 110) engine.setIdleSpan(E1, t - 1000, t - 200)
      if (k % 120 === 111) expectExact(engine, day)
    })
    expect(idle).toBeGreaterThan(0)
  })

  it('start afresh at local midnight, also when a late reading straddles it', () => {
    // Kathmandu (+5:45): local days start at 18:15 UTC, not on a UTC hour.
    const midnight = utc(2025, 3, 3, 18, 15)
    const from = midnight - 3 * 3600
    const seen: number[] = []
    runDay({ timezone: 'Asia/Kathmandu', fromS: from, minutes: 6 * 60 }, (engine, t, k) => {
      if (t === midnight + 240) {
        // A d1 reading 260 s late re-splits the interval across midnight: yesterday's last
        // minute and today's first, both closed by now.
        engine.accept(engine.plant.device('d1')!, energy(midnight - 20, d1(from, midnight - 20) + 3))
      }
      if (t === midnight - 60 || t === midnight || t === midnight + 60 || t === midnight + 300 || k === 360) {
        seen.push(expectExact(engine, t < midnight ? midnight - 86_400 : midnight))
      }
    })
    expect(seen).toHaveLength(5)
    // The new day's figures are the new day's alone.
    expect(seen[1]!).toBeLessThan(seen[0]!)
  })

  for (const [name, date, hours] of [
    ['23-hour', [2025, 3, 30], 23],
    ['25-hour', [2025, 10, 26], 25],
  ] as const) {
    it(`equal the day summed afresh on Berlin's ${name} DST day`, () => {
      // Local midnight in Berlin is 22:00 or 23:00 UTC the day before.
      const [y, mo, d] = date
      const midnight = hours === 23 ? utc(y, mo, d - 1, 23) : utc(y, mo, d - 1, 22)
      let checked = 0
      runDay({ timezone: 'Europe/Berlin', fromS: midnight, minutes: hours * 60 - 1 }, (engine, _t, k) => {
        if (k % 60 !== 59) return
        expectExact(engine, midnight)
        checked++
      })
      expect(checked).toBe(hours)
    })
  }

  it('a revised closed minute costs an hour of minutes at 01:00 and at 23:00 alike', () => {
    const day = utc(2025, 3, 3)
    const cost: Record<number, number> = {}
    runDay({ fromS: day, minutes: 23 * 60 + 5 }, (engine, t, k) => {
      if (k !== 65 && k !== 23 * 60 + 5) return
      const before = engine.todayStats().minutesRead
      // A d2 reading 225 s late re-splits two closed minutes of the hour.
      engine.accept(engine.plant.device('d2')!, energy(t - 195, (k - 4) * 300 + 150))
      engine.live(L1)
      cost[k] = engine.todayStats().minutesRead - before
      expectExact(engine, day)
    })
    expect(cost[65]).toBeGreaterThan(0)
    expect(cost[23 * 60 + 5]).toBeGreaterThan(0)
    // At most the two hours holding the changed minutes, never the day's 1,385 closed minutes.
    expect(cost[23 * 60 + 5]).toBeLessThanOrEqual(120)
    expect(cost[65]).toBeLessThanOrEqual(120)
  })

  it('equal the day summed afresh for a scope not asked for longer than the change log holds', () => {
    const day = utc(2025, 3, 3)
    runDay({ fromS: day, minutes: 1400, asked: [] }, (engine, _t, k) => {
      // d3's readings every 5 hours and PV after its gap change far more minutes than the log keeps.
      if (k === 100 || k === 1400) expectExact(engine, day)
    })
  })

  it('logs the last changes one by one, older ones by quarter hour', () => {
    const changes = new ClosedMinuteChanges(1516)
    for (let m = 0; m < LOG_LENGTH + 10; m++) changes.note(1_000_000 + (m % 600))
    expect(changes.logged(0)).toBe(false)
    expect(changes.logged(20)).toBe(true)
    expect(changes.minuteOf(changes.version)).toBe(1_000_000 + ((LOG_LENGTH + 9) % 600))
    expect(changes.changedSince(1_000_000, 1_000_015, changes.version - 1)).toBe(false)
    expect(changes.changedSince(1_000_000, 1_000_015, 0)).toBe(true)
    // Quarter hours from 1_000_605 on hold no changed minute.
    expect(changes.changedSince(1_000_605, 1_000_700, 0)).toBe(false)
  })

  it('states what it keeps per scope asked', () => {
    const day = utc(2025, 3, 3)
    const { engine } = runDay({ fromS: day, minutes: 120 }, () => {})
    const stats = engine.todayStats()
    expect(stats.scopes).toBe(SCOPES.length)
    expect(stats.bytes / stats.scopes).toBeGreaterThan(0)
    expect(stats.bytes / stats.scopes).toBeLessThan(2048)
    // The site's change log: the last changes one by one, and one number per quarter hour.
    expect(stats.siteBytes).toBeLessThan(12 * 1024)
  })
})
