import type { PlantModel, Reading, SiteCarbon } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { Accounting, type AccountingOptions } from '../src/index.ts'

export const CARBON: SiteCarbon = { gridGPerKWh: 500, residualMixGPerKWh: 700, greenShare: 0.2 }

/** A site with two lines (two equipment on l1, one on l2), optional PV and grid meters. */
export function plantOf(opts: { timezone?: string; pv?: boolean; grid?: boolean; carbon?: SiteCarbon } = {}) {
  const model: PlantModel = {
    version: 1,
    sites: [
      {
        id: 's',
        timezone: opts.timezone ?? 'UTC',
        latenessS: 120,
        carbon: opts.carbon ?? CARBON,
        meters: { pv: opts.pv ? ['pv1'] : [], grid: opts.grid ? ['grid1'] : [] },
        areas: [
          {
            id: 'a',
            lines: [
              {
                id: 'l1',
                equipment: [
                  { id: 'e1', type: 'oven', ratedPowerW: 100_000, devices: ['d1', 'd1b'] },
                  { id: 'e2', type: 'fan', ratedPowerW: 100_000, devices: ['d2'] },
                ],
              },
              { id: 'l2', equipment: [{ id: 'e3', type: 'press', ratedPowerW: 100_000, devices: ['d3'] }] },
            ],
          },
        ],
      },
    ],
  }
  return new PlantIndex(model)
}

export const E1 = 's/a/l1/e1'
export const E2 = 's/a/l1/e2'
export const L1 = 's/a/l1'

export function energy(time: number, value: number): Reading {
  return { name: 'energy', time, value, field: 's', unit: 'Wh' }
}

export function power(time: number, value: number): Reading {
  return { name: 'power', time, value, field: 'v', unit: 'W' }
}

export function engineOf(plant: PlantIndex, options?: AccountingOptions) {
  const engine = new Accounting(plant, options)
  const send = (deviceId: string, reading: Reading) => engine.accept(plant.device(deviceId)!, reading)
  const minuteWh = (scope: string, fromMs = 0, toMs = 1e15) =>
    engine.history(scope, '1m', fromMs, toMs).map((r) => Math.round(r.energyWh * 1000) / 1000)
  return { engine, send, minuteWh }
}

/** Epoch seconds of a UTC time. */
export function utc(y: number, mo: number, d: number, h = 0, mi = 0, s = 0): number {
  return Date.UTC(y, mo - 1, d, h, mi, s) / 1000
}
