import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BUCKETS_FILTER, type BucketUpdate, type Bus, createAedesBus, decodeMessage, QueryClient } from '@plantwatt/bus'
import { BUCKET_STEPS, deviceTopic } from '@plantwatt/contract'
import { HistoryStore } from '@plantwatt/history-store'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import { Aedes } from 'aedes'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { Processor } from '../src/processor.ts'

// Revisions that follow material change (CONTRACT.md §5 v1.1, issue 14) through the real
// processor, bus and embedded history store: late oven readings (material) and late PV readings
// (they move the site's carbon factor, so every scope's CO2 a little) revise buckets for the
// scopes that moved; the history API (the `energy` query) answers exactly the figures last sent
// for every (scope, step, start).

const plant = new PlantIndex(examplePlant())
const logger = pino({ level: 'silent' })
const SITE = 'yibin'
const START_S = Date.UTC(2025, 0, 5, 16, 0) / 1000
const HOURS = 6
const OVEN_A = '860100000000123'
const OVEN_B = '860100000000124'
const OVEN_C = '860100000000223'
const PV = '860100000000001'

interface Message {
  topic: string
  payload: Buffer
  atS: number
}

function pack(deviceId: string, t: number, name: 'power' | 'energy', value: number): Buffer {
  const record = name === 'power' ? { n: name, u: 'W', v: value } : { n: name, u: 'Wh', s: value }
  return Buffer.from(JSON.stringify([{ bn: `urn:dev:imei:${deviceId}:`, bt: t, ...record }]))
}

/**
 * Ovens report power every minute, the PV meter its energy counter every 5 minutes. Every 7th PV
 * report arrives 4 minutes late (its buckets are revised for the scopes whose CO2 moved enough,
 * the rest rides on the last revision 20 minutes after each bucket's end); oven C's reports of
 * 02:00–02:30 arrive together at 02:35 (an NB-IoT buffer flushed after an outage: buckets past
 * their last revision move materially, sent at once).
 */
function messages(): Message[] {
  const out: Message[] = []
  const up = (id: string) => deviceTopic(SITE, id, 'up')
  let pvWh = 0
  for (let t = START_S, k = 0; t < START_S + HOURS * 3600; t += 60, k++) {
    const hour = (t - START_S) / 3600
    const oven = 90_000 + (k % 11) * 1_000 + (hour > 3 ? 20_000 : 0)
    out.push({ topic: up(OVEN_A), payload: pack(OVEN_A, t, 'power', oven), atS: t })
    const buffered = hour >= 2 && hour < 2.5
    const atC = buffered ? START_S + 2.5 * 3600 + 300 : t
    out.push({ topic: up(OVEN_C), payload: pack(OVEN_C, t, 'power', 70_000 + (k % 7) * 500), atS: atC })
    out.push({ topic: up(OVEN_B), payload: pack(OVEN_B, t, 'power', oven / 2), atS: t })
    if (k % 5 === 0) {
      pvWh += 1_500 + (k % 3) * 200
      const late = (k / 5) % 7 === 3
      out.push({ topic: up(PV), payload: pack(PV, t, 'energy', pvWh), atS: late ? t + 240 : t })
    }
  }
  return out.sort((a, b) => a.atS - b.atS)
}

function feed(journal: IngestJournal, clock: { ms: number }, list: Message[]): Promise<void> {
  return Promise.all(
    list.map(
      (message) =>
        new Promise<void>((resolve, reject) => {
          clock.ms = message.atS * 1000
          journal.append(message.topic, message.payload, (error) => (error ? reject(error) : resolve()))
        }),
    ),
  ).then(() => undefined)
}

type Row = { t: number; energyWh: number; co2G: number; co2MarketG: number; idleWh: number; peakW: number }

describe('revisions that follow material change, through the processor and the history store', () => {
  let dir: string
  let aedes: Aedes
  let bus: Bus
  let queries: QueryClient
  const sent = new Map<string, BucketUpdate['buckets'][number]>()
  let events = 0
  let revisions = 0

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-revisions-'))
    aedes = await Aedes.createBroker()
    bus = createAedesBus(aedes)
    await bus.subscribe(BUCKETS_FILTER, (_topic, payload) => {
      for (const bucket of decodeMessage<BucketUpdate>(payload).buckets) {
        events++
        if (bucket.revision > 0) revisions++
        const key = `${bucket.scope} ${bucket.step} ${bucket.t}`
        const held = sent.get(key)
        // Revisions of one bucket only go up (§5).
        if (held !== undefined) expect(bucket.revision, key).toBeGreaterThan(held.revision)
        sent.set(key, bucket)
      }
    })
    queries = await QueryClient.open(bus)
  })

  afterAll(async () => {
    await queries?.close()
    await bus?.close()
    await new Promise<void>((resolve) => aedes.close(() => resolve()))
    await rm(dir, { recursive: true, force: true })
  })

  it('answers exactly the figures last sent for every scope, step and start', async () => {
    const clock = { ms: START_S * 1000 }
    const journal = await IngestJournal.open(join(dir, 'journal'), { now: () => clock.ms })
    const historyStore = new HistoryStore({ path: join(dir, 'history'), maxAgeS: 7 * 86_400 })
    const processor = new Processor({
      plant,
      bus,
      logger,
      journal,
      historyStore,
      checkpointPath: join(dir, 'checkpoint.v8'),
      now: () => clock.ms,
      publishIntervalMs: 20,
      checkpointIntervalMs: 3_600_000,
    })
    await processor.start()
    try {
      const list = messages()
      // Ten minutes of receipt time at a time, each on the bus and in the store before the next.
      for (let from = 0; from < list.length; ) {
        const end = list[from]!.atS + 600
        let to = from
        while (to < list.length && list[to]!.atS < end) to++
        await feed(journal, clock, list.slice(from, to))
        await processor.historyWritten()
        from = to
      }
      await processor.historyWritten()
      const scopes = plant.sites.get(SITE)!.scopes.map((node) => node.scope)
      let compared = 0
      for (const scope of scopes) {
        for (const step of BUCKET_STEPS) {
          const rows = (await queries.call<Row[]>('energy', { scope, step, fromMs: 0, toMs: 2 ** 52 }, 30_000)) as Row[]
          for (const row of rows) {
            const last = sent.get(`${scope} ${step} ${row.t}`)
            if (last === undefined) continue // still open: accounting's answer, not the store's
            const { scope: _s, step: _st, revision: _r, ...figures } = last
            expect(row, `${scope} ${step} ${row.t}`).toEqual(figures)
            compared++
          }
        }
      }
      expect(compared).toBeGreaterThan(scopes.length * HOURS * 60)
      // Late readings did revise buckets (every scope of this small plant moves materially with
      // them: ovens of 70 kW and more; accounting's revisions.test.ts shows the scopes left out).
      expect(revisions).toBeGreaterThan(0)
      // Issue 14: bucket events at most twice the slots.
      expect(events).toBeLessThan(2 * sent.size)
    } finally {
      await processor.stop()
      await journal.close()
      await historyStore.close()
    }
  }, 180_000)
})
