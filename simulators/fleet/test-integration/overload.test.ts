// Overload: a broker that accepts every session and then stops acknowledging (and stops reading).
// At `--speed X` the simulator must not queue without end: simulated time waits for the sessions,
// the run reports how far behind it is, and nothing is dropped from a connected session. A tiny
// MQTT server (net + mqtt-packet) stands in for the broker, so that acknowledging can be switched
// off and on at will. Assertions are on counters the run reports, never on timings.

import { createServer, type Server, type Socket } from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generatePlant } from '../src/plant-generator.ts'
import { FAULT_PRESETS, type RunProgress, simulate } from '../src/run/index.ts'
import { fleetDevicesOf, SessionEngine } from '../src/sessions/index.ts'

const HOST = '127.0.0.1'

/** CONNACKs and SUBACKs everything; PUBACKs only while `acking`, and then what it owes too. */
class StallingBroker {
  acking = true
  readonly sockets = new Set<Socket>()
  private readonly owed: { socket: Socket; messageId: number }[] = []
  private readonly server: Server
  port = 0

  constructor() {
    this.server = createServer((socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
      socket.on('error', () => {})
      const parser = mqttPacket.parser({ protocolVersion: 4 })
      parser.on('packet', (packet: Packet) => {
        switch (packet.cmd) {
          case 'connect':
            socket.write(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }))
            return
          case 'subscribe':
            socket.write(mqttPacket.generate({ cmd: 'suback', messageId: packet.messageId, granted: [1] }))
            return
          case 'pingreq':
            socket.write(mqttPacket.generate({ cmd: 'pingresp' }))
            return
          case 'publish':
            if (packet.qos === 1 && packet.messageId !== undefined) {
              if (this.acking) socket.write(mqttPacket.generate({ cmd: 'puback', messageId: packet.messageId }))
              else this.owed.push({ socket, messageId: packet.messageId })
            }
            return
          default:
            return
        }
      })
      socket.on('data', (chunk) => parser.parse(chunk))
    })
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, HOST, resolve))
    this.port = (this.server.address() as { port: number }).port
  }

  /** Stops acknowledging and stops reading every socket: the simulator's writes back up. */
  stall(): void {
    this.acking = false
    for (const socket of this.sockets) socket.pause()
  }

  resume(): void {
    this.acking = true
    for (const socket of this.sockets) socket.resume()
    for (const { socket, messageId } of this.owed.splice(0)) {
      if (!socket.destroyed) socket.write(mqttPacket.generate({ cmd: 'puback', messageId }))
    }
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
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

describe('a broker that stops acknowledging', () => {
  let broker: StallingBroker

  beforeAll(async () => {
    broker = new StallingBroker()
    await broker.listen()
  })

  afterAll(async () => {
    await broker.close()
  })

  it('at --speed 4 holds simulated time back, keeps the backlog bounded, reports the lag, drops nothing', async () => {
    const plant = generatePlant({ devices: 300, seed: 1 })
    const devices = fleetDevicesOf(plant).length
    const controller = new AbortController()
    let progress: RunProgress | undefined
    // Every report while the broker is stalled: the backlog must stay within its bound throughout.
    const stalledReports: RunProgress[] = []
    let stalled = false
    const run = simulate({
      plant,
      durationS: 3600,
      speed: 4,
      faults: FAULT_PRESETS.none,
      workers: 2,
      connection: { brokers: [{ host: HOST, port: broker.port }], deviceSecret: 'overload-test' },
      signal: controller.signal,
      onProgress: (next) => {
        progress = next
        if (stalled) stalledReports.push(next)
      },
    })
    const failed = run.then(
      () => false,
      () => true,
    )
    try {
      // Running and acknowledged, on time.
      expect(await until(() => (progress?.sessions?.acked ?? 0) > devices, 30_000)).toBe(true)
      expect(progress!.phase).toBe('running')

      broker.stall()
      stalled = true
      // Simulated time stops: the lag grows past 8 simulated seconds (2 wall seconds at ×4) ...
      expect(await until(() => progress!.lagS > 8, 20_000)).toBe(true)
      const heldUplinks = progress!.uplinks
      const heldLag = progress!.lagS
      // ... and keeps growing, while not one more message is made: nothing is acknowledged, so
      // the sessions never have room again.
      expect(await until(() => progress!.lagS > heldLag + 8, 20_000)).toBe(true)
      expect(progress!.uplinks).toBe(heldUplinks)
      expect(progress!.heldS).toBeGreaterThan(0)
      for (const report of stalledReports) {
        // At most the bound plus one step of the simulation (a few seconds of the fleet).
        expect(report.backlog).toBeLessThanOrEqual(report.backlogLimit + 4 * devices)
        expect(report.sessions!.outboxDropped).toBe(0)
        // Reports keep coming from both workers while they wait.
        expect(report.processes).toHaveLength(2)
      }
      expect(progress!.backlogLimit).toBeGreaterThan(0)
      expect(progress!.sessions!.connected).toBe(devices)

      // The broker takes everything again: simulated time goes on from where it stood, at ×4.
      broker.resume()
      expect(await until(() => progress!.uplinks > heldUplinks + devices, 20_000)).toBe(true)
      expect(await until(() => progress!.backlog < progress!.backlogLimit, 20_000)).toBe(true)
    } finally {
      controller.abort()
    }
    expect(await failed).toBe(false)
    const summary = await run
    expect(summary.behind).not.toBeNull()
    expect(summary.behind!.lagS).toBeGreaterThan(16)
    expect(summary.behind!.heldSeconds).toBeGreaterThan(0)
    expect(summary.achievedSpeed).toBeLessThan(4)
    expect(summary.messages.droppedFromFullOutboxes).toBe(0)
  }, 90_000)
})

describe('session engine against a broker that stops reading', () => {
  it('writes no more than the in-flight window into each socket and caps each outbox, counting drops', async () => {
    const broker = new StallingBroker()
    await broker.listen()
    const plant = generatePlant({ devices: 100, seed: 2 })
    const devices = fleetDevicesOf(plant)
    const engine = new SessionEngine({
      devices,
      brokers: [{ host: HOST, port: broker.port }],
      deviceSecret: 'overload-test',
      driven: true,
      maxInflightPerSession: 8,
      maxOutboxPerSession: 50,
    })
    try {
      engine.start()
      expect(await until(() => engine.stats().connected === devices.length, 20_000)).toBe(true)
      broker.stall()
      const payload = Buffer.alloc(2000, 0x61)
      for (let round = 0; round < 80; round++) {
        for (let index = 0; index < devices.length; index++) engine.send(index, 'up', payload)
      }
      const stats = engine.stats()
      // Eight in flight per session, the rest waiting, each outbox at most 50: 30 dropped each.
      expect(stats.inflight).toBe(8 * devices.length)
      expect(stats.queued).toBe(42 * devices.length)
      expect(stats.outboxDropped).toBe(30 * devices.length)
      expect(engine.onlineBacklog()).toBe(50 * devices.length)
      expect(stats.queuedOffline).toBe(0)
    } finally {
      await engine.stop({ drainMs: 0, closeMs: 200 })
      await broker.close()
    }
  }, 30_000)

  it('counts what waits in sessions that are not connected apart, and hands it to the brokers on reconnect', async () => {
    const broker = new StallingBroker()
    await broker.listen()
    const plant = generatePlant({ devices: 100, seed: 3 })
    const devices = fleetDevicesOf(plant)
    const engine = new SessionEngine({
      devices,
      brokers: [{ host: HOST, port: broker.port }],
      deviceSecret: 'overload-test',
      driven: true,
      maxOutboxPerSession: 50,
      backoff: { initialMs: 50, maxMs: 200 },
    })
    const payload = Buffer.from('{}')
    try {
      // Not started: every session is offline; its messages wait and do not count as online.
      for (let round = 0; round < 60; round++) {
        for (let index = 0; index < devices.length; index++) engine.send(index, 'up', payload)
      }
      let stats = engine.stats()
      expect(stats.queued).toBe(50 * devices.length)
      expect(stats.queuedOffline).toBe(50 * devices.length)
      expect(stats.outboxDropped).toBe(10 * devices.length)
      expect(engine.onlineBacklog()).toBe(0)

      engine.start()
      expect(await until(() => engine.stats().acked === 50 * devices.length, 20_000)).toBe(true)
      stats = engine.stats()
      expect(stats.queued).toBe(0)
      expect(stats.queuedOffline).toBe(0)
      expect(engine.onlineBacklog()).toBe(0)

      // The broker stops acknowledging, then drops every connection: what was in flight waits again,
      // offline, and goes out (DUP) after the reconnect.
      broker.acking = false
      for (let index = 0; index < devices.length; index++) engine.send(index, 'up', payload)
      expect(await until(() => engine.stats().inflight === devices.length, 20_000)).toBe(true)
      const connections = [...broker.sockets]
      for (const socket of connections) socket.destroy()
      expect(
        await until(
          () => engine.stats().connected === devices.length && engine.stats().resent >= devices.length,
          20_000,
        ),
      ).toBe(true)
      stats = engine.stats()
      expect(stats.queuedOffline).toBe(0)
      expect(stats.queued + stats.inflight).toBe(devices.length)
      expect(engine.onlineBacklog()).toBe(devices.length)
      broker.resume()
      expect(await until(() => engine.stats().acked === 51 * devices.length, 20_000)).toBe(true)
      expect(engine.backlog()).toBe(0)
    } finally {
      await engine.stop({ drainMs: 0, closeMs: 200 })
      await broker.close()
    }
  }, 30_000)
})
