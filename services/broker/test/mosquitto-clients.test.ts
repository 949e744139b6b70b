import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { deriveDevicePassword } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { type Broker, createBroker } from '../src/broker.ts'

// Debian's mosquitto_pub and mosquitto_sub against the broker, as a device would use them.

const run = promisify(execFile)
const SECRET = 'mosquitto-clients-secret'
const DEVICE = '860100000000124'

describe('mosquitto clients against the broker', () => {
  let broker: Broker
  let port: number
  const credentials = ['-i', DEVICE, '-u', DEVICE, '-P', deriveDevicePassword(SECRET, DEVICE), '-V', 'mqttv311']

  beforeAll(async () => {
    broker = await createBroker({
      plant: new PlantIndex(examplePlant()),
      deviceSecret: SECRET,
      logger: pino({ level: 'silent' }),
    })
    port = await broker.listen({ host: '127.0.0.1', port: 0 })
  })

  afterAll(async () => {
    await broker.close()
  })

  it('mosquitto_pub publishes a reading at QoS 1', async () => {
    const received = new Promise<string>((resolve) => {
      void broker.bus.subscribe(`sites/yibin/devices/${DEVICE}/up`, (_topic, payload) => resolve(payload.toString()))
    })
    await run('mosquitto_pub', [
      ...['-h', '127.0.0.1', '-p', String(port), ...credentials, '-q', '1'],
      ...['-t', `sites/yibin/devices/${DEVICE}/up`, '-m', '[{"n":"power","u":"W","v":1500}]'],
    ])
    expect(await received).toBe('[{"n":"power","u":"W","v":1500}]')
  })

  it('mosquitto_sub on a persistent session receives a command queued while it was away', async () => {
    const args = ['-h', '127.0.0.1', '-p', String(port), ...credentials, '-q', '1', '-c', '-t']
    const topic = `sites/yibin/devices/${DEVICE}/down`
    // First visit: subscribe on a persistent session (-c), then leave.
    await run('mosquitto_sub', [...args, topic, '-E'])
    // While it sleeps, plantwatt publishes a command.
    await broker.bus.publish(topic, Buffer.from('{"type":"setpoint","id":"c1","name":"fan_hz","value":42}'), { qos: 1 })
    // It wakes and gets the command.
    const sub = spawn('mosquitto_sub', [...args, topic, '-C', '1'])
    const [line] = (await once(createInterface({ input: sub.stdout }), 'line')) as [string]
    expect(JSON.parse(line)).toMatchObject({ id: 'c1', value: 42 })
    await once(sub, 'exit')
  })

  it('mosquitto_sub is refused a foreign topic with 0x80 and stays connected', async () => {
    const result = await run('mosquitto_sub', [
      ...['-h', '127.0.0.1', '-p', String(port), ...credentials, '-t', 'sites/yibin/devices/860100000000123/down'],
      ...['-t', `sites/yibin/devices/${DEVICE}/down`, '-E', '-d'],
    ])
    // -d prints the SUBACK; 0x80 (128) for the foreign filter, QoS 0 for its own.
    expect(result.stdout).toMatch(/Subscribed \(mid: \d+\): 128, 0/)
  })
})
