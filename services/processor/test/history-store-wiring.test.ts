import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BUCKETS_FILTER, type BucketUpdate, type Bus, createAedesBus, decodeMessage, QueryClient } from '@plantwatt/bus'
import type { BucketStep } from '@plantwatt/contract'
import { BUCKET_STEPS, deviceTopic } from '@plantwatt/contract'
import { HistoryStore } from '@plantwatt/history-store'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import { Aedes } from 'aedes'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { Processor } from '../src/processor.ts'

// Issue 13: the processor writes every bucket it sends on the `buckets` channel into the embedded
// history store (<data-dir>/history), and GET /api/v1/energy (the `energy` query the gateway asks
// over the bus) answers from it, any range and step within retention (CONTRACT.md §6), surviving a
// restart; revisions only go up, also when the journal is replayed after a restore. Real files
// (journal, checkpoint, LMDB), a real in-process bus, the real accounting.

const plant = new PlantIndex(examplePlant())
const logger = pino({ level: 'silent' })
const SITE = 'yibin'
// Monday 2025-01-06 00:00 in Yibin (UTC+8).
const START_S = Date.UTC(2025, 0, 5, 16, 0) / 1000
const DAY_S = 86_400

interface Message {
  topic: string
  payload: Buffer
  /** When the broker received it, s. */
  atS: number
}

function pack(deviceId: string, t: number, watts: number): Buffer {
  return Buffer.from(JSON.stringify([{ bn: `urn:dev:imei:${deviceId}:`, bt: t, n: 'power', u: 'W', v: watts }]))
}

/**
 * Three devices reporting power every 5 minutes for `days`; every 50th report of one oven device
 * arrives 40 minutes late, a surge of 30 kW, so closed buckets are revised materially (CONTRACT.md §5, §7).
 */
function messages(days: number): Message[] {
  const out: Message[] = []
  const up = (id: string) => deviceTopic(SITE, id, 'up')
  for (let t = START_S, k = 0; t < START_S + days * DAY_S; t += 300, k++) {
    const hour = ((t - START_S) / 3600) % 24
    const oven = hour >= 8 && hour < 20 ? 120_000 + (k % 13) * 1_000 : 2_500 + (k % 5) * 100
    out.push({ topic: up('860100000000123'), payload: pack('860100000000123', t, oven), atS: t })
    out.push({ topic: up('860100000000223'), payload: pack('860100000000223', t, 80_000 + (k % 7) * 500), atS: t })
    const late = k % 50 === 0
    // A late report is a short surge: it changes its minutes' energy by far more than §5's 0.1 Wh.
    const watts = late ? oven / 2 + 30_000 : oven / 2
    out.push({ topic: up('860100000000124'), payload: pack('860100000000124', t, watts), atS: late ? t + 2_400 : t })
  }
  return out.sort((a, b) => a.atS - b.atS)
}

/** Appends messages as the broker would, each received at its time; resolves once all are durable. */
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

/**
 * Feeds in slices of 30 minutes of receipt time, each sent on the bus and written to the store
 * before the next, as a running plant would (the processor publishes several times a second; fed
 * at once, days would pass the 25-hour ring between two publish rounds).
 */
async function feedInSlices(journal: IngestJournal, clock: { ms: number }, list: Message[], processor: Processor) {
  let from = 0
  while (from < list.length) {
    const end = list[from]!.atS + 1800
    let to = from
    while (to < list.length && list[to]!.atS < end) to++
    await feed(journal, clock, list.slice(from, to))
    await processor.historyWritten()
    from = to
  }
}

type Row = {
  t: number
  revision?: number
  energyWh: number
  co2G: number
  co2MarketG: number
  idleWh: number
  peakW: number
}
const keyOf = (scope: string, step: string, t: number) => `${scope} ${step} ${t}`

