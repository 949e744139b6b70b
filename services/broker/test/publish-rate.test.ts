import { deriveDevicePassword } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import mqttPacket from 'mqtt-packet'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { type Broker, createBroker } from '../src/broker.ts'
import { metricValue } from './metric-value.ts'
import { connectPacket, RawClient } from './raw-client.ts'

// Issue 12 finding 10, CONTRACT.md §4 (v1.1): a client publishing faster than its rate is slowed
// (its socket is not read until its budget refills, its incomplete-packet timer standing still
// meanwhile), not disconnected: a device flushing the readings it stored through an outage gets
// every one in, no faster than its rate.

const SECRET = 'publish-rate-test-secret'
const DEVICE = '860100000000123'
const TOPIC = `sites/yibin/devices/${DEVICE}/up`
const RATE_PER_S = 400
const BURST = 100
const COUNT = 2000
const PACKET_TIMEOUT_MS = 1000

describe('publish rate (issue 12 finding 10)', () => {
  let broker: Broker
  let port: number

  beforeAll(async () => {
    broker = await createBroker({
      plant: new PlantIndex(examplePlant()),
      deviceSecret: SECRET,
      logger: pino({ level: 'silent' }),
      limits: { publishRatePerS: RATE_PER_S, publishBurst: BURST, packetTimeoutMs: PACKET_TIMEOUT_MS },
    })
    port = await broker.listen({ host: '127.0.0.1', port: 0 })
  })

  afterAll(async () => {
    await broker.close()
  })

  it('slows a device flushing its backlog to its rate, acknowledges every reading, and never disconnects it', async () => {
    let onBus = 0
    await broker.bus.subscribe(TOPIC, () => onBus++)
    const raw = await RawClient.open(port)
    raw.send(connectPacket(DEVICE, DEVICE, deriveDevicePassword(SECRET, DEVICE)))
    expect(await raw.next('connack')).toMatchObject({ returnCode: 0 })

    const publish = (messageId: number) =>
      mqttPacket.generate({
        cmd: 'publish',
        topic: TOPIC,
        payload: Buffer.from(`[{"n":"power","v":${messageId}}]`),
        qos: 1,
        messageId,
        retain: false,
        dup: false,
      })
    // The whole backlog at once, and the first half of one more PUBLISH: that half waits in the
    // broker far longer than the packet timeout, while the device is slowed.
    const last = publish(COUNT + 1)
    const half = Math.floor(last.length / 2)
    const started = performance.now()
    raw.write(Buffer.concat([...Array.from({ length: COUNT }, (_, i) => publish(i + 1)), last.subarray(0, half)]))

    const acked = new Set<number>()
    const allAcked = new Promise<void>((resolve) =>
      raw.socket.on('data', () => {
        for (const packet of raw.packets.splice(0)) {
          if (packet.cmd === 'puback') acked.add(packet.messageId!)
        }
        if (acked.size >= COUNT) resolve()
      }),
    )
    await Promise.race([allAcked, raw.whenClosed()])
    const elapsedMs = performance.now() - started
    expect(raw.closed).toBe(false)
    expect(acked.size).toBe(COUNT)
    // No faster than the rate allows after the burst (a little slack for timer granularity).
    const floorMs = ((COUNT - BURST) / RATE_PER_S) * 1000
    expect(elapsedMs).toBeGreaterThan(floorMs * 0.95)
    console.log(
      `publish rate: ${COUNT} QoS 1 publishes acknowledged in ${Math.round(elapsedMs)} ms (floor ${Math.round(floorMs)} ms)`,
    )

    // The half packet was held through it all; its second half completes it.
    const lastAck = new Promise<void>((resolve) =>
      raw.socket.on('data', () => {
        if (acked.has(COUNT + 1)) resolve()
      }),
    )
    raw.write(last.subarray(half))
    await Promise.race([lastAck, raw.whenClosed()])
    expect(raw.closed).toBe(false)
    expect(acked.has(COUNT + 1)).toBe(true)
    // aedes may send the PUBACK before its emitter has handed the message to the bus: wait (bounded)
    // for the last delivery rather than reading the count in the same turn.
    const deadline = Date.now() + 5000
    while (onBus < COUNT + 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
    expect(onBus).toBe(COUNT + 1)
    expect(await metricValue(broker.metrics.disconnects, { reason: 'publish_flood' })).toBe(0)
    expect(await metricValue(broker.metrics.disconnects, { reason: 'incomplete_packet' })).toBe(0)
    raw.destroy()
  })
})
