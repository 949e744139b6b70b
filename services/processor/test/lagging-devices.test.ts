import { join } from 'node:path'
import { QueryClient } from '@plantwatt/bus'
import { type BucketStep, deviceTopic, type PlantModel } from '@plantwatt/contract'
import { HistoryStore } from '@plantwatt/history-store'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Processor } from '../src/processor.ts'
import { openBusAndDir } from './support/bus-and-dir.ts'

// Half of a plant's devices reach the processor more than a day behind the other half (with
// `up --workers`, one broker worker's forwarding can fall behind the other's while four days of
// buffered readings arrive in seconds). The late half's readings land on minutes older than
// accounting's 25-hour ring: every one of them must still reach the history store, at every step.

const logger = pino({ level: 'silent' })
const SITE = 'ningde'
const DAYS = 4
const READING_S = 300
const LAG_H = 30
const MACHINES = [
  { line: 'coating-1', id: 'oven-1', ratedW: 250_000, baseW: 182_000, late: false },
  { line: 'coating-1', id: 'oven-2', ratedW: 250_000, baseW: 171_000, late: true },
  { line: 'calendering-1', id: 'press-1', ratedW: 120_000, baseW: 86_000, late: false },
  { line: 'cooling', id: 'chiller-1', ratedW: 200_000, baseW: 141_000, late: true },
]

function plantModel(): PlantModel {
  return {
    version: 1,
    sites: [
      {
        id: SITE,
        name: 'Ningde',
        timezone: 'Asia/Shanghai',
        latenessS: 60,
        carbon: { gridGPerKWh: 600, residualMixGPerKWh: 680, greenShare: 0.266 },
        meters: { pv: [], grid: [] },
        areas: [
          {
            id: 'cells',
            name: 'Cells',
            lines: [...new Set(MACHINES.map((m) => m.line))].map((line) => ({
              id: line,
              name: line,
              equipment: MACHINES.filter((m) => m.line === line).map((m) => ({
                id: m.id,
                name: m.id,
                type: 'machine',
                ratedPowerW: m.ratedW,
                devices: [`dev-${m.id}`],
                idle: { offBelowW: m.ratedW * 0.01, runAboveW: m.ratedW * 0.25, afterS: 600 },
              })),
            })),
          },
        ],
      },
    ],
  } as PlantModel
}

/** Whole watts, a daily shape: every interval between readings carries energy. */
const powerAt = (index: number, t: number) =>
  Math.round(MACHINES[index]!.baseW * (1 + 0.15 * Math.sin((2 * Math.PI * (t / 3600 + index * 3)) / 24)))

/** One hour of a device's readings as one pack (a device flushing its buffer). */
function hourPack(index: number, hourS: number): { topic: string; payload: Buffer } {
  const id = `dev-${MACHINES[index]!.id}`
  const records = []
  for (let t = hourS; t < hourS + 3600; t += READING_S)
    records.push({ n: 'power', u: 'W', t: t - hourS, v: powerAt(index, t) })
  return {
    topic: deviceTopic(SITE, id, 'up'),
    payload: Buffer.from(JSON.stringify([{ bn: `urn:dev:${id}:`, bt: hourS, ...records[0] }, ...records.slice(1)])),
  }
}

/**
 * Energy (Wh) of a device from `fromS` to `toS`: each interval between two readings holds their
 * trapezoid, spread evenly over its time (CONTRACT.md §7).
 */
function energyWh(index: number, fromS: number, toS: number): number {
  let wh = 0
  for (let t = Math.floor(fromS / READING_S) * READING_S; t < toS; t += READING_S) {
    const overlapS = Math.min(t + READING_S, toS) - Math.max(t, fromS)
    if (overlapS <= 0) continue
    wh += ((powerAt(index, t) + powerAt(index, t + READING_S)) / 2) * (overlapS / 3600)
  }
  return wh
}

