import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Bus, createAedesBus } from '@plantwatt/bus'
import { PlantIndex } from '@plantwatt/plant'
import { Aedes } from 'aedes'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { Processor } from '../src/processor.ts'

// Issue 13: a restart restores the latest power of each device, so live power does not read 0
// until devices report again. Real checkpoint file, real in-process bus.

const plant = new PlantIndex(examplePlant())
const NOW_MS = 1_732_250_000_000
const SITE = 'yibin'
const OVEN_1 = 'yibin/electrode/coating-1/coater-1-oven'

describe('processor restart: live power', () => {
  let dir: string
  let aedes: Aedes
  let bus: Bus

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-live-power-'))
    aedes = await Aedes.createBroker()
    bus = createAedesBus(aedes)
  })

  afterAll(async () => {
    await bus.close()
    await new Promise<void>((resolve) => aedes.close(() => resolve()))
    await rm(dir, { recursive: true, force: true })
  })

  const start = async () => {
    const processor = new Processor({
      plant,
      bus,
      logger: pino({ level: 'silent' }),
      now: () => NOW_MS,
      checkpointPath: join(dir, 'checkpoint.v8'),
      publishIntervalMs: 20,
    })
    await processor.start()
    return processor
  }

  it('reads the same power per equipment and scope after a restart as before it', async () => {
    const first = await start()
    const send = (id: string, t: number, watts: number) =>
      bus.publish(
        `sites/${SITE}/devices/${id}/up`,
        Buffer.from(JSON.stringify([{ bn: `urn:dev:imei:${id}:`, bt: t, n: 'power', u: 'W', v: watts }])),
      )
    const t = NOW_MS / 1000 - 30
    await send('860100000000123', t - 10, 70_000)
    await send('860100000000123', t, 90_000)
    await send('860100000000124', t, 15_000)
    await send('860100000000223', t, 120_000)
    const site = plant.sites.get(SITE)!.node
    await expect.poll(() => first.figures(site).powerW).toBe(225_000)
    const before = plant.sites.get(SITE)!.scopes.map((node) => [node.scope, first.figures(node).powerW])
    await first.stop()

    const second = await start()
    expect(plant.sites.get(SITE)!.scopes.map((node) => [node.scope, second.figures(node).powerW])).toEqual(before)
    expect(second.state.equipmentLive(plant.scopes.get(OVEN_1)!)?.powerW).toBe(105_000)
    await second.stop()
  })
})
