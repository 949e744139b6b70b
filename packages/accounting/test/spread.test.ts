// spreadPart looks only at the idle spans overlapping the part it spreads (issue 14: an equipment
// keeps its spans for the whole ring, and walking all of them for every minute made a reading's
// cost grow through the day). The result must be the one of walking them all.

import { createRng } from '@plantwatt/fleet'
import { describe, expect, it } from 'vitest'
import { firstEndingAfter, MinuteScratch, type Span, spreadPart } from '../src/spread.ts'

/** The idle energy of each minute as spreadPart computed it before: every span, every minute. */
function idleByWalkingAll(a: number, b: number, milliWh: number, x: number, y: number, spans: Span[]): number[] {
  const length = b - a
  const cum = (t: number) => Math.round((milliWh * (t - a)) / length)
  const idle: number[] = []
  for (let p0 = x; p0 < y; ) {
    const p1 = Math.min(y, (Math.floor(p0 / 60) + 1) * 60)
    let sum = 0
    for (const span of spans) {
      const q0 = Math.max(span.start, p0)
      const q1 = Math.min(span.end, p1)
      if (q1 > q0) sum += cum(q1) - cum(q0)
    }
    idle.push(sum)
    p0 = p1
  }
  return idle
}

function scratchIdle(out: MinuteScratch): number[] {
  const idle: number[] = []
  for (let m = out.lo; m <= out.hi; m++) idle.push(out.idle[m - out.base]!)
  return idle
}

/** Disjoint spans sorted by start, as an equipment's idle episodes are; the last may be open. */
function disjointSpans(next: () => number): Span[] {
  const spans: Span[] = []
  let t = 0
  const count = Math.floor(next() * 40)
  for (let k = 0; k < count; k++) {
    const start = t + Math.floor(next() * 600)
    t = start + 1 + Math.floor(next() * 900)
    spans.push({ start, end: t })
  }
  if (spans.length > 0 && next() < 0.5) spans[spans.length - 1]!.end = Number.POSITIVE_INFINITY
  return spans
}

describe('spreadPart with idle spans', () => {
  it('finds the first span ending after a time', () => {
    const spans: Span[] = [
      { start: 0, end: 10 },
      { start: 20, end: 30 },
      { start: 40, end: Number.POSITIVE_INFINITY },
    ]
    expect([-1, 9, 10, 25, 30, 1e9].map((t) => firstEndingAfter(spans, t))).toEqual([0, 0, 1, 1, 2, 2])
    expect(firstEndingAfter([], 5)).toBe(0)
  })

  it('gives each minute the idle energy of walking every span', () => {
    for (let seed = 1; seed <= 2000; seed++) {
      const next = createRng(seed)
      const spans = disjointSpans(next)
      const a = Math.floor(next() * 30_000)
      const b = a + 1 + Math.floor(next() * 7_200)
      const milliWh = Math.floor(next() * 10_000_000)
      const [u, v] = [next(), next()].sort((p, q) => p - q) as [number, number]
      const x = a + u * (b - a)
      const y = a + v * (b - a)
      const out = new MinuteScratch()
      spreadPart(out, a, b, milliWh, x, y, 1, spans)
      const got = out.empty ? [] : scratchIdle(out)
      expect({ seed, idle: got }).toEqual({ seed, idle: idleByWalkingAll(a, b, milliWh, x, y, spans) })
    }
  })
})
