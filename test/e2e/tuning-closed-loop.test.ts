import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Broker, createBroker } from '@plantwatt/broker'
import { deriveDevicePassword, type SetpointEvent } from '@plantwatt/contract'
import { deviceRolesOf, generatePlant, simulate } from '@plantwatt/fleet'
import { createGateway, type Gateway } from '@plantwatt/gateway'
import { PlantIndex } from '@plantwatt/plant'
import { Processor, registerProcessorMetrics } from '@plantwatt/processor'
import { IngestJournal, TokenStore } from '@plantwatt/runtime'
import mqtt from 'mqtt'
import pino from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WsTestClient } from '../support/ws-client.ts'

// Issue 15: tuning closed loop through the real broker. Simulated NB-IoT devices in power-saving
// mode (every one of them: they take a command only at their next wake) publish readings; the
// real processor (uplinks and acks journaled by the broker before the PUBACK, CONTRACT.md §3)
// tunes the oven fans and sends commands on their `down` topics, QoS 1; the devices apply them and
// answer on `ack`. Every step reaches a client on the `setpoints` WebSocket channel, in order.

const SECRET = 'tuning-closed-loop-secret'
const logger = pino({ level: 'silent' })
// Tuesday 02:00 UTC = 10:00 in Yibin: the plant is producing.
const START_S = Date.UTC(2025, 2, 4, 2, 0) / 1000
const model = generatePlant({ devices: 60, seed: 5 })
const SITE = model.sites[0]!.id
const tuned = model.sites.flatMap((site) =>
  site.areas.flatMap((area) =>
    area.lines.flatMap((line) =>
      line.equipment
        .filter((eq) => eq.tuning !== undefined)
        .map((eq) => ({ scope: `${site.id}/${area.id}/${line.id}/${eq.id}`, eq })),
    ),
  ),
)