describe('devices more than a day behind the rest of their site', () => {
  let ctx: Awaited<ReturnType<typeof openBusAndDir>>
  beforeAll(async () => {
    ctx = await openBusAndDir('plantwatt-lagging-')
  })
  afterAll(async () => {
    await ctx?.close()
  })

  it('puts every late reading in the history store, at every step', async () => {
    const plant = new PlantIndex(plantModel())
    // Four days ending an hour ago: the history store takes rows up to maxAgeS behind the wall clock.
    const startS = Math.floor(Date.now() / 3_600_000) * 3600 - (DAYS * 24 + 1) * 3600
    const hours = DAYS * 24
    const clockMs = (startS + hours * 3600) * 1000
    const journal = await IngestJournal.open(join(ctx.dir, 'journal'), { now: () => clockMs })
    const historyStore = new HistoryStore({ path: join(ctx.dir, 'history'), maxAgeS: 7 * 86_400 })
    const processor = new Processor({
      plant,
      bus: ctx.bus,
      logger,
      journal,
      historyStore,
      checkpointPath: join(ctx.dir, 'processor', 'checkpoint.v8'),
      now: () => clockMs,
      publishIntervalMs: 20,
      checkpointIntervalMs: 50,
    })
    await processor.start()
    const queries = await QueryClient.open(ctx.bus)
    const append = (pack: { topic: string; payload: Buffer }) =>
      new Promise<void>((resolve, reject) =>
        journal.append(pack.topic, pack.payload, (error) => (error ? reject(error) : resolve())),
      )
    // Hour k of the punctual devices with hour k − LAG_H of the late ones, then the late ones' rest.
    for (let k = 0; k < hours + LAG_H; k++) {
      const packs: Promise<void>[] = []
      MACHINES.forEach((machine, index) => {
        const hour = machine.late ? k - LAG_H : k
        if (hour >= 0 && hour < hours) packs.push(append(hourPack(index, startS + hour * 3600)))
      })
      await Promise.all(packs)
    }
    expect(processor.state.accounting.counters.coldPlaced).toBeGreaterThan(0)
    expect(processor.state.accounting.counters.beyondHistory).toBe(0)

    // What GET /api/v1/energy answers (the store, and the last 25 h as sent) against the readings'
    // own energy, for each equipment at every step and for the site by the hour. The late devices'
    // last revisions go out once the site clock has stood still for a second (nothing moves it
    // after the last punctual reading): polled, with a bound.
    const lastS = startS + hours * 3600 - READING_S
    const toMs = (startS + hours * 3600) * 1000
    const checks: { scope: string; step: BucketStep; lengthS: number; machines: number[] }[] = []
    for (const [index, machine] of MACHINES.entries()) {
      const scope = `${SITE}/cells/${machine.line}/${machine.id}`
      for (const [step, lengthS] of [
        ['1m', 60],
        ['15m', 900],
        ['1h', 3600],
        ['1d', 86_400],
      ] as const)
        checks.push({ scope, step, lengthS, machines: [index] })
    }
    checks.push({ scope: SITE, step: '1h', lengthS: 3600, machines: MACHINES.map((_, i) => i) })
    const wrongRows = async () => {
      const wrong: unknown[] = []
      for (const { scope, step, lengthS, machines } of checks) {
        const rows = await queries.call<{ t: number; energyWh: number }[]>(
          'energy',
          // From a day before: the first local day began before the first reading.
          { scope, step, fromMs: (startS - 86_400) * 1000, toMs },
          30_000,
        )
        // Every bucket from the first reading to the last is there.
        if (rows[0]!.t > startS * 1000 || rows.at(-1)!.t + lengthS * 1000 < lastS * 1000)
          wrong.push([scope, step, 'missing'])
        for (const row of rows) {
          const from = Math.max(row.t / 1000, startS)
          const want = machines.reduce((wh, i) => wh + energyWh(i, from, Math.min(row.t / 1000 + lengthS, lastS)), 0)
          // The ring keeps each equipment's minute in whole mWh: up to 0.5 mWh of rounding per
          // machine and minute of the bucket (a day bucket: up to 0.72 Wh a machine), whatever
          // hour of the wall clock the test's days start at. A lost late reading is watt-hours.
          const rounding = 0.01 + 0.0005 * (lengthS / 60) * machines.length
          if (Math.abs(row.energyWh - want) > rounding)
            wrong.push([scope, step, new Date(row.t).toISOString(), row.energyWh, want])
        }
      }
      return wrong
    }
    const deadline = Date.now() + 20_000
    let wrong = await wrongRows()
    while (wrong.length > 0 && Date.now() < deadline) {
      await processor.historyWritten()
      wrong = await wrongRows()
    }
    expect(wrong.slice(0, 20)).toEqual([])
    await queries.close()
    await processor.stop()
    await journal.close()
    await historyStore.close()
  }, 240_000)
})
