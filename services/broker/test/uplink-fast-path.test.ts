import { mkdtemp, rm } from 'node:fs/promises'
import { type AddressInfo, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deriveDevicePassword } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import mqttPacket, { type Packet } from 'mqtt-packet'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { type Broker, createBroker } from '../src/broker.ts'
import { metricValue } from './metric-value.ts'
import { connectPacket, RawClient } from './raw-client.ts'

// The device's QoS 1 `up` publish is the one message that matters at scale (issue 16): what the
// broker does between its bytes and the PUBACK, seen on a real socket whose writes are recorded
// on the broker's side.

const SECRET = 'fast-path-secret'
const DEVICE = '860100000000123'
const UP = `sites/yibin/devices/${DEVICE}/up`

/** Every write the broker makes on one socket: one entry per call into the socket, its chunks. */
type WriteLog = Buffer[][]

function recordWrites(socket: Socket): WriteLog {
  const log: WriteLog = []
  const internals = socket as unknown as {
    _write(chunk: Buffer, encoding: string, callback: () => void): void
    _writev(chunks: { chunk: Buffer }[], callback: () => void): void
  }
  const write = internals._write.bind(socket)
  const writev = internals._writev.bind(socket)
  internals._write = (chunk, encoding, callback) => {
    log.push([Buffer.from(chunk)])
    write(chunk, encoding, callback)
  }
  internals._writev = (chunks, callback) => {
    log.push(chunks.map(({ chunk }) => Buffer.from(chunk)))
    writev(chunks, callback)
  }
  return log
}

const pubackFor = (device: RawClient, messageId: number) =>
  new Promise<void>((resolve, reject) => {
    const check = () => {
      if (device.packets.some((p) => p.cmd === 'puback' && p.messageId === messageId)) return resolve()
      if (device.closed) return reject(new Error('closed before the PUBACK'))
      setImmediate(check)
    }
    check()
  })

