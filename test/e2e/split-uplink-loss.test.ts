import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deriveDevicePassword } from '@plantwatt/contract'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../support/example-plant.ts'
import { type RunningPlantwatt, startRole } from '../support/plantwatt-process.ts'

// CONTRACT.md §4/§8: no acknowledged reading is lost. In split mode (broker and processor as
// separate processes) every QoS 1 uplink the broker PUBACKed must be accepted by the processor,
// also when a bus message for the processor (here a gateway query, QoS 0) follows the PUBACK at
// once: aedes 1.2 drops, as a duplicate, a message whose broker counter is below one it already
// delivered to that client, and a QoS 0 message published after the uplink is delivered before the
// uplink's enqueue for persistent sessions finishes (services/broker/src/broker.ts, AT_LEAST_ONCE).

const SECRET = 'split-loss-device-secret-0123456789ab'
const ADMIN = 'split-loss-admin-token-0123456789'
const DEVICES = ['860100000000123', '860100000000124']
const ROUNDS = 30

describe('split mode: every acknowledged QoS 1 uplink reaches the processor', () => {
  const roles: RunningPlantwatt[] = []
  let broker: RunningPlantwatt
  let processor: RunningPlantwatt
  let gateway: RunningPlantwatt

  beforeAll(async () => {
    const plantFile = join(tmpdir(), `plantwatt-split-loss-plant-${process.pid}.json`)
    await writeFile(plantFile, JSON.stringify(examplePlant()))
    const env = { PLANTWATT_DEVICE_SECRET: SECRET, PLANTWATT_ADMIN_TOKEN: ADMIN }
    const common = ['--plant', plantFile, '--host', '127.0.0.1']
    broker = await startRole(['broker', ...common, '--mqtt-port', '0', '--http-port', '0'], env)
    roles.push(broker)
    processor = await startRole(
      ['processor', ...common, '--http-port', '0', '--broker', `mqtt://127.0.0.1:${broker.mqttPort}`],
      env,
      'processor subscribed',
    )
    roles.push(processor)
    // A gateway as in the reported loop (a clean internal session next to the processor's).
    gateway = await startRole(
      ['gateway', ...common, '--http-port', '0', '--broker', `mqtt://127.0.0.1:${broker.mqttPort}`],
      env,
    )
    roles.push(gateway)
  })

  afterAll(async () => {
    for (const role of roles.reverse()) expect(await role.stop()).toBe(0)
  })

  const accepted = async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${processor.httpPort}/metrics`)).text()
    return Number(/^plantwatt_readings_accepted_total (\d+)/m.exec(metrics)?.[1] ?? 0)
  }

  const acceptedViaGateway = async () => {
    let sum = 0
    for (const id of DEVICES) {
      const response = await fetch(`http://127.0.0.1:${gateway.httpPort}/api/v1/devices/${id}`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      })
      sum += ((await response.json()) as { accepted?: number }).accepted ?? 0
    }
    return sum
  }

  it(`takes all ${ROUNDS * 18} readings the broker acknowledged`, async () => {
    const clients = await Promise.all(
      DEVICES.map((id) =>
        mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, {
          clientId: id,
          username: id,
          password: deriveDevicePassword(SECRET, id),
          protocolVersion: 4,
          reconnectPeriod: 0,
        }),
      ),
    )
    // The sensor listens for its setpoint commands, as the reported loop's does.
    await clients[1]!.subscribeAsync(`sites/yibin/devices/${DEVICES[1]}/down`, { qos: 1 })
    let acknowledged = 0
    try {
      const t0 = Math.floor(Date.now() / 1000) - 1800
      let t = t0
      for (let round = 0; round < ROUNDS; round++) {
        for (const [i, client] of clients.entries()) {
          const readings = []
          for (let k = 0; k < 6; k++) {
            const at = t + k * 10
            if (i === 0) readings.push({ n: 'power', u: 'W', v: 200_000, t: at })
            else readings.push({ n: 'fan_hz', v: 50, t: at }, { n: 'solvent_ppm', v: 300 + (k % 3), t: at })
          }
          // publishAsync resolves on the PUBACK: the broker acknowledged these readings.
          await client.publishAsync(`sites/yibin/devices/${DEVICES[i]}/up`, JSON.stringify(readings), { qos: 1 })
          acknowledged += readings.length
          // At once a query over the broker (a QoS 0 bus message to the processor), as the
          // reported loop's poll does right after the PUBACK.
          acceptedViaGateway().catch(() => undefined)
        }
        t += 60
        // As the reported loop: each round waits until the gateway's query (itself a round trip
        // over the broker to the processor) shows the readings taken.
        await expect.poll(acceptedViaGateway, { timeout: 3000 }).toBe(acknowledged)
      }
      await expect.poll(accepted, { timeout: 5000 }).toBe(acknowledged)
    } finally {
      for (const client of clients) await client.endAsync()
    }
  })
})
