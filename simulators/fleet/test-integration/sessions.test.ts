import type { PlantModel } from '@plantwatt/contract'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
// The broker is a service and the fleet a simulator: neither may depend on the other, so this
// test reaches the real broker by path, as the repository's end-to-end tests reach packages.
import { PlantIndex } from '../../../packages/plant/src/index.ts'
import { type Broker, createBroker } from '../../../services/broker/src/broker.ts'
import { generatePlant } from '../src/plant-generator.ts'
import {
  type FleetProcesses,
  fleetDevicesOf,
  runFleetProcesses,
  SessionEngine,
  type SessionEngineOptions,
  summarizeLatency,
} from '../src/sessions/index.ts'

// The session engine and its multi-process runner against the real plantwatt broker
// (createBroker, aedes, device passwords of CONTRACT.md §4) on port 0.

const SECRET = 'fleet-sessions-test-secret'
const HOST = '127.0.0.1'
const LOCAL_ADDRESSES = ['127.0.0.2', '127.0.0.3']

type Logger = Parameters<typeof createBroker>[0]['logger']
const silent = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {} } as Record<string, unknown>
silent.child = () => silent
const logger = silent as unknown as Logger

async function startBroker(
  plant: PlantModel,
  port = 0,
): Promise<{ broker: Broker; port: number; received: () => number }> {
  const broker = await createBroker({ plant: new PlantIndex(plant), deviceSecret: SECRET, logger })
  let received = 0
  broker.bus.subscribe('sites/+/devices/+/up', () => {
    received++
  })
  return { broker, port: await broker.listen({ host: HOST, port }), received: () => received }
}

/** Polls `predicate` every 20 ms; false after `timeoutMs`. */
async function until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (predicate()) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return predicate()
}

describe('session engine against the plantwatt broker', () => {
  const plant = generatePlant({ devices: 200 })
  const devices = fleetDevicesOf(plant)
  let broker: Broker
  let port: number
  let received: () => number
  const engines: SessionEngine[] = []

  const engine = (options: Partial<SessionEngineOptions>) => {
    const created = new SessionEngine({
      devices,
      brokers: [{ host: HOST, port }],
      deviceSecret: SECRET,
      localAddresses: LOCAL_ADDRESSES,
      ...options,
    })
    engines.push(created)
    created.start()
    return created
  }

  beforeAll(async () => {
    ;({ broker, port, received } = await startBroker(plant))
  })

  afterEach(async () => {
    await Promise.all(engines.splice(0).map((created) => created.stop({ drainMs: 0, closeMs: 500 })))
  })

  afterAll(async () => {
    await broker.close()
  })

  it('connects 200 sessions, each with its own credentials, publishes QoS 1 packs and gets every PUBACK', async () => {
    const before = received()
    const sessions = engine({ intervalMs: 500, publishing: false, connectRatePerS: 2000 })
    expect(await until(() => sessions.stats().connected === 200, 10_000)).toBe(true)
    expect(broker.connectedCount()).toBe(200)
    const connected = sessions.stats()
    expect(connected).toMatchObject({ connects: 200, connectAttempts: 200, refused: {}, connectErrors: 0 })
    expect(connected.allConnectedAt).toBeGreaterThanOrEqual(connected.firstConnectAt)

    sessions.setPublishing(true)
    // Three intervals: every session has its turn three times.
    await new Promise((resolve) => setTimeout(resolve, 1600))
    const final = await sessions.stop({ drainMs: 2000 })
    expect(final.published).toBeGreaterThanOrEqual(600)
    expect(final.skipped).toEqual({ notConnected: 0, inflightFull: 0, backpressure: 0, late: 0 })
    expect(final.acked).toBe(final.published)
    expect(final.unackedAtStop).toBe(0)
    expect(final.inflightLost).toBe(0)
    expect(final.disconnects).toBe(0)
    expect(received() - before).toBe(final.published)
    expect(summarizeLatency(sessions.latency).count).toBe(final.acked)
    expect(await until(() => broker.connectedCount() === 0, 5000)).toBe(true)
  })

  it('changes its publish interval on the fly (a benchmark ladder raises the rate without reconnecting)', async () => {
    const sessions = engine({ devices: devices.slice(0, 20), intervalMs: 60_000, publishing: false })
    expect(await until(() => sessions.stats().connected === 20, 10_000)).toBe(true)
    // At 60 s per pack, 20 sessions publish one pack every 3 s; at 100 ms, 200 packs a second.
    sessions.setPublishing(true, 100)
    expect(await until(() => sessions.stats().published >= 60, 3000)).toBe(true)
    // Already publishing: the new interval applies too, continuing the same order of sessions.
    sessions.setPublishing(true, 60_000)
    const slowedAt = sessions.stats().published
    sessions.setPublishing(true, 100)
    expect(await until(() => sessions.stats().published >= slowedAt + 60, 3000)).toBe(true)
    // (Turns skipped as late are not asserted: on a starved machine the engine's 20 ms timer can
    // fall a whole 100 ms round behind, which is the engine's own, tested, behaviour.)
    const final = await sessions.stop({ drainMs: 2000 })
    expect(final.acked).toBe(final.published)
  })

  it('counts every session refused with CONNACK 4 when the secret is wrong', async () => {
    // A long backoff, so each session tries exactly once within the test.
    const sessions = engine({ deviceSecret: 'not-the-secret', backoff: { initialMs: 60_000, maxMs: 60_000 } })
    // The broker slows refusals from one address (up to 1 s each), so allow some seconds.
    expect(await until(() => sessions.stats().refused['4'] === 200, 15_000)).toBe(true)
    const stats = sessions.stats()
    expect(stats).toMatchObject({ connected: 0, connects: 0, published: 0, connectErrors: 0 })
    expect(stats.skipped.notConnected).toBeGreaterThan(0)
  })

  it('sends PINGREQ on an idle session and stays connected', async () => {
    const sessions = engine({ devices: devices.slice(0, 20), publishing: false, keepaliveS: 1 })
    expect(await until(() => sessions.stats().pings >= 40, 5000)).toBe(true)
    expect(sessions.stats()).toMatchObject({ connected: 20, pingTimeouts: 0, disconnects: 0 })
  })
})

