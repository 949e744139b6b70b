import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deriveDevicePassword } from '@plantwatt/contract'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../support/example-plant.ts'
import { type RunningPlantwatt, startRole } from '../support/plantwatt-process.ts'

// Issue 12 finding 15: a split-mode processor (CONTRACT.md §8) that dies with kill -9 and is
// started again resumes its one persistent session on the broker: readings sent while it was
// down are processed once, after the restart, and no dead session is left queueing behind it.

const SECRET = 'role-restart-secret'
const DEVICES = ['860100000000123', '860100000000124', '860100000000223']
const SITE = 'yibin'

async function metric(port: number, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  const match = new RegExp(`^${name} (\\d+)`, 'm').exec(text)
  return match ? Number(match[1]) : undefined
}

/** Polls until `read` gives `wanted` or more, within `timeoutMs`; returns the last value read. */
async function reach(read: () => Promise<number | undefined>, wanted: number, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs
  let value = await read()
  while ((value ?? 0) < wanted && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    value = await read()
  }
  return value
}

describe('a split-mode processor killed and started again', () => {
  const roles: RunningPlantwatt[] = []
  const scratch: string[] = []
  let broker: RunningPlantwatt
  let brokerUrl: string
  let common: string[]
  const env = { PLANTWATT_DEVICE_SECRET: SECRET }

  const startProcessor = async (dataDir: string) => {
    const processor = await startRole(
      ['processor', ...common, '--http-port', '0', '--broker', brokerUrl, '--data-dir', dataDir],
      env,
      'processor subscribed',
    )
    roles.push(processor)
    return processor
  }

  const send = async (deviceId: string, value: number) => {
    const device = await mqtt.connectAsync(brokerUrl, {
      clientId: deviceId,
      username: deviceId,
      password: deriveDevicePassword(SECRET, deviceId),
      protocolVersion: 4,
      reconnectPeriod: 0,
    })
    await device.publishAsync(`sites/${SITE}/devices/${deviceId}/up`, `[{"n":"power","u":"W","v":${value}}]`, {
      qos: 1,
    })
    await device.endAsync()
  }

  beforeAll(async () => {
    const plantFile = join(tmpdir(), `plantwatt-role-restart-plant-${process.pid}.json`)
    await writeFile(plantFile, JSON.stringify(examplePlant()))
    scratch.push(plantFile)
    common = ['--plant', plantFile, '--host', '127.0.0.1']
    broker = await startRole(['broker', ...common, '--mqtt-port', '0', '--http-port', '0'], env)
    roles.push(broker)
    brokerUrl = `mqtt://127.0.0.1:${broker.mqttPort}`
  })

  afterAll(async () => {
    for (const role of roles.reverse()) await role.stop()
    for (const path of [...scratch, ...roles.map((role) => role.dataDir)])
      await rm(path, { recursive: true, force: true })
  })

  it('resumes its one session: readings sent while it was down are processed once', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'plantwatt-e2e-processor-'))
    const first = await startProcessor(dataDir)
    await send(DEVICES[0]!, 100)
    expect(await reach(() => metric(first.httpPort, 'plantwatt_readings_accepted_total'), 1)).toBe(1)

    first.child.kill('SIGKILL')
    await once(first.child, 'exit')
    // Sent while no processor runs: the broker holds them for the processor's session.
    for (const [i, deviceId] of DEVICES.entries()) await send(deviceId, 200 + i)

    const second = await startProcessor(dataDir)
    const accepted = () => metric(second.httpPort, 'plantwatt_readings_accepted_total')
    expect(await reach(accepted, DEVICES.length)).toBe(DEVICES.length)
    // One more, sent now, comes after the queued ones: none of them came twice.
    await send(DEVICES[0]!, 300)
    expect(await reach(accepted, DEVICES.length + 1)).toBe(DEVICES.length + 1)

    // The broker holds one persistent session for the processor, not one per start; a gateway
    // connects with a clean session and adds none.
    const gateway = await startRole(['gateway', ...common, '--http-port', '0', '--broker', brokerUrl], {
      ...env,
      PLANTWATT_ADMIN_TOKEN: 'role-restart-admin-token',
    })
    roles.push(gateway)
    expect(await metric(broker.httpPort, 'plantwatt_broker_persistent_sessions')).toBe(1)
  })
})
