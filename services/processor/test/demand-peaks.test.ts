import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type DemandInterval, HistoryStore } from '@plantwatt/history-store'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HistoryStoreSink } from '../src/history-sink.ts'

// Reports' peakKW/peakAt (CONTRACT.md §6) through the sink's remembered day peaks: the same answer
// as a scan of every stored interval, for ranges that cut days anywhere, also after a revision
// lowers or raises a remembered day's peak. A real LMDB store.

const SCOPE = 'yibin/electrode'
const START = Date.UTC(2025, 0, 1, 16)
const QUARTER = 900_000
const DAYS = 20

describe('demand peaks remembered per day', () => {
  let dir: string
  let store: HistoryStore
  let sink: HistoryStoreSink

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-demand-peaks-'))
    store = new HistoryStore({ path: join(dir, 'history'), maxAgeS: 7 * 86_400 })
    sink = new HistoryStoreSink({
      store,
      logger: pino({ level: 'silent' }),
      reviseAbove: () => false,
      publish: () => {},
    })
    const rows: DemandInterval[] = []
    // Repeating values, so that equal peaks occur and the earliest must win.
    for (let k = 0; k < DAYS * 96; k++)
      rows.push({ scope: SCOPE, t: START + k * QUARTER, kW: (k * 37) % 101, revision: 0 })
    await store.writeDemand(rows)
  })

  afterAll(async () => {
    await store?.close()
    await rm(dir, { recursive: true, force: true })
  })

  const brute = async (from: number, to: number) => {
    const row = await store.peakDemand(SCOPE, from, to)
    return row === null ? null : { kW: row.kW, t: row.t }
  }

  it('answers as a scan of every interval, cold and remembered', async () => {
    let seed = 7
    const random = () => {
      seed = (seed * 48_271) % 2_147_483_647
      return seed / 2_147_483_647
    }
    for (let i = 0; i < 60; i++) {
      const a =
        START - QUARTER * 10 + Math.floor(random() * (DAYS * 96 + 20)) * QUARTER + Math.floor(random() * 3) * 60_000
      const b = a + Math.floor(random() * DAYS * 96) * QUARTER
      expect(await sink.demandPeaks.peak(SCOPE, a, b), `${a} ${b}`).toEqual(await brute(a, b))
      // Asked again: from the remembered days.
      expect(await sink.demandPeaks.peak(SCOPE, a, b), `${a} ${b} again`).toEqual(await brute(a, b))
    }
  })

  it('a revision written through the sink lowers or raises a remembered day', async () => {
    const from = START
    const to = START + DAYS * 86_400_000
    const before = (await sink.demandPeaks.peak(SCOPE, from, to))!
    expect(before).toEqual(await brute(from, to))
    // The peak interval revised down: through the sink, as the processor writes a 15m bucket.
    const bucket = (t: number, kW: number, revision: number) => ({
      scope: SCOPE,
      step: '15m' as const,
      t,
      revision,
      energyWh: kW * 250,
      co2G: 0,
      co2MarketG: 0,
      idleWh: 0,
      peakW: 0,
    })
    sink.write([bucket(before.t, 1, 1)])
    await sink.written()
    const lowered = await sink.demandPeaks.peak(SCOPE, from, to)
    expect(lowered).toEqual(await brute(from, to))
    expect(lowered!.t).not.toBe(before.t)
    sink.write([bucket(START + 5 * 86_400_000 + 7 * QUARTER, 500, 1)])
    await sink.written()
    expect(await sink.demandPeaks.peak(SCOPE, from, to)).toEqual({ kW: 500, t: START + 5 * 86_400_000 + 7 * QUARTER })
  })

  it('pruning forgets the days it reached', async () => {
    const from = START
    const to = START + DAYS * 86_400_000
    await sink.demandPeaks.peak(SCOPE, from, to)
    // The site clock 13 months and 8.5 days on: the first 8.5 days of demand are pruned (§6 retention).
    await sink.prune(START + store.retention.demand * 1000 + 8.5 * 86_400_000)
    const left = await brute(from, to)
    expect(left!.t).toBeGreaterThanOrEqual(START + 8.5 * 86_400_000)
    expect(await sink.demandPeaks.peak(SCOPE, from, to)).toEqual(left)
    expect(await sink.demandPeaks.peak(SCOPE, from, from + 8 * 86_400_000)).toBeNull()
  })
})
