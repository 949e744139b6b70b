import type { AddressInfo } from 'node:net'
import { createServer } from 'node:net'
import { Aedes } from 'aedes'
import { describe, expect, it } from 'vitest'
import { createAedesBus } from '../src/aedes-bus.ts'
import { createMqttBus, topicMatches } from '../src/mqtt-bus.ts'
import { busSuite } from './bus-suite.ts'

busSuite('in-process (aedes emitter)', async () => {
  const broker = await Aedes.createBroker()
  const a = createAedesBus(broker)
  const b = createAedesBus(broker)
  return {
    a,
    b,
    close: async () => {
      await a.close()
      await b.close()
      await new Promise<void>((resolve) => broker.close(() => resolve()))
    },
  }
})

busSuite('MQTT client of a real broker (aedes on TCP, port 0)', async () => {
  const broker = await Aedes.createBroker()
  const server = createServer((socket) => broker.handle(socket))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`
  const a = await createMqttBus({ url, clientId: `bus-a-${process.pid}` })
  const b = await createMqttBus({ url, clientId: `bus-b-${process.pid}` })
  return {
    a,
    b,
    close: async () => {
      await a.close()
      await b.close()
      await new Promise<void>((resolve) => broker.close(() => resolve()))
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
})

describe('topicMatches (MQTT 3.1.1 §4.7)', () => {
  it.each([
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/b/d', false],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['+', 'a/b', false],
    ['a/+', 'a/', true],
    ['#', 'anything/at/all', true],
  ])('%s matches %s: %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected)
  })
})