/** A broker on a plain TCP server whose sockets' writes and reads (on the broker's side) are recorded. */
async function watchedBroker(journal?: IngestJournal, deliverUplinks?: boolean) {
  const broker = await createBroker({
    plant: new PlantIndex(examplePlant()),
    deviceSecret: SECRET,
    logger: pino({ level: 'silent' }),
    ...(journal ? { uplinkJournal: journal } : {}),
    ...(deliverUplinks === undefined ? {} : { deliverUplinks }),
  })
  const logs: { writes: WriteLog; reads: Buffer[] }[] = []
  // The broker's own handleStream on a plain TCP server, so the test can watch the socket.
  const server = createServer((socket) => {
    const writes = recordWrites(socket)
    const reads: Buffer[] = []
    broker.handleStream(socket, socket.remoteAddress ?? 'unknown')
    // After the broker's listeners, as its own: it sees each chunk the broker reads.
    socket.on('data', (chunk: Buffer) => reads.push(chunk))
    logs.push({ writes, reads })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const connectDevice = async () => {
    const device = await RawClient.open(port)
    device.send(connectPacket(DEVICE, DEVICE, deriveDevicePassword(SECRET, DEVICE)))
    expect(await device.next('connack')).toMatchObject({ returnCode: 0 })
    const { writes, reads } = logs.at(-1)!
    return { device, log: writes, reads }
  }
  const close = async () => {
    await broker.close()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return { broker, connectDevice, close }
}

const pubacksOf = (ids: number[]) => Buffer.concat(ids.map((id) => Buffer.from([0x40, 0x02, id >> 8, id & 0xff])))

/** Several QoS 1 uplinks in one buffer, as a device that sends them in one TCP write. */
const uplinksInOneWrite = (ids: number[]) =>
  Buffer.concat(
    ids.map((id) =>
      mqttPacket.generate({
        cmd: 'publish',
        qos: 1,
        dup: false,
        retain: false,
        topic: UP,
        payload: `[{"n":"power","v":${id}}]`,
        messageId: id,
      } as Packet),
    ),
  )

describe('broker: the uplink fast path', () => {
  let broker: Broker
  let connectDevice: Awaited<ReturnType<typeof watchedBroker>>['connectDevice']
  let close: () => Promise<void>

  beforeAll(async () => {
    ;({ broker, connectDevice, close } = await watchedBroker())
  })

  afterAll(async () => {
    await close()
  })

  const publish = (device: RawClient, messageId: number, payload = '[{"n":"power","v":1}]') =>
    device.send({ cmd: 'publish', qos: 1, dup: false, retain: false, topic: UP, payload, messageId } as Packet)

  it('acknowledges each uplink with one write of the 4 bytes of its PUBACK, and delivers it on the bus', async () => {
    const received: string[] = []
    const unsubscribe = await broker.bus.subscribe('sites/+/devices/+/up', (_topic, payload) =>
      received.push(payload.toString()),
    )
    const { device, log } = await connectDevice()
    const before = await metricValue(broker.metrics.messagesIn)
    log.length = 0
    for (let id = 1; id <= 20; id++) {
      publish(device, id * 257, `[{"n":"power","v":${id}}]`)
      await pubackFor(device, id * 257)
    }
    // One write call per PUBACK, a single buffer: no cork, no writev of header, length and id
    // in three pieces (mqtt-packet's generic writer), no setImmediate between them.
    expect(log).toHaveLength(20)
    for (const [k, chunks] of log.entries()) {
      const id = (k + 1) * 257
      expect(chunks).toEqual([Buffer.from([0x40, 0x02, id >> 8, id & 0xff])])
    }
    expect(received).toEqual(Array.from({ length: 20 }, (_, k) => `[{"n":"power","v":${k + 1}}]`))
    expect((await metricValue(broker.metrics.messagesIn)) - before).toBe(20)
    device.destroy()
    await unsubscribe()
  })

  it('counts messages and bytes in without a metrics call per packet, and reports them at scrape', async () => {
    const { device } = await connectDevice()
    const before = {
      messages: await metricValue(broker.metrics.messagesIn),
      bytes: await metricValue(broker.metrics.bytesIn),
    }
    const incs = [vi.spyOn(broker.metrics.messagesIn, 'inc'), vi.spyOn(broker.metrics.bytesIn, 'inc')]
    try {
      for (let id = 1; id <= 50; id++) {
        publish(device, id)
        await pubackFor(device, id)
      }
      // prom-client's inc validates labels and hashes them on every call: per packet, that is
      // work of the hot path for a figure read once per scrape.
      for (const inc of incs) expect(inc).not.toHaveBeenCalled()
    } finally {
      for (const inc of incs) inc.mockRestore()
    }
    expect((await metricValue(broker.metrics.messagesIn)) - before.messages).toBe(50)
    // Each PUBLISH: 2 bytes of fixed header, 2 + topic, 2 of message id, the payload.
    const packetBytes = 2 + 2 + UP.length + 2 + '[{"n":"power","v":1}]'.length
    expect((await metricValue(broker.metrics.bytesIn)) - before.bytes).toBe(50 * packetBytes)
    device.destroy()
  })

  it('writes the PUBACKs of the uplinks it read together in one write of one buffer, in order', async () => {
    const received: string[] = []
    const unsubscribe = await broker.bus.subscribe('sites/+/devices/+/up', (_topic, payload) =>
      received.push(payload.toString()),
    )
    const { device, log, reads } = await connectDevice()
    log.length = 0
    reads.length = 0
    const ids = Array.from({ length: 12 }, (_, k) => 1000 + k * 3)
    device.write(uplinksInOneWrite(ids))
    for (const id of ids) await pubackFor(device, id)
    // A write per PUBACK is a syscall (and on loopback the receiver's TCP work) per packet:
    // the PUBACKs of one read go out together, one buffer, once the read is handled.
    expect(reads.length).toBeGreaterThan(0)
    expect(log.length).toBeLessThanOrEqual(reads.length)
    for (const chunks of log) expect(chunks).toHaveLength(1)
    expect(Buffer.concat(log.flat())).toEqual(pubacksOf(ids))
    expect(received).toEqual(ids.map((id) => `[{"n":"power","v":${id}}]`))
    device.destroy()
    await unsubscribe()
  })
})

describe('broker: the uplink fast path with the ingest journal', () => {
  let dir: string
  let journal: IngestJournal
  let watched: Awaited<ReturnType<typeof watchedBroker>>

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-fast-path-'))
    journal = await IngestJournal.open(dir)
    watched = await watchedBroker(journal)
  })

  afterAll(async () => {
    await watched.close()
    await journal.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('journals the uplinks of one read in one group commit and acknowledges them in one write', async () => {
    const durable: number[] = []
    journal.onDurable = (record) => durable.push(record.seq)
    const { device, log, reads } = await watched.connectDevice()
    log.length = 0
    reads.length = 0
    const writesBefore = journal.stats.writes
    const ids = Array.from({ length: 10 }, (_, k) => 2000 + k)
    device.write(uplinksInOneWrite(ids))
    for (const id of ids) await pubackFor(device, id)
    // Each PUBACK only once its record is on disk, and no more fdatasyncs than reads.
    expect(durable).toHaveLength(ids.length)
    expect(journal.stats.writes - writesBefore).toBeLessThanOrEqual(reads.length)
    expect(log.length).toBeLessThanOrEqual(reads.length)
    expect(Buffer.concat(log.flat())).toEqual(pubacksOf(ids))
    device.destroy()
  })
})

// A broker worker of `plantwatt up --workers N` has no internal clients, and a device may
// subscribe only to its own `down` topic: nobody there can receive an uplink, whose reader is the
// journal. Publishing each one through aedes anyway (its emitter, the store's offline
// subscriptions) was several per cent of a worker's CPU in issue 16's profile.
describe('broker: the uplink fast path with the journal and no uplink delivery', () => {
  let dir: string
  let journal: IngestJournal
  let watched: Awaited<ReturnType<typeof watchedBroker>>

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-fast-path-'))
    journal = await IngestJournal.open(dir)
    watched = await watchedBroker(journal, false)
  })

  afterAll(async () => {
    await watched.close()
    await journal.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('journals and acknowledges every uplink, keeps reading the device, and publishes none through aedes', async () => {
    const received: string[] = []
    const unsubscribe = await watched.broker.bus.subscribe('sites/+/devices/+/up', (_topic, payload) =>
      received.push(payload.toString()),
    )
    const durable: string[] = []
    journal.onDurable = (record) => durable.push(record.payload.toString())
    const { device, log } = await watched.connectDevice()
    log.length = 0
    const before = await metricValue(watched.broker.metrics.messagesIn)
    // Two reads' worth: the device is read again after the first batch is acknowledged.
    const ids = Array.from({ length: 10 }, (_, k) => 3000 + k)
    device.write(uplinksInOneWrite(ids.slice(0, 5)))
    for (const id of ids.slice(0, 5)) await pubackFor(device, id)
    device.write(uplinksInOneWrite(ids.slice(5)))
    for (const id of ids.slice(5)) await pubackFor(device, id)
    expect(durable).toEqual(ids.map((id) => `[{"n":"power","v":${id}}]`))
    expect(Buffer.concat(log.flat())).toEqual(pubacksOf(ids))
    expect((await metricValue(watched.broker.metrics.messagesIn)) - before).toBe(ids.length)
    // A bus round trip after the last PUBACK: anything published would have arrived by now.
    await new Promise<void>((resolve) => {
      void watched.broker.bus
        .subscribe('probe/#', () => resolve())
        .then(() => watched.broker.bus.publish('probe/x', Buffer.from('x')))
    })
    expect(received).toEqual([])
    device.destroy()
    await unsubscribe()
  })
})
