import {
  type Bus,
  createAedesBus,
  decodeLiveBatch,
  encodeMessage,
  LIVE_BATCH_INTERVAL_MS,
  LIVE_FILTER,
  LIVE_INTEREST_TOPIC,
  type LiveBatch,
} from '@plantwatt/bus'
import { ReadingPipeline } from '@plantwatt/pipeline'
import { PlantIndex } from '@plantwatt/plant'
import { Aedes } from 'aedes'
import pino from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { LivePublisher, pipelineLiveSource } from '../src/live-publisher.ts'

// The processor's live publisher on a real bus, fed by a real reading pipeline; wall time is the
// test's (`now`), ticks are called by hand. What the gateway receives must never carry a site
// clock ahead of the figures of a watched scope that changed: the gateway would send that scope's
// subscribers a frame with the new clock and the old figures, and its one-frame-a-second pacing
// would then hold the real figures a second more (issue 16: live frames up to 2 s after a reading).

const plant = new PlantIndex(examplePlant())
const NOW_MS = 1_796_600_000_000
const DEVICE = '860100000000123'
const UP = `sites/yibin/devices/${DEVICE}/up`
const SITE = 'yibin'
const EQUIPMENT = 'yibin/electrode/coating-1/coater-1-oven'

describe('LivePublisher', () => {
  let broker: Aedes
  let bus: Bus
  let batches: LiveBatch[]
  let waiters: (() => boolean)[]
  let now: number
  let pipeline: ReadingPipeline
  let publisher: LivePublisher
  /** The publisher's pacing timer, fired by the test at the test's wall time. */
  let timer: { fn: () => void; delayMs: number } | undefined

  const batchWhere = (predicate: (batch: LiveBatch) => boolean) =>
    new Promise<LiveBatch>((resolve) => {
      const check = () => {
        const found = batches.find(predicate)
        if (found) resolve(found)
        return found !== undefined
      }
      if (!check()) waiters.push(check)
    })
  const powerOf = (batch: LiveBatch, scope: string) => batch.scopes.find((figures) => figures.scope === scope)?.powerW

  beforeEach(async () => {
    batches = []
    waiters = []
    now = NOW_MS
    broker = await Aedes.createBroker()
    bus = createAedesBus(broker)
    await bus.subscribe(LIVE_FILTER, (_topic, payload) => {
      batches.push(decodeLiveBatch(payload))
      waiters = waiters.filter((waiter) => !waiter())
    })
    pipeline = new ReadingPipeline(plant)
    timer = undefined
    publisher = new LivePublisher({
      plant,
      bus,
      logger: pino({ level: 'silent' }),
      now: () => now,
      schedule: (fn, delayMs) => {
        const armed = { fn, delayMs }
        timer = armed
        return () => {
          if (timer === armed) timer = undefined
        }
      },
      source: pipelineLiveSource(pipeline),
    })
    await publisher.start()
  })

  afterEach(async () => {
    await bus.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
  })

  it('sends a moved site clock only with the figures of the watched scopes that changed', async () => {
    // A gateway starts watching the site and one equipment: their figures at once (the snapshots).
    const interest = { gateway: 'g1', kind: 'full', version: 1, leaseMs: 60_000, scopes: [SITE, EQUIPMENT] }
    await bus.publish(LIVE_INTEREST_TOPIC, encodeMessage(interest), { qos: 1 })
    await batchWhere((batch) => batch.scopes.length === 2)

    // Half a second later a reading moves the site clock and both scopes' power; the scopes were
    // sent less than a second ago, so they wait for their second.
    now += 500
    pipeline.ingest(UP, Buffer.from('[{"n":"power","u":"W","v":1500}]'), now)
    for (let tick = 0; tick < 3; tick++) {
      now += 200
      publisher.tick()
    }
    const fresh = await batchWhere((batch) => powerOf(batch, EQUIPMENT) === 1500)
    expect(powerOf(fresh, SITE)).toBe(1500)
    expect(fresh.at).toBe(NOW_MS + 500)
    // Nothing before it told the gateway of the new clock without the new figures.
    const before = batches.slice(0, batches.indexOf(fresh))
    expect(before.filter((batch) => batch.at !== null)).toEqual([])
  })

  it('sends every changed watched scope of a site together with the clock, however their snapshots were phased', async () => {
    const other = 'yibin/electrode/coating-1'
    const interest = { gateway: 'g1', kind: 'full', version: 1, leaseMs: 60_000, scopes: [EQUIPMENT] }
    await bus.publish(LIVE_INTEREST_TOPIC, encodeMessage(interest), { qos: 1 })
    await batchWhere((batch) => batch.scopes.length === 1)
    // A second scope watched half a second later: its own snapshot at once.
    now += 500
    const more = { gateway: 'g1', kind: 'add', version: 2, leaseMs: 60_000, scopes: [other] }
    await bus.publish(LIVE_INTEREST_TOPIC, encodeMessage(more), { qos: 1 })
    await batchWhere((batch) => batch.scopes.some((figures) => figures.scope === other))
    // Readings every 300 ms for 5 s: each batch that moves the clock carries both scopes' newest figures.
    let power = 1000
    for (let step = 0; step < 25; step++) {
      now += 200
      if (step % 3 === 0) pipeline.ingest(UP, Buffer.from(`[{"n":"power","u":"W","v":${++power}}]`), now)
      publisher.tick()
    }
    now += 1200
    publisher.tick()
    const last = await batchWhere((batch) => powerOf(batch, EQUIPMENT) === power)
    const moving = batches.filter((batch) => batch.at !== null)
    expect(moving.length).toBeGreaterThanOrEqual(4)
    for (const batch of moving) {
      expect(powerOf(batch, EQUIPMENT)).toBeDefined()
      expect(powerOf(batch, other)).toBe(powerOf(batch, EQUIPMENT))
    }
    expect(powerOf(last, other)).toBe(power)
  })

  it('paces each site at LIVE_BATCH_INTERVAL_MS, sent the moment it is up, and answers new interests under the clock last sent', async () => {
    const other = 'yibin/electrode/coating-1'
    const interest = { gateway: 'g1', kind: 'full', version: 1, leaseMs: 60_000, scopes: [EQUIPMENT] }
    await bus.publish(LIVE_INTEREST_TOPIC, encodeMessage(interest), { qos: 1 })
    // The site's first answer: its clock as it is (none yet), and the site's pacing starts here.
    const first = await batchWhere((batch) => batch.scopes.length === 1)
    expect(first).toMatchObject({ answer: true, at: null })
    const startedMs = now

    // A reading 100 ms later; the tick at 200 ms finds the site short of its interval: the timer is
    // armed for the moment it is up, not for a later tick.
    now += 100
    pipeline.ingest(UP, Buffer.from('[{"n":"power","u":"W","v":1500}]'), now)
    now += 100
    publisher.tick()
    expect(timer?.delayMs).toBe(LIVE_BATCH_INTERVAL_MS - 200)
    const countBefore = batches.length
    now = startedMs + LIVE_BATCH_INTERVAL_MS
    timer!.fn()
    const paced = await batchWhere((batch) => powerOf(batch, EQUIPMENT) === 1500)
    expect(batches.indexOf(paced)).toBe(countBefore)
    expect(paced.answer).toBeUndefined()
    expect(paced.at).toBe(startedMs + 100)

    // A newer reading, then a new interest: its answer carries the clock last sent (the gateways'
    // clock moves only with paced batches, which carry every changed scope), flagged, and only the
    // scope asked for; the new reading's figures wait for the site's next interval.
    now += 300
    pipeline.ingest(UP, Buffer.from('[{"n":"power","u":"W","v":1700}]'), now)
    const more = { gateway: 'g1', kind: 'add', version: 2, leaseMs: 60_000, scopes: [other] }
    await bus.publish(LIVE_INTEREST_TOPIC, encodeMessage(more), { qos: 1 })
    const answer = await batchWhere((batch) => batch.scopes.some((figures) => figures.scope === other))
    expect(answer).toMatchObject({ answer: true, at: startedMs + 100 })
    expect(answer.scopes.map((figures) => figures.scope)).toEqual([other])
    now += 100
    publisher.tick()
    expect(timer?.delayMs).toBe(LIVE_BATCH_INTERVAL_MS - 400)
    now = startedMs + 2 * LIVE_BATCH_INTERVAL_MS
    timer!.fn()
    const next = await batchWhere((batch) => powerOf(batch, EQUIPMENT) === 1700)
    expect(next.answer).toBeUndefined()
    expect(next.at).toBe(startedMs + LIVE_BATCH_INTERVAL_MS + 300)
    expect(powerOf(next, other)).toBe(1700)
  })
})