describe('tuning closed loop through the real broker', () => {
  let dir: string
  let journal: IngestJournal
  let broker: Broker
  let processor: Processor
  let gateway: Gateway
  let port: number
  let base: string
  let token: string

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-tuning-loop-'))
    const plant = new PlantIndex(model)
    journal = await IngestJournal.open(join(dir, 'journal'))
    broker = await createBroker({ plant, deviceSecret: SECRET, logger, uplinkJournal: journal })
    processor = new Processor({
      plant,
      bus: broker.bus,
      logger,
      journal,
      publishIntervalMs: 50,
      // The recording is from 2025 (§7 --accept-old); a short dwell so that moves come quickly.
      pipeline: { acceptOld: true },
      tuning: { dwellS: 120 },
    })
    await processor.start()
    const tokens = await TokenStore.open(dir)
    token = (await tokens.issue({ name: 'shift lead', role: 'operator' })).token
    gateway = await createGateway({
      plant,
      bus: broker.bus,
      tokens,
      logger,
      isReady: () => true,
      registry: new Registry(),
    })
    await gateway.start()
    base = `127.0.0.1:${await gateway.listen({ host: '127.0.0.1', port: 0 })}`
    port = await broker.listen({ host: '127.0.0.1', port: 0 })
  })

  afterAll(async () => {
    await gateway?.close()
    await broker?.close()
    await processor?.stop()
    await journal?.close()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('applies moves through sleeping devices, every step on the setpoints channel in order', async () => {
    expect(tuned.length).toBeGreaterThan(0)
    const client = await WsTestClient.connect(`ws://${base}/ws?token=${token}`)
    client.send({ op: 'subscribe', id: 's', channel: 'setpoints', scope: SITE, since: 0 })
    await client.next((f) => f.type === 'subscribed')
    const controller = new AbortController()
    const run = simulate({
      plant: model,
      seed: 3,
      startS: START_S,
      durationS: 3 * 3600,
      speed: 150,
      connection: { brokers: [{ host: '127.0.0.1', port }], deviceSecret: SECRET },
      workers: 1,
      // Every device sleeps between wakes a minute apart: a command waits in its session.
      faults: { psm: { share: 1, batchIntervalS: 60 } },
      signal: controller.signal,
    })
    // The site's 1-minute buckets: once moves saved energy, they carry savedWh and savedCo2G (§5).
    client.send({ op: 'subscribe', id: 'b', channel: 'buckets', scope: SITE, step: '1m' })
    const applied = () =>
      client.frames.filter((f) => f.type === 'setpoint' && (f.event as SetpointEvent).status === 'applied')
    const saving = () =>
      client.frames.filter((f) => f.type === 'bucket' && ((f.savedWh as number | undefined) ?? 0) > 0)
    const deadline = Date.now() + 60_000
    while ((applied().length < 3 || saving().length === 0) && Date.now() < deadline) {
      await client
        .next((f) => f.type === 'setpoint' || f.type === 'bucket', Math.max(1, deadline - Date.now()))
        .catch(() => undefined)
    }
    controller.abort()
    const summary = await run
    await client.close()

    const frames = client.frames.filter((f) => f.type === 'setpoint')
    expect(applied().length).toBeGreaterThanOrEqual(3)
    // One sequence, increasing by one: this client sees every event of the site (CONTRACT.md §5).
    const seqs = frames.map((f) => f.seq as number)
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i))
    // Each applied move was sent first, to the device that reports the setpoint, within its bounds.
    for (const frame of applied()) {
      const event = frame.event as SetpointEvent
      const sent = frames.find(
        (f) => (f.event as SetpointEvent).id === event.id && (f.event as SetpointEvent).status === 'sent',
      )
      expect(sent, `sent before applied: ${event.id}`).toBeDefined()
      expect(sent!.seq as number).toBeLessThan(frame.seq as number)
      const spec = tuned.find((t) => t.scope === event.scope)!.eq.tuning!
      expect(event.to).toBeGreaterThanOrEqual(spec.min)
      expect(event.to).toBeLessThanOrEqual(spec.max)
      expect(Math.abs(event.to - event.from)).toBeLessThanOrEqual(spec.maxStep + 1e-9)
    }
    expect(summary.commands.received).toBeGreaterThanOrEqual(3)
    // Live figures: the energy tuning saved today, by the site's local day (optional savedTodayWh).
    await expect
      .poll(
        async () => {
          const res = await fetch(`http://${base}/api/v1/live?scope=${SITE}`, {
            headers: { authorization: `Bearer ${token}` },
          })
          return ((await res.json()) as { savedTodayWh?: number }).savedTodayWh ?? 0
        },
        { timeout: 5000 },
      )
      .toBeGreaterThan(0)
    // GET /api/v1/plant tells each tuned equipment's tuning status as its tuner stands (§6).
    const plantRes = await fetch(`http://${base}/api/v1/plant`, { headers: { authorization: `Bearer ${token}` } })
    const node = await plantRes.json()
    const lastScope = (applied().at(-1)!.event as SetpointEvent).scope
    const find = (n: any): any => (n.scope === lastScope ? n : (n.children ?? n.sites ?? []).map(find).find(Boolean))
    const oven = find(node)
    expect(oven.equipment.tuning).toMatchObject({ setpoint: 'fan_hz', mode: 'auto' })
    expect(oven.equipment.tuning.status).not.toBe('waiting')
    expect(typeof oven.equipment.tuning.current).toBe('number')
    // Savings against the starting setpoint: positive once fans turn slower, with CO2 at the
    // bucket's own factor (its co2G per energyWh).
    const withSavings = saving().filter((f) => (f.savedWh as number) > 0)
    expect(withSavings.length).toBeGreaterThan(0)
    for (const f of withSavings) {
      expect(f.savedWh as number).toBeLessThan(f.energyWh as number)
      expect(f.savedCo2G as number).toBeCloseTo(
        ((f.savedWh as number) * (f.co2G as number)) / (f.energyWh as number),
        3,
      )
    }
    // The device that reports the setpoint now reports the applied value (CONTRACT.md §3).
    const last = applied().at(-1)!.event as SetpointEvent
    const device = deviceRolesOf(tuned.find((t) => t.scope === last.scope)!.eq).process!.device
    const name = tuned.find((t) => t.scope === last.scope)!.eq.tuning!.setpoint
    const reported = processor.devices.get(device)?.last?.get(name)?.[1]
    const appliedValues = applied()
      .map((f) => f.event as SetpointEvent)
      .filter((e) => e.scope === last.scope)
      .map((e) => e.to)
    expect(appliedValues).toContain(reported)
  }, 110_000)

  it('in advise mode proposes, waits, and applies an approved proposal; GET /api/v1/setpoints tells the tuners state', async () => {
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`http://${base}${path}`, {
        ...init,
        headers: {
          authorization: `Bearer ${token}`,
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
      })
    const put = await api('/api/v1/tuning', { method: 'PUT', body: JSON.stringify({ mode: 'advise' }) })
    expect(put.status).toBe(202)
    const client = await WsTestClient.connect(`ws://${base}/ws?token=${token}`)
    client.send({ op: 'subscribe', id: 'p', channel: 'setpoints', scope: SITE })
    await client.next((f) => f.type === 'subscribed')
    const controller = new AbortController()
    // Later in the same day: the devices' clocks go on from where the first run stopped.
    const run = simulate({
      plant: model,
      seed: 4,
      startS: START_S + 4 * 3600,
      durationS: 3 * 3600,
      speed: 150,
      connection: { brokers: [{ host: '127.0.0.1', port }], deviceSecret: SECRET },
      workers: 1,
      faults: { psm: { share: 1, batchIntervalS: 60 } },
      signal: controller.signal,
    })
    try {
      const proposed = (
        await client.next((f) => f.type === 'setpoint' && (f.event as SetpointEvent).status === 'proposed', 60_000)
      ).event as SetpointEvent
      expect(proposed.mode).toBe('advise')
      // Nothing is sent for it until an operator approves (advise mode waits).
      expect(
        client.frames.some(
          (f) =>
            f.type === 'setpoint' &&
            (f.event as SetpointEvent).id === proposed.id &&
            (f.event as SetpointEvent).status === 'sent',
        ),
      ).toBe(false)
      const status: any = await (await api(`/api/v1/setpoints?scope=${encodeURIComponent(proposed.scope)}`)).json()
      expect(status.equipment).toHaveLength(1)
      expect(status.equipment[0]).toMatchObject({ scope: proposed.scope, mode: 'advise', status: 'proposed' })
      expect(status.equipment[0].proposed).toMatchObject({ id: proposed.id, to: proposed.to })
      expect(typeof status.equipment[0].savedWh).toBe('number')

      const approved = await api(`/api/v1/setpoints/${proposed.id}/approve`, { method: 'POST' })
      expect(approved.status).toBe(200)
      expect(await approved.json()).toMatchObject({ id: proposed.id, status: expect.stringMatching(/approved|sent/) })
      // Approved once: the proposal is no longer open.
      expect((await api(`/api/v1/setpoints/${proposed.id}/approve`, { method: 'POST' })).status).toBe(409)
      expect((await api('/api/v1/setpoints/no-such-proposal/approve', { method: 'POST' })).status).toBe(404)
      const applied = await client.next(
        (f) =>
          f.type === 'setpoint' &&
          (f.event as SetpointEvent).id === proposed.id &&
          (f.event as SetpointEvent).status === 'applied',
        60_000,
      )
      expect((applied.event as SetpointEvent).to).toBe(proposed.to)
    } finally {
      controller.abort()
      await run
      await client.close()
      await api('/api/v1/tuning', { method: 'PUT', body: JSON.stringify({ mode: 'auto' }) })
    }
  }, 110_000)

  it('fails an unanswered command at commandTimeoutS and alerts on a rejected one, over the alerts channel too', async () => {
    const client = await WsTestClient.connect(`ws://${base}/ws?token=${token}`)
    client.send({ op: 'subscribe', id: 's', channel: 'setpoints', scope: SITE })
    client.send({ op: 'subscribe', id: 'a', channel: 'alerts', scope: SITE })
    await client.next((f) => f.type === 'subscribed' && f.id === 'a')
    const isEvent = (status: string) => (f: { type: string; event?: unknown }) =>
      f.type === 'setpoint' && (f.event as SetpointEvent).status === status
    const runWith = (rejectProbability: number, unansweredProbability: number, startS: number) => {
      const controller = new AbortController()
      const run = simulate({
        plant: model,
        seed: 5,
        startS,
        durationS: 3 * 3600,
        speed: 150,
        connection: { brokers: [{ host: '127.0.0.1', port }], deviceSecret: SECRET },
        workers: 1,
        faults: { psm: { share: 1, batchIntervalS: 60 }, commands: { rejectProbability, unansweredProbability } },
        signal: controller.signal,
      })
      return async () => {
        controller.abort()
        await run
      }
    }
    // Devices that never answer: the command fails on the equipment's event time (§3), the tuner
    // holds, and a `command` alert is raised.
    let stop = runWith(0, 1, START_S + 8 * 3600)
    try {
      const failed = (await client.next(isEvent('failed'), 60_000)).event as SetpointEvent
      expect(failed.reason).toMatch(/commandTimeoutS/)
      // Raised now, or already open from an earlier run's command left unanswered (then it came
      // first, as an open alert at subscription): either way on the channel, for this equipment.
      const commandAlert = (f: { type: string; alert?: unknown }) => {
        const alert = f.alert as { kind: string; state: string; scope: string } | undefined
        return (
          f.type === 'alert' && alert?.kind === 'command' && alert.state === 'raised' && alert.scope === failed.scope
        )
      }
      await expect.poll(() => client.frames.some(commandAlert), { timeout: 10_000 }).toBe(true)
      // The tuner held at once, saying why.
      const holds = client.frames
        .filter((f) => isEvent('held')(f) && (f.event as SetpointEvent).scope === failed.scope)
        .map((f) => (f.event as SetpointEvent).reason)
      expect(holds).toContainEqual(expect.stringMatching(/last command failed/))
    } finally {
      await stop()
    }
    // Devices that refuse: `rejected` with the device's reason, and a `command` alert saying it.
    stop = runWith(1, 0, START_S + 12 * 3600)
    try {
      const rejected = (
        await client.next((f) => isEvent('rejected')(f) && /device/.test((f.event as SetpointEvent).reason), 60_000)
      ).event as SetpointEvent
      expect(rejected.reason).toMatch(/refused by the device/)
      await expect
        .poll(
          async () => {
            const res = await fetch(`http://${base}/api/v1/alerts?scope=${encodeURIComponent(rejected.scope)}`, {
              headers: { authorization: `Bearer ${token}` },
            })
            // One open alert per kind and scope (CONTRACT.md §5): when the unanswered command of
            // the run before left one open on this equipment, the refusal keeps that one open.
            return ((await res.json()) as { kind: string; state: string; message: string }[]).some(
              (a) => a.kind === 'command' && a.state === 'raised' && /refused by the device|no answer/.test(a.message),
            )
          },
          { timeout: 10_000 },
        )
        .toBe(true)
    } finally {
      await stop()
      await client.close()
    }
  }, 110_000)

  it('counts and logs a malformed ack, and an ack from a device of no tuned equipment, and goes on', async () => {
    const registry = new Registry()
    registerProcessorMetrics(registry, processor)
    const before = processor.tuning.stats.acksRejected
    const tunedDevice = deviceRolesOf(tuned[0]!.eq).process!.device
    const untuned = model.sites[0]!.areas.flatMap((area) => area.lines.flatMap((line) => line.equipment)).find(
      (eq) => eq.tuning === undefined,
    )!.devices[0]!
    const sendAck = async (deviceId: string, payload: string) => {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: deviceId,
        username: deviceId,
        password: deriveDevicePassword(SECRET, deviceId),
        protocolVersion: 4,
        reconnectPeriod: 0,
      })
      try {
        // PUBACK once the broker journaled it (CONTRACT.md §3: as durably as readings).
        await client.publishAsync(`sites/${SITE}/devices/${deviceId}/ack`, payload, { qos: 1 })
      } finally {
        await client.endAsync()
      }
    }
    await sendAck(tunedDevice, '{"id": 42, "status": "maybe"}')
    await sendAck(untuned, JSON.stringify({ id: 'x1', status: 'applied', t: START_S }))
    await expect.poll(() => processor.tuning.stats.acksRejected, { timeout: 5000 }).toBe(before + 2)
    const metrics = await registry.metrics()
    expect(metrics).toMatch(new RegExp(`plantwatt_setpoint_acks_rejected_total ${before + 2}\\b`))
    // Still answering: the tuners' state over the API.
    const res = await fetch(`http://${base}/api/v1/setpoints`, { headers: { authorization: `Bearer ${token}` } })
    expect(res.status).toBe(200)
  })
})
