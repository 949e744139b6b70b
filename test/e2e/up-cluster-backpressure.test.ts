import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deriveDevicePassword, deviceTopic } from '@plantwatt/contract'
import { generatePlant } from '@plantwatt/fleet'
import { PlantIndex } from '@plantwatt/plant'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningPlantwatt, startPlantwatt } from '../support/plantwatt-process.ts'

// Issue 16: the records a broker worker forwards to the primary wait, unapplied, in the IPC
// channel and the worker's memory. When the primary lags (here: stopped with SIGSTOP) the worker
// stops taking its devices' uplinks once `PLANTWATT_FORWARD_MAX_UNAPPLIED` records are unapplied,
// instead of queueing without bound, and reads on once the primary has caught up. Nothing it
// acknowledged is lost: the journal held it all along.

const SECRET = 'e2e-backpressure-secret-0123456789ab'
const ADMIN = 'e2e-backpressure-admin-0123456789'
const LIMIT = 20
const PACKS = 200
const model = generatePlant({ devices: 10, seed: 16 })
const plant = new PlantIndex(model)
const device = [...plant.devices.values()].find((d) => d.equipment !== undefined)!

describe('plantwatt up --workers 2: a lagging primary pauses the worker, nothing is lost', () => {
  let system: RunningPlantwatt

  beforeAll(async () => {
    const plantFile = join(tmpdir(), `plantwatt-e2e-backpressure-${process.pid}.json`)
    await writeFile(plantFile, JSON.stringify(model))
    system = await startPlantwatt(['--plant', plantFile, '--workers', '2'], {
      PLANTWATT_DEVICE_SECRET: SECRET,
      PLANTWATT_ADMIN_TOKEN: ADMIN,
      PLANTWATT_FORWARD_MAX_UNAPPLIED: String(LIMIT),
    })
  }, 120_000)

  afterAll(async () => {
    if (system && system.child.exitCode === null) system.child.kill('SIGCONT')
    expect(await system?.stop()).toBe(0)
  }, 60_000)

  it('stops reading the device while the primary is stopped, then accounts every acknowledged reading', async () => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${system.mqttPort}`, {
      clientId: device.deviceId,
      username: device.deviceId,
      password: deriveDevicePassword(SECRET, device.deviceId),
      protocolVersion: 4,
      reconnectPeriod: 0,
    })
    const topic = deviceTopic(device.siteId, device.deviceId, 'up')
    const baseS = Math.floor(Date.now() / 1000) - 600
    system.child.kill('SIGSTOP')
    let acked = 0
    // One pack at a time, as a device waits for its PUBACK: the worker's pause shows as PUBACKs
    // that stop coming.
    const publishing = (async () => {
      for (let k = 0; k < PACKS; k++) {
        await client.publishAsync(topic, JSON.stringify([{ n: 'power', u: 'W', v: 100, t: baseS + k }]), { qos: 1 })
        acked++
      }
    })()
    // The worker logs its pause (its stdout is not the stopped primary's to read).
    await system.waitForLog('reading paused: the primary lags', 30_000)
    const ackedAtPause = acked
    expect(ackedAtPause).toBeLessThan(PACKS)
    expect(ackedAtPause).toBeGreaterThanOrEqual(LIMIT)
    system.child.kill('SIGCONT')
    await system.waitForLog('reading resumed', 30_000)
    await publishing
    expect(acked).toBe(PACKS)
    await client.endAsync()

    const deadline = Date.now() + 30_000
    let accepted = 0
    while (accepted < PACKS && Date.now() < deadline) {
      const response = await fetch(`http://127.0.0.1:${system.httpPort}/api/v1/devices/${device.deviceId}`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      })
      accepted = ((await response.json()) as { accepted: number }).accepted
      if (accepted < PACKS) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(accepted).toBe(PACKS)
    const metrics = await (await fetch(`http://127.0.0.1:${system.httpPort}/metrics`)).text()
    expect(Number(/^plantwatt_up_worker_read_pauses_total\s+(\S+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1)
    expect(Number(/^plantwatt_up_worker_unapplied_records\s+(\S+)/m.exec(metrics)?.[1])).toBe(0)
  }, 120_000)
})