describe('reconnecting', () => {
  it('reconnects with backoff after the broker goes away and comes back on the same port', async () => {
    const plant = generatePlant({ devices: 50 })
    const first = await startBroker(plant)
    const sessions = new SessionEngine({
      devices: fleetDevicesOf(plant),
      brokers: [{ host: HOST, port: first.port }],
      deviceSecret: SECRET,
      publishing: false,
      backoff: { initialMs: 200, maxMs: 1000 },
    })
    sessions.start()
    let second: Awaited<ReturnType<typeof startBroker>> | undefined
    try {
      expect(await until(() => sessions.stats().connected === 50, 10_000)).toBe(true)
      await first.broker.close()
      expect(await until(() => sessions.stats().disconnects === 50, 5000)).toBe(true)
      // Refused connects while no broker listens are retried with a growing, jittered delay.
      expect(await until(() => sessions.stats().connectErrors > 0, 5000)).toBe(true)
      second = await startBroker(plant, first.port)
      expect(await until(() => sessions.stats().connected === 50, 10_000)).toBe(true)
      expect(sessions.stats().connects).toBe(100)
      expect(sessions.stats().errors.ECONNREFUSED).toBeGreaterThan(0)
    } finally {
      await sessions.stop({ drainMs: 0, closeMs: 500 })
      await second?.broker.close()
    }
  })
})

describe('multi-process runner', () => {
  it('spreads 300 sessions over 2 worker processes that report as one fleet', async () => {
    const plant = generatePlant({ devices: 300 })
    const { broker, port, received } = await startBroker(plant)
    let fleet: FleetProcesses | undefined
    try {
      fleet = await runFleetProcesses({
        devices: fleetDevicesOf(plant),
        brokers: [{ host: HOST, port }],
        deviceSecret: SECRET,
        workers: 2,
        localAddresses: LOCAL_ADDRESSES,
        publishing: false,
        intervalMs: 500,
        reportIntervalMs: 200,
        maxLifetimeMs: 60_000,
      })
      expect(fleet.pids).toHaveLength(2)
      expect(await fleet.waitFor((stats) => stats.connected === 300, 15_000)).toBe(true)
      expect(broker.connectedCount()).toBe(300)
      expect(fleet.stats().allConnectedAt).toBeGreaterThan(0)

      await fleet.setPublishing(true)
      await new Promise((resolve) => setTimeout(resolve, 1200))
      const running = await fleet.refresh()
      expect(running.processes.map((process) => process.pid).sort()).toEqual([...fleet.pids].sort())
      expect(running.published).toBeGreaterThanOrEqual(500)

      const final = await fleet.stop()
      expect(final).toMatchObject({ sessions: 300, workers: 2, failures: [], connected: 0, unackedAtStop: 0 })
      expect(final.acked).toBe(final.published)
      expect(final.latency.count).toBe(final.acked)
      expect(final.connectLatency.count).toBe(300)
      expect(received()).toBe(final.published)
      expect(await until(() => broker.connectedCount() === 0, 5000)).toBe(true)
    } finally {
      await fleet?.stop()
      await broker.close()
    }
  })
})
