import { describe, expect, it } from 'vitest'
import { civilOf, formatDate, monthsOf, parseDate, periodOf, shiftDate, startOfDay } from '../dashboard/range.js'

// The dashboard's history ranges (issue 17): a day, a week (Monday to Monday), a month or a year,
// local to the site (CONTRACT.md §6 reports, §7 "buckets start at the site's local boundaries"),
// with the step GET /api/v1/energy is asked for. Pure calendar arithmetic in the site's zone.

const iso = (ms: number) => new Date(ms).toISOString()

describe('dashboard ranges', () => {
  it('starts a day at local midnight in the site zone, with hourly buckets', () => {
    // 2026-12-06 23:00 UTC is already Monday 7 December in Shanghai (UTC+8).
    const at = Date.UTC(2026, 11, 6, 23)
    expect(civilOf(at, 'Asia/Shanghai')).toEqual({ y: 2026, m: 12, d: 7 })
    const day = periodOf('day', civilOf(at, 'Asia/Shanghai'), 'Asia/Shanghai')
    expect(iso(day.from)).toBe('2026-12-06T16:00:00.000Z')
    expect(iso(day.to)).toBe('2026-12-07T16:00:00.000Z')
    expect(day.step).toBe('1h')
    expect(day.byMonth).toBe(false)
  })

  it('gives a daylight-saving day its 23 or 25 hours', () => {
    const spring = periodOf('day', { y: 2026, m: 3, d: 29 }, 'Europe/Berlin')
    expect(iso(spring.from)).toBe('2026-03-28T23:00:00.000Z')
    expect((spring.to - spring.from) / 3600_000).toBe(23)
    const autumn = periodOf('day', { y: 2026, m: 10, d: 25 }, 'Europe/Berlin')
    expect((autumn.to - autumn.from) / 3600_000).toBe(25)
  })

  it('runs a week from Monday to Monday, a month and a year by the calendar, with daily buckets', () => {
    // Thursday 10 December 2026.
    const week = periodOf('week', { y: 2026, m: 12, d: 10 }, 'Europe/Berlin')
    expect(iso(week.from)).toBe('2026-12-06T23:00:00.000Z')
    expect(iso(week.to)).toBe('2026-12-13T23:00:00.000Z')
    expect(week.step).toBe('1d')
    // A Sunday belongs to the week that began the Monday before.
    expect(periodOf('week', { y: 2026, m: 12, d: 13 }, 'Europe/Berlin').from).toBe(week.from)
    const month = periodOf('month', { y: 2026, m: 2, d: 17 }, 'UTC')
    expect([iso(month.from), iso(month.to), month.step]).toEqual([
      '2026-02-01T00:00:00.000Z',
      '2026-03-01T00:00:00.000Z',
      '1d',
    ])
    const year = periodOf('year', { y: 2026, m: 7, d: 4 }, 'Asia/Shanghai')
    expect([iso(year.from), iso(year.to), year.step, year.byMonth]).toEqual([
      '2025-12-31T16:00:00.000Z',
      '2026-12-31T16:00:00.000Z',
      '1d',
      true,
    ])
  })

  it('moves to the previous and next period across month and year ends', () => {
    expect(shiftDate('day', { y: 2026, m: 12, d: 31 }, 1)).toEqual({ y: 2027, m: 1, d: 1 })
    expect(shiftDate('week', { y: 2026, m: 3, d: 2 }, -1)).toEqual({ y: 2026, m: 2, d: 23 })
    // 31 January plus a month is in February, not 3 March.
    expect(shiftDate('month', { y: 2026, m: 1, d: 31 }, 1)).toEqual({ y: 2026, m: 2, d: 1 })
    expect(shiftDate('year', { y: 2026, m: 5, d: 5 }, -1)).toEqual({ y: 2025, m: 1, d: 1 })
  })

  it('lists the local months a range covers, and reads and writes dates for the URL', () => {
    const months = monthsOf(periodOf('year', { y: 2026, m: 1, d: 1 }, 'Europe/Berlin'), 'Europe/Berlin')
    expect(months).toHaveLength(12)
    expect(iso(months[2]!.from)).toBe('2026-02-28T23:00:00.000Z')
    expect(months[2]!.to).toBe(months[3]!.from)
    expect(months[11]!.to).toBe(startOfDay({ y: 2027, m: 1, d: 1 }, 'Europe/Berlin'))
    expect(formatDate({ y: 2026, m: 3, d: 9 })).toBe('2026-03-09')
    expect(parseDate('2026-03-09')).toEqual({ y: 2026, m: 3, d: 9 })
    for (const bad of ['2026-13-01', '2026-02-30', 'yesterday', '', undefined]) expect(parseDate(bad)).toBeUndefined()
  })
})
