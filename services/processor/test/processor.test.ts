import {
  type Bus,
  createAedesBus,
  decodeLiveBatch,
  encodeMessage,
  LIVE_FILTER,
  LIVE_INTEREST_TOPIC,
  LIVE_SYNC_TOPIC,
  type LiveBatch,
  type LiveInterest,
  QueryClient,
} from '@plantwatt/bus'
import { PlantIndex } from '@plantwatt/plant'
import { Aedes } from 'aedes'
import pino from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { Processor } from '../src/processor.ts'

// The processor on a real in-process bus: readings in as the broker delivers them, live
// figures out as the gateway receives them, for the scopes a gateway announced it watches (all of
// them here). Wall time is injected: NOW_MS, running on as the test does.

const plant = new PlantIndex(examplePlant())
const NOW_MS = 1_732_250_000_000
const DEVICE = '860100000000123'
const UP = `sites/yibin/devices/${DEVICE}/up`

describe('processor', () => {
  let broker: Aedes
  let bus: Bus
  let processor: Processor
  let updates: LiveBatch[]
  let waiters: ((update: LiveBatch) => void)[]
  let startedAt: number
  const allScopes = plant.sites.get('yibin')!.scopes.map((node) => node.scope)
  const isFull = (update: LiveBatch) => update.scopes.length === allScopes.length

  const nextUpdate = (predicate: (update: LiveBatch) => boolean) =>
    new Promise<LiveBatch>((resolve) => {
      const found = updates.find(predicate)
      if (found) return resolve(found)
      waiters.push((update) => predicate(update) && resolve(update))
    })

  beforeEach(async () => {
    startedAt = Date.now()
    updates = []
    waiters = []
    broker = await Aedes.createBroker()
    bus = createAedesBus(broker)
    await bus.subscribe(LIVE_FILTER, (_topic, payload) => {
      const update = decodeLiveBatch(payload)
      updates.push(update)
      for (const waiter of waiters) waiter(update)
    })
    processor = new Processor({
      plant,
      bus,
      logger: pino({ level: 'silent' }),
      now: () => NOW_MS + (Date.now() - startedAt),
      publishIntervalMs: 20,
    })
    await processor.start()
    // A gateway that watches every scope of the plant.
    const watchAll: LiveInterest = {
      gateway: 'test-gateway',
      kind: 'full',
      version: 1,
      leaseMs: 60_000,
      scopes: allScopes,
    }
    await bus.publish(LIVE_INTEREST_TOPIC, encodeMessage(watchAll), { qos: 1 })
  })

  afterEach(async () => {
    await processor.stop()
    await bus.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
  })

  it('publishes every watched scope at once when a gateway announces them, and again on a sync request', async () => {
    const first = await nextUpdate(isFull)
    expect(first.scopes.map((figures) => figures.scope)).toEqual(allScopes)
    updates.length = 0
    await bus.publish(LIVE_SYNC_TOPIC, Buffer.from('{}'))
    expect((await nextUpdate(isFull)).site).toBe('yibin')
  })

  it('applies a SenML power reading to its equipment, line, area and site', async () => {
    const pack = [{ bn: `urn:dev:imei:${DEVICE}:`, bt: NOW_MS / 1000 - 5, n: 'power', u: 'W', v: 1500 }]
    await bus.publish(UP, Buffer.from(JSON.stringify(pack)))
    const update = await nextUpdate((u) => u.scopes.some((f) => f.powerW === 1500))
    expect(update.at).toBe(NOW_MS - 5000)
    expect(update.scopes.map((f) => [f.scope, f.powerW])).toEqual([
      ['yibin/electrode/coating-1/coater-1-oven', 1500],
      ['yibin/electrode/coating-1', 1500],
      ['yibin/electrode', 1500],
      ['yibin', 1500],
    ])
    // The state follows detection, which takes readings in time order once the site clock has
    // passed them by latenessS (CONTRACT.md §7): one reading alone does not decide it yet.
    // Equipment states are asked for (GET /api/v1/plant), not streamed.
    const queries = await QueryClient.open(bus)
    const equipment = await queries.call<Record<string, unknown>>('equipment', {})
    await queries.close()
    expect(equipment['yibin/electrode/coating-1/coater-1-oven']).toMatchObject({
      scope: 'yibin/electrode/coating-1/coater-1-oven',
      state: 'unknown',
      powerW: 1500,
      thresholds: { origin: 'given', offBelowW: 2000, runAboveW: 60000, afterS: 300 },
    })
  })

  it('counts rejected records per device and reason, keeping the good ones', async () => {
    const pack = [
      { n: 'power', u: 'W', v: 70_000 },
      { n: 'power', u: 'kW', v: 1 },
      { n: 'power', u: 'W', v: 3_000_000 }, // above 10 × ratedPowerW
      { n: 'power', u: 'W', t: NOW_MS / 1000 + 3600, v: 1 }, // an hour in the future
    ]
    await bus.publish(UP, Buffer.from(JSON.stringify(pack)))
    await bus.publish(UP, Buffer.from('not senml'))
    await nextUpdate((u) => u.scopes.some((f) => f.powerW === 70_000))
    expect(processor.devices.get(DEVICE)).toMatchObject({
      accepted: 1,
      rejected: { unit_mismatch: 1, out_of_range: 1, future: 1, malformed: 1 },
    })
    expect(processor.stats).toMatchObject({ messages: 2, readingsAccepted: 1, readingsRejected: 4 })
  })

  it('counts, and does not apply, a reading for a device under the wrong site', async () => {
    await bus.publish(`sites/elsewhere/devices/${DEVICE}/up`, Buffer.from('[{"n":"power","v":5}]'))
    await bus.publish('sites/yibin/devices/nobody/up', Buffer.from('[{"n":"power","v":5}]'))
    expect(processor.devices.get(DEVICE)?.rejected).toEqual({ wrong_site: 1 })
    expect(processor.devices.has('nobody')).toBe(false)
    expect(processor.stats.unknownDeviceMessages).toBe(1)
    expect(processor.stats.readingsAccepted).toBe(0)
  })
})
