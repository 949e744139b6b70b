import { internalKey, internalPassword } from '@plantwatt/bus'
import { deriveDevicePassword } from '@plantwatt/contract'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningMosquitto, startMosquitto } from '../bench/mosquitto.ts'

// CONTRACT.md §9: for an external broker plantwatt generates what it needs to enforce §4 and the
// internal-client rules (src/mosquitto-files.ts). Here Debian's Mosquitto runs on those files.

const SECRET = 'mosquitto-files-secret'
const DEVICE = '860100000000123'
const DOWN = `sites/yibin/devices/${DEVICE}/down`

describe('the password and ACL files plantwatt generates for Mosquitto', () => {
  let mosquitto: RunningMosquitto
  const clients: MqttClient[] = []
  const connect = async (options: IClientOptions) => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mosquitto.port}`, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      ...options,
    })
    clients.push(client)
    return client
  }
  const role = (name: 'processor' | 'gateway') =>
    connect({
      clientId: `plantwatt-${name}-host.example`,
      username: `plantwatt-${name}`,
      password: internalPassword(internalKey(SECRET), name),
    })

  beforeAll(async () => {
    mosquitto = await startMosquitto({ devices: [{ id: DEVICE }], deviceSecret: SECRET })
  })

  afterAll(async () => {
    for (const client of clients) await client.endAsync(true)
    expect(await mosquitto.stop()).toEqual([])
  })

  it('lets each role in with its own password, and only the processor command a device', async () => {
    const device = await connect({ clientId: DEVICE, username: DEVICE, password: deriveDevicePassword(SECRET, DEVICE) })
    await device.subscribeAsync(DOWN, { qos: 1 })
    const first = new Promise<string>((resolve) => device.once('message', (_topic, payload) => resolve(`${payload}`)))
    const gateway = await role('gateway')
    const processor = await role('processor')
    // Mosquitto acknowledges a denied PUBLISH and drops it: the gateway's command never arrives.
    await gateway.publishAsync(DOWN, 'from-gateway', { qos: 1 })
    await processor.publishAsync(DOWN, 'from-processor', { qos: 1 })
    expect(await first).toBe('from-processor')
  })

  it('refuses the device secret as an internal password', async () => {
    await expect(
      connect({ clientId: 'plantwatt-processor-x', username: 'plantwatt-processor', password: SECRET }),
    ).rejects.toThrow(/not authori[sz]ed|bad user name or password/i)
  })
})
