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

// Issue 13 done-when: a reading 3 days late revises its buckets at every step, in the store
// (GET /api/v1/energy, the `energy` query the gateway asks over the bus) and on the `buckets`
// channel (what the gateway relays to WebSocket subscribers). The minutes it lands on are older
// than accounting's 25-hour ring: their columns come back from the processor's state store.
// Real files (journal, state store, history store), a real in-process bus, the real accounting.

const plant = new PlantIndex(examplePlant())
const logger = pino({ level: 'silent' })
const SITE = 'yibin'
const OVEN = 'yibin/electrode/coating-1/coater-1-oven'
const LINE = 'yibin/electrode/coating-1'
// Monday 2025-01-06 00:00 in Yibin (UTC+8).
const START_S = Date.UTC(2025, 0, 5, 16, 0) / 1000
const DAY_S = 86_400
/** The late device (the oven's second power meter) goes quiet at 12:00 on the first day… */
const QUIET_S = START_S + 12 * 3600
/** …and uploads what it buffered, 12:05–13:00 at 30 kW, three days later. */
const UPLOAD_S = QUIET_S + 3 * DAY_S
const LATE_W = 30_000

interface Message {
  topic: string
  payload: Buffer
  atS: number
}

function pack(deviceId: string, t: number, watts: number): Buffer {
  return Buffer.from(JSON.stringify([{ bn: `urn:dev:imei:${deviceId}:`, bt: t, n: 'power', u: 'W', v: watts }]))
}

