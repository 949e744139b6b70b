// Types of history-data.js for the TypeScript tests that import it (never served: the gateway
// serves only .html, .js, .css and .svg files).

import type { Period } from './range.js'

export interface Slot {
  from: number
  to: number
}
export interface Row {
  t: number
  energyWh: number
  [field: string]: number | undefined
}
export const SUMMED: string[]
export function slotsOf(period: Period, timeZone: string | undefined): Slot[]
export function bucketsBySlot(rows: Row[], slots: Slot[]): Map<number, Row>
export function totalsOf(rows: Row[]): Record<string, number>
export function demandOf(rows15m: Row[]): { t: number; kW: number }[]
export function peakOf(
  points: { t: number; kW: number }[],
  from: number,
  to: number,
): { t: number; kW: number } | undefined
export function monthsAround(period: Period, timeZone: string | undefined): Slot[]
