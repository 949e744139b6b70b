import type { BucketEvent } from '@plantwatt/accounting'
import { createAedesBus } from '@plantwatt/bus'
import type { PlantModel } from '@plantwatt/contract'
import { ReadingPipeline } from '@plantwatt/pipeline'
import { PlantIndex } from '@plantwatt/plant'
import { Aedes } from 'aedes'
import pino from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { TuningService } from '../src/tuning-service.ts'

// A daily bucket's `savedWh` (CONTRACT.md §5 optional field, summed by GET /api/v1/reports) covers
// the site's local day, which has 23 or 25 hours when clocks change: the savings of every minute
// of that day, none of the next. The saved minutes come in through a tuning checkpoint, as after a
// restart.

const model: PlantModel = {
  version: 1,
  sites: [
    {
      id: 'werk',
      timezone: 'Europe/Berlin',
      carbon: { gridGPerKWh: 400, residualMixGPerKWh: 600, greenShare: 0.25 },
      areas: [
        {
          id: 'a1',
          lines: [
            {
              id: 'l1',
              equipment: [
                {
                  id: 'oven',
                  type: 'oven',
                  ratedPowerW: 250_000,
                  devices: ['d1'],
                  tuning: {
                    setpoint: 'fan_hz',
                    unit: 'Hz',
                    min: 30,
                    max: 50,
                    maxStep: 2,
                    constraint: { measure: 'solvent_ppm', max: 400, margin: 0.05 },
                    mode: 'auto',
                  },
                },
              ],
            },
          ],
        },
      ],
    },
  ],
}
const plant = new PlantIndex(model)
const OVEN = 'werk/a1/l1/oven'
// Sunday 2025-03-30 in Berlin: 00:00 CET (23:00 UTC the day before) to 00:00 CEST (22:00 UTC).
const DAY_FROM = Date.UTC(2025, 2, 29, 23)
const DAY_TO = Date.UTC(2025, 2, 30, 22)

describe('daily savings on a DST change day', () => {
  const aedes = new Aedes()
  afterAll(() => new Promise<void>((resolve) => aedes.close(() => resolve())))

  it("a 1d bucket's savedWh holds the 23 hours of the local day, not 24", async () => {
    const bus = createAedesBus(aedes)
    const logger = pino({ level: 'silent' })
    const first = new TuningService({ plant, bus, logger, pipeline: new ReadingPipeline(plant) })
    const checkpoint = first.loop.checkpoint()
    // 1 Wh saved every minute from the day's start to an hour past its end.
    const saved = new Map<number, number>()
    for (let m = DAY_FROM / 60_000; m < DAY_TO / 60_000 + 60; m++) saved.set(m, 1)
    checkpoint.equipment[OVEN]!.saved = saved
    const service = new TuningService({
      plant,
      bus,
      logger,
      pipeline: new ReadingPipeline(plant),
      restored: checkpoint,
    })
    const bucket: BucketEvent = {
      scope: 'werk/a1',
      step: '1d',
      t: DAY_FROM,
      energyWh: 1000,
      co2G: 300,
      co2MarketG: 450,
      idleWh: 0,
      peakW: 0,
      revision: 0,
    }
    service.addSavings(bucket)
    expect(bucket.savedWh).toBe(23 * 60)
    expect(bucket.savedCo2G).toBeCloseTo((23 * 60 * 300) / 1000, 9)
    const hour: BucketEvent = { ...bucket, step: '1h', t: DAY_TO - 3_600_000 }
    service.addSavings(hour)
    expect(hour.savedWh).toBe(60)
  })
})
