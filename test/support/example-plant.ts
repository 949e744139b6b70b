import type { PlantModel } from '@plantwatt/contract'

/** The plant of CONTRACT.md §1's example, with a second line so scope roll-ups can be told apart. */
export function examplePlant(): PlantModel {
  return {
    version: 1,
    sites: [
      {
        id: 'yibin',
        name: 'Yibin cell plant',
        timezone: 'Asia/Shanghai',
        carbon: {
          gridGPerKWh: [
            610, 605, 600, 598, 597, 600, 612, 630, 580, 520, 470, 440, 430, 435, 450, 490, 560, 640, 660, 650, 640,
            630, 620, 615,
          ],
          residualMixGPerKWh: 680,
          greenShare: 0.266,
        },
        meters: { pv: ['860100000000001'], grid: [] },
        areas: [
          {
            id: 'electrode',
            name: 'Electrode workshop',
            lines: [
              {
                id: 'coating-1',
                name: 'Coating line 1',
                equipment: [
                  {
                    id: 'coater-1-oven',
                    type: 'oven',
                    ratedPowerW: 250000,
                    devices: ['860100000000123', '860100000000124'],
                    idle: { offBelowW: 2000, runAboveW: 60000, afterS: 300 },
                    tuning: {
                      setpoint: 'fan_hz',
                      unit: 'Hz',
                      min: 30,
                      max: 50,
                      maxStep: 2,
                      constraint: { measure: 'solvent_ppm', max: 400, margin: 0.05 },
                      mode: 'auto',
                      commandTimeoutS: 600,
                    },
                  },
                ],
              },
              {
                id: 'coating-2',
                name: 'Coating line 2',
                equipment: [{ id: 'coater-2-oven', type: 'oven', ratedPowerW: 250000, devices: ['860100000000223'] }],
              },
            ],
          },
        ],
      },
    ],
  }
}
