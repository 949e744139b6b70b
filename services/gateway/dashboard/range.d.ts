// Types of range.js for the TypeScript tests that import it (the page itself has no build step;
// the gateway serves only .html, .js, .css and .svg files, so this file is never sent).

export interface CivilDate {
  y: number
  m: number
  d: number
}
export type Kind = 'day' | 'week' | 'month' | 'year'
export interface Period {
  kind: Kind
  date: CivilDate
  from: number
  to: number
  step: '1h' | '1d'
  byMonth: boolean
}
export const KINDS: Kind[]
export function civilOf(ms: number, timeZone: string | undefined): CivilDate
export function startOfDay(date: CivilDate, timeZone: string | undefined): number
export function shiftDate(kind: Kind, date: CivilDate, delta: number): CivilDate
export function periodOf(kind: Kind, date: CivilDate, timeZone: string | undefined): Period
export function monthsOf(period: Period, timeZone: string | undefined): { from: number; to: number }[]
export function formatDate(date: CivilDate): string
export function parseDate(text: string | undefined): CivilDate | undefined
