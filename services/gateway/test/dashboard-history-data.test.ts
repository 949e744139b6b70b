import { describe, expect, it } from 'vitest'
import { bucketsBySlot, demandOf, monthsAround, peakOf, slotsOf, totalsOf } from '../dashboard/history-data.js'
import { periodOf } from '../dashboard/range.js'

// The history view's figures from GET /api/v1/energy rows (issue 17): the slots a period is drawn
// in, a year's days summed into months, totals, and the month's 15-minute peak.

const iso = (ms: number) => new Date(ms).toISOString()
const TZ = 'Europe/Berlin'

describe('dashboard history figures', () => {
  it('draws a day in its hours (23 on the spring change) and a month in its local days', () => {
    expect(slotsOf(periodOf('day', { y: 2026, m: 3, d: 29 }, TZ), TZ)).toHaveLength(23)
    const march = slotsOf(periodOf('month', { y: 2026, m: 3, d: 5 }, TZ), TZ)
    expect(march).toHaveLength(31)
    expect(iso(march[0]!.from)).toBe('2026-02-28T23:00:00.000Z')
    // The 29th is 23 hours long; every slot starts where the one before ended.
    expect((march[28]!.to - march[28]!.from) / 3600_000).toBe(23)
    for (let i = 1; i < march.length; i++) expect(march[i]!.from).toBe(march[i - 1]!.to)
    expect(march.at(-1)!.to).toBe(periodOf('month', { y: 2026, m: 3, d: 5 }, TZ).to)
  })

  it("sums a year's days into its months, keeping the highest peakW and the optional figures", () => {
    const year = periodOf('year', { y: 2026, m: 6, d: 1 }, TZ)
    const slots = slotsOf(year, TZ)
    expect(slots).toHaveLength(12)
    const day = (m: number, d: number) =>
      Date.parse(`2026-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}T00:00:00+01:00`)
    const rows = [
      { t: day(1, 1), energyWh: 10, co2G: 5, co2MarketG: 6, idleWh: 1, peakW: 700 },
      { t: day(1, 31), energyWh: 20, co2G: 7, co2MarketG: 8, idleWh: 2, peakW: 900, savedWh: 3 },
      { t: day(2, 1), energyWh: 40, co2G: 1, co2MarketG: 1, idleWh: 0, peakW: 100 },
    ]
    const bySlot = bucketsBySlot(rows, slots)
    expect([...bySlot.keys()]).toEqual([slots[0]!.from, slots[1]!.from])
    expect(bySlot.get(slots[0]!.from)).toEqual({
      t: slots[0]!.from,
      energyWh: 30,
      co2G: 12,
      co2MarketG: 14,
      idleWh: 3,
      peakW: 900,
      savedWh: 3,
    })
    expect(totalsOf(rows)).toMatchObject({ energyWh: 70, co2G: 13, idleWh: 3, savedWh: 3, peakW: 900 })
    // A row outside the period is not drawn.
    expect(bucketsBySlot([{ t: year.to, energyWh: 1 }], slots).size).toBe(0)
  })

  it("takes the month's peak over the whole month, however short the period shown", () => {
    const week = periodOf('week', { y: 2026, m: 3, d: 31 }, TZ)
    // Monday 30 March to Monday 6 April: two months.
    const months = monthsAround(week, TZ)
    expect(months.map((m) => [iso(m.from), iso(m.to)])).toEqual([
      ['2026-02-28T23:00:00.000Z', '2026-03-31T22:00:00.000Z'],
      ['2026-03-31T22:00:00.000Z', '2026-04-30T22:00:00.000Z'],
    ])
    const points = demandOf([
      { t: months[0]!.from, energyWh: 500 },
      { t: months[0]!.from + 900_000, energyWh: 750 },
      { t: months[0]!.from + 1_800_000, energyWh: 750 },
    ])
    expect(points.map((p) => p.kW)).toEqual([2, 3, 3])
    // The first of equal quarter hours is the peak; none outside the range.
    expect(peakOf(points, months[0]!.from, months[0]!.to)).toEqual({ t: months[0]!.from + 900_000, kW: 3 })
    expect(peakOf(points, months[1]!.from, months[1]!.to)).toBeUndefined()
  })
})