describe('processor with the embedded history store', () => {
  let dir: string
  let aedes: Aedes
  let bus: Bus
  let queries: QueryClient
  /** The newest revision of every bucket sent on the `buckets` channel, and every revision seen per key. */
  const sent = new Map<string, Row & { scope: string; step: BucketStep }>()
  const revisionsSent = new Map<string, number[]>()

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-history-wiring-'))
    aedes = await Aedes.createBroker()
    bus = createAedesBus(aedes)
    await bus.subscribe(BUCKETS_FILTER, (_topic, payload) => {
      for (const bucket of decodeMessage<BucketUpdate>(payload).buckets) {
        const key = keyOf(bucket.scope, bucket.step, bucket.t)
        const list = revisionsSent.get(key) ?? []
        list.push(bucket.revision)
        revisionsSent.set(key, list)
        const held = sent.get(key)
        if (held === undefined || bucket.revision >= (held.revision ?? 0)) sent.set(key, bucket)
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

  async function startProcessor(name: string, clock: { ms: number }, publishIntervalMs = 20) {
    const journal = await IngestJournal.open(join(dir, name, 'journal'), { now: () => clock.ms })
    const historyStore = new HistoryStore({ path: join(dir, name, 'history'), maxAgeS: 7 * DAY_S })
    const processor = new Processor({
      plant,
      bus,
      logger,
      journal,
      historyStore,
      checkpointPath: join(dir, name, 'checkpoint.v8'),
      now: () => clock.ms,
      publishIntervalMs,
      checkpointIntervalMs: 3_600_000,
    })
    await processor.start()
    return { journal, processor, historyStore }
  }

  const energy = (scope: string, step: BucketStep, fromMs = 0, toMs = Number.MAX_SAFE_INTEGER) =>
    queries.call<Row[] | { tooMany: true; coarserStep: BucketStep | null }>(
      'energy',
      { scope, step, fromMs, toMs },
      30_000,
    )

  it('answers 35 simulated days at every step from the store after a restart, the same buckets it sent', async () => {
    const clock = { ms: START_S * 1000 }
    const list = messages(35)
    const first = await startProcessor('month', clock)
    await feedInSlices(first.journal, clock, list, first.processor)
    await first.processor.stop()
    await first.journal.close()
    await first.historyStore.close()

    const second = await startProcessor('month', clock)
    const siteClockMs = second.processor.state.siteClockMs(SITE)!
    expect(siteClockMs).toBeGreaterThan((START_S + 34 * DAY_S) * 1000)
    for (const scope of plant.sites.get(SITE)!.scopes.map((node) => node.scope)) {
      for (const step of BUCKET_STEPS) {
        const answer = await energy(scope, step)
        expect(Array.isArray(answer), `${scope} ${step}`).toBe(true)
        const rows = answer as Row[]
        // §6: 1-minute buckets for at least the last 7 days of the site clock; the others all 35 days.
        const from = step === '1m' ? siteClockMs - 7 * DAY_S * 1000 + 3_600_000 : 0
        const expected = [...sent.values()]
          .filter((b) => b.scope === scope && b.step === step && b.t >= from)
          .sort((a, b) => a.t - b.t)
        const lastClosed = expected.at(-1)!.t
        const closedRows = rows.filter((row) => row.t >= from && row.t <= lastClosed)
        expect(closedRows.length, `${scope} ${step}`).toBe(expected.length)
        // Exactly the figures last sent (§5), optional ones (savedWh of tuned scopes…) included.
        expect(closedRows, `${scope} ${step}`).toEqual(
          expected.map(({ scope: _scope, step: _step, revision: _revision, ...figures }) => figures),
        )
        // Still the open buckets after the closed ones (accounting's, not yet in the store).
        if (step !== '1d') expect(rows.at(-1)!.t).toBeGreaterThan(lastClosed)
        if (step === '1d') expect(rows.length).toBeGreaterThanOrEqual(35)
        // Pruned to the retention of 1m (with a day of slack for the prune's minute rounding).
        if (step === '1m') expect(rows[0]!.t).toBeGreaterThan(siteClockMs - 8 * DAY_S * 1000)
      }
    }
    // The store holds what the accounting ring (25 h) no longer does: the first day.
    const firstDay = await energy(SITE, '1d', START_S * 1000, (START_S + DAY_S) * 1000)
    expect(firstDay).toHaveLength(1)
    expect((firstDay as Row[])[0]!.energyWh).toBeGreaterThan(0)
    await second.processor.stop()
    await second.journal.close()
    await second.historyStore.close()
  }, 240_000)

  it('has every bucket emitted before a checkpoint in the store once the checkpoint is written', async () => {
    const clock = { ms: START_S * 1000 }
    // Buckets go out only when the checkpoint takes them (no publish round meanwhile).
    const barrier = await startProcessor('barrier', clock, 3_600_000)
    await feed(barrier.journal, clock, messages(0.1))
    // The store is busy with a large batch written before: the processor's writes queue behind it.
    const busy: Parameters<HistoryStore['write']>[0][number][] = []
    for (let i = 0; i < 200_000; i++) {
      busy.push({
        scope: 'elsewhere',
        step: '1m',
        t: START_S * 1000 + i * 60_000,
        revision: 0,
        energyWh: 1,
        co2G: 0,
        co2MarketG: 0,
        idleWh: 0,
        peakW: 0,
      })
    }
    const busyWrite = barrier.historyStore.write(busy)
    // No wait for the store here: the checkpoint is what must wait (issue 13 step 4).
    await barrier.processor.checkpoint()
    const rowsAt = async () => {
      let n = 0
      for (const scope of plant.sites.get(SITE)!.scopes.map((node) => node.scope)) {
        for (const step of BUCKET_STEPS)
          n += (await barrier.historyStore.range(scope, step, 0, 2 ** 52, 100_001)).length
      }
      return n
    }
    const atCheckpoint = await rowsAt()
    expect(atCheckpoint).toBeGreaterThan(500)
    // What the checkpoint covers was in the store already: waiting for every write adds nothing.
    await barrier.processor.historyWritten()
    await busyWrite
    expect(await rowsAt()).toBe(atCheckpoint)
    await barrier.processor.stop()
    await barrier.journal.close()
    await barrier.historyStore.close()
  })

  it('keeps revisions going up when the journal is replayed after a restore, and lands the newest figures', async () => {
    sent.clear()
    revisionsSent.clear()
    const list = messages(3)
    const clock = { ms: START_S * 1000 }
    const whole = await startProcessor('whole', clock)
    await feedInSlices(whole.journal, clock, list, whole.processor)
    await whole.processor.stop()
    await whole.journal.close()
    const expected = new Map<string, Row>()
    for (const scope of plant.sites.get(SITE)!.scopes.map((node) => node.scope)) {
      for (const step of BUCKET_STEPS) {
        for (const row of await whole.historyStore.range(scope, step, 0, Number.MAX_SAFE_INTEGER, 100_001)) {
          expected.set(keyOf(scope, step, row.t), row)
        }
      }
    }
    await whole.historyStore.close()
    sent.clear()
    revisionsSent.clear()

    const half = Math.floor(list.length / 2)
    const crashed = await startProcessor('crashed', clock)
    await feedInSlices(crashed.journal, clock, list.slice(0, half), crashed.processor)
    await crashed.processor.checkpoint()
    // Acknowledged and written to the store, not in the checkpoint: then the process dies.
    await feedInSlices(crashed.journal, clock, list.slice(half), crashed.processor)
    await crashed.processor.historyWritten()
    crashed.journal.onDurable = () => {}
    const beforeCrash = new Map<string, number>()
    await crashed.historyStore.close()

    const reopened = new HistoryStore({ path: join(dir, 'crashed', 'history'), maxAgeS: 7 * DAY_S })
    for (const scope of plant.sites.get(SITE)!.scopes.map((node) => node.scope)) {
      for (const step of BUCKET_STEPS) {
        for (const row of await reopened.range(scope, step, 0, Number.MAX_SAFE_INTEGER, 100_001)) {
          beforeCrash.set(keyOf(scope, step, row.t), row.revision)
        }
      }
    }
    await reopened.close()
    expect([...beforeCrash.values()].some((revision) => revision > 0)).toBe(true)
    await crashed.journal.close()

    const restarted = await startProcessor('crashed', clock)
    await restarted.processor.stop()
    // The replay sends buckets at revisions counted from the checkpoint, at or below the store's;
    // where their figures differed, the sink sent them again above (history-sink-conflicts.test.ts).
    // Since accounting sends what its ring is about to drop, the replay's figures equal the stored
    // ones here and no conflict arises; the checks below hold either way.
    await restarted.journal.close()
    let compared = 0
    for (const [key, revisionBefore] of beforeCrash) {
      const [scope, step, t] = key.split(' ') as [string, BucketStep, string]
      const [row] = await restarted.historyStore.range(scope, step, Number(t), Number(t) + 1, 1)
      expect(row!.revision, key).toBeGreaterThanOrEqual(revisionBefore)
      const want = expected.get(key)
      if (want === undefined) continue
      // The figures a run without a crash ends with, whatever the revisions counted.
      const { revision: _r1, ...figures } = row!
      const { revision: _r2, ...wantFigures } = want as Row & { revision: number }
      expect(figures, key).toEqual(wantFigures)
      // What the bus sent last for this bucket carries the same figures, above the stored revision before.
      const last = sent.get(key)
      if (last !== undefined && (last.energyWh !== figures.energyWh || last.co2G !== figures.co2G)) {
        throw new Error(`${key}: the bus last sent other figures than the store holds`)
      }
      compared++
    }
    expect(compared).toBeGreaterThan(1000)
    await restarted.historyStore.close()
  }, 120_000)
})
