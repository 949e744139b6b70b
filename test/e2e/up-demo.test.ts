import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningPlantwatt, startPlantwatt } from '../support/plantwatt-process.ts'
import { WsTestClient } from '../support/ws-client.ts'

// `plantwatt up --demo` on the built-in plant: a newcomer sees a live plant with numbers moving.

const ADMIN = 'e2e-demo-admin-token-0123456789'

describe('plantwatt up --demo', () => {
  let system: RunningPlantwatt

  beforeAll(async () => {
    system = await startPlantwatt(['--demo'], { PLANTWATT_ADMIN_TOKEN: ADMIN, PLANTWATT_DEVICE_SECRET: undefined })
  })

  afterAll(async () => {
    expect(await system?.stop()).toBe(0)
  })

  it('connects every demo device with its own session and shows the site power moving', async () => {
    const started = system.logs.find((record) => record.msg === 'demo fleet started')
    expect(started?.devices).toBe(300)

    const client = await WsTestClient.connect(`ws://127.0.0.1:${system.httpPort}/ws?token=${ADMIN}`)
    client.send({ op: 'subscribe', id: 'site', channel: 'live', scope: 'yibin' })
    // Devices spread their first packs over five seconds; wait for frames as they come.
    const first = await client.next((frame) => frame.type === 'live' && (frame.powerW as number) > 0, 15_000)
    const later = await client.next(
      (frame) => frame.type === 'live' && frame.powerW !== first.powerW && (frame.at as number) > (first.at as number),
      15_000,
    )
    expect(later.powerW).toBeGreaterThan(0)
    await client.close()

    const plant = (await (
      await fetch(`http://127.0.0.1:${system.httpPort}/api/v1/plant`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as { sites: { id: string }[] }
    expect(plant.sites.map((site) => site.id)).toEqual(['yibin'])
  })
})
