import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Bus, createAedesBus } from '@plantwatt/bus'
import { PlantIndex } from '@plantwatt/plant'
import { Aedes } from 'aedes'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { Processor } from '../src/processor.ts'

// Issue 12 finding 2, the processor's checkpoint file: a checkpoint asked for while another is
// being written must describe the state at the time it was asked for, not the older one in flight.
// The stop checkpoint is the case that matters: without a journal it is all a restart gets.
// Real files, a real in-process bus.

const plant = new PlantIndex(examplePlant())
const OVEN = 'yibin/electrode/coating-1/coater-1-oven'

describe('processor checkpoint at stop', () => {
  let broker: Aedes
  let bus: Bus

  beforeAll(async () => {
    broker = await Aedes.createBroker()
    bus = createAedesBus(broker)
  })

  afterAll(async () => {
    await bus.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
  })

  it('writes the state as it stands at stop even while an earlier checkpoint is in flight', async () => {
    const checkpointPath = join(await mkdtemp(join(tmpdir(), 'plantwatt-ckpt-')), 'checkpoint.v8')
    const open = () =>
      new Processor({
        plant,
        bus,
        logger: pino({ level: 'silent' }),
        checkpointPath,
        checkpointIntervalMs: 3_600_000,
      })
    const processor = open()
    await processor.start()
    const inFlight = processor.checkpoint()
    // A change after that checkpoint took its snapshot, before it is on disk.
    const alert = processor.state.detection.alerts.raise({
      kind: 'anomaly',
      scope: OVEN,
      key: 'after-snapshot',
      sinceS: 1_732_250_000,
      atS: 1_732_250_060,
      severity: 'warning',
      message: 'raised after the in-flight checkpoint',
      data: { powerW: 1000 },
    })
    await processor.stop()
    await inFlight

    const restarted = open()
    await restarted.start()
    try {
      expect(restarted.state.detection.alertsSince(0).events.map((e) => e.event.id)).toContain(alert!.id)
    } finally {
      await restarted.stop()
    }
  })
})
