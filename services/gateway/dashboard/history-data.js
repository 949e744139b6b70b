// The history view's figures from GET /api/v1/energy rows (CONTRACT.md §6): the slots a period is
// drawn in, buckets summed into slots (a year's days into its months), period totals, and the
// 15-minute demand with each month's peak (the highest 15-minute average power, as §5's `demand`
// and §6's reports define it). Pure: rows in, figures out.

import { civilOf, monthsOf, startOfDay } from './range.js'

/** Bucket fields that add up over time; `peakW` is a maximum. Optional ones (§5) where present. */
export const SUMMED = [
  'energyWh',
  'co2G',
  'co2MarketG',
  'idleWh',
  'idleCo2G',
  'pvWh',
  'outputUnits',
  'savedWh',
  'savedCo2G',
]

const HOUR_MS = 3600_000

/** The intervals a period is drawn in: its hours (a day), days (a week, a month) or months (a year). */
export function slotsOf(period, timeZone) {
  if (period.byMonth) return monthsOf(period, timeZone)
  const slots = []
  if (period.step === '1h') {
    for (let t = period.from; t < period.to; t += HOUR_MS) slots.push({ from: t, to: Math.min(t + HOUR_MS, period.to) })
    return slots
  }
  let day = period.date
  for (let from = period.from; from < period.to; ) {
    day = { y: day.y, m: day.m, d: day.d + 1 }
    const to = startOfDay(normalise(day), timeZone)
    slots.push({ from, to })
    from = to
    day = normalise(day)
  }
  return slots
}

function normalise({ y, m, d }) {
  const date = new Date(Date.UTC(y, m - 1, d))
  return { y: date.getUTCFullYear(), m: date.getUTCMonth() + 1, d: date.getUTCDate() }
}

function add(into, bucket) {
  for (const key of SUMMED) {
    if (typeof bucket[key] === 'number') into[key] = (into[key] ?? 0) + bucket[key]
  }
  if (typeof bucket.peakW === 'number') into.peakW = Math.max(into.peakW ?? 0, bucket.peakW)
  return into
}

/** Rows summed per slot, keyed by the slot's start; a slot without rows has no entry. */
export function bucketsBySlot(rows, slots) {
  const bySlot = new Map()
  let i = 0
  for (const row of [...rows].sort((a, b) => a.t - b.t)) {
    while (i < slots.length && row.t >= slots[i].to) i++
    if (i >= slots.length) break
    if (row.t < slots[i].from) continue
    const slot = slots[i]
    bySlot.set(slot.from, add(bySlot.get(slot.from) ?? { t: slot.from }, row))
  }
  return bySlot
}

/** The sums of rows (and their highest peakW). */
export function totalsOf(rows) {
  const totals = { energyWh: 0, co2G: 0, co2MarketG: 0, idleWh: 0 }
  for (const row of rows) add(totals, row)
  return totals
}

/** kW of 15-minute rows: the interval's energy over its quarter hour. */
export function demandOf(rows15m) {
  return rows15m.map((row) => ({ t: row.t, kW: (row.energyWh * 4) / 1000 }))
}

/** The highest interval of `points` with from ≤ t < to, or undefined. The first wins a tie. */
export function peakOf(points, from, to) {
  let best
  for (const point of points) {
    if (point.t < from || point.t >= to) continue
    if (!best || point.kW > best.kW) best = point
  }
  return best
}

/** The whole local months a period touches (a week may span two), each {from, to}. */
export function monthsAround(period, timeZone) {
  const first = civilOf(period.from, timeZone)
  const months = []
  let date = { y: first.y, m: first.m, d: 1 }
  for (let from = startOfDay(date, timeZone); from < period.to; ) {
    date = normalise({ y: date.y, m: date.m + 1, d: 1 })
    const to = startOfDay(date, timeZone)
    months.push({ from, to })
    from = to
  }
  return months
}
