import { describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { LiveState } from '../src/live-state.ts'
import { isWithinScope, PlantIndex } from '../src/plant-index.ts'

const plant = new PlantIndex(examplePlant())
const T = 1_732_250_000

function fresh() {
  return new LiveState(plant)
}

describe('PlantIndex', () => {
  it('indexes scopes, devices and their equipment', () => {
    expect(plant.scope('yibin/electrode/coating-1/coater-1-oven')?.level).toBe('equipment')
    expect(plant.device('860100000000124')?.equipment?.scope).toBe('yibin/electrode/coating-1/coater-1-oven')
    expect(plant.device('860100000000001')).toMatchObject({ role: 'pv', equipment: undefined })
    expect(plant.sites.get('yibin')?.scopes.map((node) => node.scope)).toEqual([
      'yibin',
      'yibin/electrode',
      'yibin/electrode/coating-1',
      'yibin/electrode/coating-1/coater-1-oven',
      'yibin/electrode/coating-2',
      'yibin/electrode/coating-2/coater-2-oven',
    ])
  })

  it('tells whether a scope lies within another', () => {
    expect(isWithinScope('yibin/electrode', 'yibin')).toBe(true)
    expect(isWithinScope('yibin', 'yibin')).toBe(true)
    expect(isWithinScope('yibin-2/electrode', 'yibin')).toBe(false)
    expect(isWithinScope('yibin', 'yibin/electrode')).toBe(false)
  })
})

describe('LiveState', () => {
  it('sums the latest power of equipment devices into every scope, site meters excluded', () => {
    const state = fresh()
    state.applyPower(plant.device('860100000000123')!, T, 1000)
    state.applyPower(plant.device('860100000000124')!, T, 500)
    state.applyPower(plant.device('860100000000223')!, T, 250)
    state.applyPower(plant.device('860100000000001')!, T, 99_999)
    expect(state.figures(plant.scope('yibin/electrode/coating-1/coater-1-oven')!).powerW).toBe(1500)
    expect(state.figures(plant.scope('yibin/electrode/coating-1')!).powerW).toBe(1500)
    expect(state.figures(plant.scope('yibin/electrode')!).powerW).toBe(1750)
    expect(state.figures(plant.scope('yibin')!).powerW).toBe(1750)
  })

  it('keeps the newest reading by event time, not by arrival', () => {
    const state = fresh()
    const device = plant.device('860100000000123')!
    state.applyPower(device, T + 10, 2000)
    state.applyPower(device, T + 5, 9000) // a late batch from a sleeping device
    expect(state.devicePower(device.deviceId)).toEqual({ timeS: T + 10, powerW: 2000 })
    state.applyPower(device, T + 11, 3000)
    expect(state.devicePower(device.deviceId)?.powerW).toBe(3000)
  })

  it('classifies equipment by the model thresholds, unknown without them', () => {
    const state = fresh()
    const oven = plant.device('860100000000123')!.equipment!
    const other = plant.device('860100000000223')!.equipment!
    expect(state.equipmentState(oven)).toBe('unknown')
    for (const [power, expected] of [
      [1999, 'off'],
      [2000, 'idle'],
      [59_999, 'idle'],
      [60_000, 'running'],
    ] as const) {
      state.applyPower(plant.device('860100000000123')!, T, power)
      expect(state.equipmentState(oven)).toBe(expected)
    }
    state.applyPower(plant.device('860100000000223')!, T, 5000)
    expect(state.equipmentState(other)).toBe('unknown')
    state.applyPower(plant.device('860100000000123')!, T + 1, 30_000)
    expect(state.figures(plant.scope('yibin')!).idle).toEqual({ count: 1, powerW: 30_000 })
  })

  it('moves the site clock forward only, and reports grid intensity of its local hour', () => {
    const state = fresh()
    // 2024-11-22T04:00:00Z is 12:00 in Asia/Shanghai, where the example profile gives 430.
    const noonShanghai = Date.UTC(2024, 10, 22, 4) / 1000
    state.observeTime('yibin', noonShanghai)
    state.observeTime('yibin', noonShanghai - 100)
    expect(state.siteClock('yibin')).toBe(noonShanghai)
    expect(state.siteGridIntensity('yibin')).toBe(430)
    expect(state.figures(plant.scope('yibin')!).at).toBe(noonShanghai * 1000)
  })

  it('reports what changed since the last call, once', () => {
    const state = fresh()
    state.applyPower(plant.device('860100000000223')!, T, 100)
    state.observeTime('yibin', T)
    const changes = state.takeChanges()
    expect([...changes.sites]).toEqual(['yibin'])
    expect(changes.scopes.get('yibin')?.map((node) => node.scope)).toEqual([
      'yibin/electrode/coating-2/coater-2-oven',
      'yibin/electrode/coating-2',
      'yibin/electrode',
      'yibin',
    ])
    const again = state.takeChanges()
    expect(again.sites.size).toBe(0)
    expect(again.scopes.size).toBe(0)
  })
})