function messages(): Message[] {
  const out: Message[] = []
  const up = (id: string) => deviceTopic(SITE, id, 'up')
  for (let t = START_S; t < START_S + 4 * DAY_S; t += 300) {
    out.push({ topic: up('860100000000123'), payload: pack('860100000000123', t, 100_000), atS: t })
    out.push({ topic: up('860100000000223'), payload: pack('860100000000223', t, 80_000), atS: t })
    if (t <= QUIET_S) out.push({ topic: up('860100000000124'), payload: pack('860100000000124', t, LATE_W), atS: t })
  }
  // Three days late, in order, one pack each (a device emptying its buffer).
  for (let t = QUIET_S + 300; t <= QUIET_S + 3600; t += 300) {
    out.push({ topic: up('860100000000124'), payload: pack('860100000000124', t, LATE_W), atS: UPLOAD_S })
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

type Row = {
  t: number
  energyWh: number
  co2G: number
  idleWh: number
  peakW: number
  pvWh?: number
  idleCo2G?: number
}

describe('a reading 3 days late (minutes older than the ring)', () => {
  let dir: string
  let aedes: Aedes
  let bus: Bus
  let queries: QueryClient
  const sent: (BucketUpdate['buckets'][number] & { scope: string })[] = []

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-cold-minutes-'))
    aedes = await Aedes.createBroker()
    bus = createAedesBus(aedes)
    await bus.subscribe(BUCKETS_FILTER, (_topic, payload) => {
      sent.push(...decodeMessage<BucketUpdate>(payload).buckets)
    })
    queries = await QueryClient.open(bus)
  })

  afterAll(async () => {
    await queries?.close()
    await bus?.close()
    await new Promise<void>((resolve) => aedes.close(() => resolve()))
    await rm(dir, { recursive: true, force: true })
  })

  const energy = (scope: string, step: BucketStep, fromMs: number, toMs: number) =>
    queries.call<Row[]>('energy', { scope, step, fromMs, toMs }, 30_000)

  /** The bucket of `step` holding the minute of `tS`, as GET /api/v1/energy answers it. */
  async function bucketAt(scope: string, step: BucketStep, tS: number): Promise<Row> {
    const rows = await energy(scope, step, (tS - DAY_S) * 1000, (tS + 60) * 1000)
    return rows.filter((row) => row.t <= tS * 1000).at(-1)!
  }

  it('revises the 1m, 15m, 1h and 1d buckets it lands on, in the store and on the buckets channel', async () => {
    const clock = { ms: START_S * 1000 }
    const journal = await IngestJournal.open(join(dir, 'journal'), { now: () => clock.ms })
    const historyStore = new HistoryStore({ path: join(dir, 'history'), maxAgeS: 7 * DAY_S })
    const processor = new Processor({
      plant,
      bus,
      logger,
      journal,
      historyStore,
      checkpointPath: join(dir, 'processor', 'checkpoint.v8'),
      now: () => clock.ms,
      publishIntervalMs: 20,
      checkpointIntervalMs: 3_600_000,
    })
    await processor.start()
    const list = messages()
    const late = list.filter((message) => message.atS === UPLOAD_S && message.topic.includes('860100000000124'))
    const before = list.filter((message) => !late.includes(message))
    // Half an hour of receipt time at a time, a checkpoint every 6 hours, as a running plant would.
    for (let from = 0; from < before.length; ) {
      const end = before[from]!.atS + 1800
      let to = from
      while (to < before.length && before[to]!.atS < end) to++
      await feed(journal, clock, before.slice(from, to))
      await processor.historyWritten()
      if (Math.floor(before[from]!.atS / 21_600) !== Math.floor(before[to - 1]!.atS / 21_600))
        await processor.checkpoint()
      from = to
    }
    await processor.checkpoint()
    // 12:30 of the first day: more than three days behind the site clock, far outside the ring.
    const minuteS = QUIET_S + 1800
    expect(processor.state.siteClockMs(SITE)! - minuteS * 1000).toBeGreaterThan(3 * DAY_S * 1000 - 3_600_000)
    const scopes = [OVEN, LINE, SITE]
    const old = new Map<string, Row>()
    for (const scope of scopes)
      for (const step of BUCKET_STEPS) old.set(`${scope} ${step}`, await bucketAt(scope, step, minuteS))
    // The oven's other device draws 100 kW throughout: 1,666.7 Wh a minute, the late one nothing yet.
    const otherWh = 100_000 / 60
    const quietHourBefore = await energy(OVEN, '1m', QUIET_S * 1000, (QUIET_S + 3600) * 1000)
    expect(quietHourBefore).toHaveLength(60)
    for (const row of quietHourBefore) expect(row.energyWh).toBeCloseTo(otherWh, 2)
    const sentBefore = sent.length

    await feed(journal, clock, late)
    await processor.historyWritten()
    // The revisions wait for the checkpoint that holds the changed columns (crash safety).
    await processor.checkpoint()
    await processor.historyWritten()
    expect(processor.state.accounting.counters.coldPlaced).toBeGreaterThan(0)
    expect(processor.state.accounting.counters.beyondHistory).toBe(0)

    // 30 kW for the hour 12:00–13:00 (the trapezoid between 5-minute readings): 30 kWh, 7.5 kWh a quarter.
    const added: Record<BucketStep, number> = { '1m': 500, '15m': 7_500, '1h': 30_000, '1d': 30_000 }
    const revised = sent.slice(sentBefore)
    for (const scope of scopes) {
      for (const step of BUCKET_STEPS) {
        const was = old.get(`${scope} ${step}`)!
        const now = await bucketAt(scope, step, minuteS)
        expect(now.t, `${scope} ${step}`).toBe(was.t)
        expect(now.energyWh - was.energyWh, `${scope} ${step}`).toBeCloseTo(added[step], 6)
        expect(now.co2G, `${scope} ${step}`).toBeGreaterThan(was.co2G)
        // §5's optional figures that reports sum ride along (no PV here, no idle in that hour).
        expect(now.pvWh, `${scope} ${step} pvWh`).toBeCloseTo(was.pvWh!, 9)
        expect(now.idleCo2G, `${scope} ${step} idleCo2G`).toBeCloseTo(was.idleCo2G!, 9)
        // On the buckets channel: the same figures, one revision above the one sent before.
        const event = revised.filter((b) => b.scope === scope && b.step === step && b.t === was.t).at(-1)
        expect(event, `${scope} ${step}`).toBeDefined()
        expect(event!.energyWh).toBeCloseTo(now.energyWh, 9)
        const earlier = sent.slice(0, sentBefore).filter((b) => b.scope === scope && b.step === step && b.t === was.t)
        expect(event!.revision).toBe(Math.max(...earlier.map((b) => b.revision)) + 1)
      }
    }
    // The other oven's scope did not change, so it was not sent again.
    expect(revised.some((b) => b.scope === 'yibin/electrode/coating-2/coater-2-oven')).toBe(false)
    // Every minute of the hour: exact, 500 Wh each from this device, with the other device's energy.
    const quietHour = await energy(OVEN, '1m', QUIET_S * 1000, (QUIET_S + 3600) * 1000)
    expect(quietHour).toHaveLength(60)
    for (const row of quietHour) expect(row.energyWh).toBeCloseTo(otherWh + 500, 2)
    await processor.stop()
    await journal.close()
    await historyStore.close()
  }, 240_000)
})
