import type { Alert, PlantModel, Reading } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { Detection, type DetectionOptions } from '../src/index.ts'

export const T0 = 1_740_000_000

/** A small plant: a press with an output counter, an oven without, a mixer without thresholds. */
export function smallPlant(): PlantModel {
  return {
    version: 1,
    sites: [
      {
        id: 's',
        name: 'Site',
        timezone: 'UTC',
        latenessS: 60,
        offlineAfterS: 900,
        carbon: { gridGPerKWh: 500, residualMixGPerKWh: 600, greenShare: 0 },
        meters: { pv: ['pv-1'], grid: [] },
        areas: [
          {
            id: 'a',
            lines: [
              {
                id: 'l',
                equipment: [
                  {
                    id: 'press',
                    type: 'press',
                    ratedPowerW: 100_000,
                    devices: ['press-p', 'press-o'],
                    idle: { offBelowW: 1000, runAboveW: 40_000, afterS: 300 },
                  },
                  {
                    id: 'oven',
                    type: 'oven',
                    ratedPowerW: 100_000,
                    devices: ['oven-p'],
                    idle: { offBelowW: 2000, runAboveW: 60_000, afterS: 300 },
                  },
                  { id: 'mixer', type: 'mixer', ratedPowerW: 100_000, devices: ['mixer-p'] },
                ],
              },
            ],
          },
        ],
      },
    ],
  } as PlantModel
}

export const PRESS = 's/a/l/press'
export const OVEN = 's/a/l/oven'
export const MIXER = 's/a/l/mixer'

export function power(time: number, value: number): Reading {
  return { name: 'power', time, value, field: 'v', unit: 'W' }
}

export function output(time: number, value: number): Reading {
  return { name: 'output', time, value, field: 's', unit: 'count' }
}

export interface Harness {
  plant: PlantIndex
  detection: Detection
  events: Alert[]
  spans: [string, number, number | undefined][]
  energyCalls: [string, number, number][]
  feed(deviceId: string, reading: Reading): void
  /** Moves the site clock and collects events. */
  clock(tS: number): void
  take(): Alert[]
}

export function harness(options?: Partial<DetectionOptions>, model = smallPlant()): Harness {
  const plant = new PlantIndex(model)
  const spans: [string, number, number | undefined][] = []
  const energyCalls: [string, number, number][] = []
  const detection = new Detection(
    plant,
    {
      // 10 kW flat: wasted energy is duration × 10 kW; CO2 at 0.5 g/Wh.
      energyBetween: (scope, fromS, toS) => {
        energyCalls.push([scope, fromS, toS])
        const wh = ((toS - fromS) / 3600) * 10_000
        return { wh, co2G: wh * 0.5 }
      },
      onIdleSpan: (scope, startS, endS) => spans.push([scope, startS, endS]),
    },
    options,
  )
  const events: Alert[] = []
  const h: Harness = {
    plant,
    detection,
    events,
    spans,
    energyCalls,
    feed(deviceId, reading) {
      detection.observe(plant.device(deviceId)!, reading)
      for (const e of detection.takeAlertEvents()) events.push(e.event)
    },
    clock(tS) {
      detection.advance('s', tS)
      for (const e of detection.takeAlertEvents()) events.push(e.event)
    },
    take() {
      const out = [...events]
      events.length = 0
      return out
    },
  }
  return h
}
