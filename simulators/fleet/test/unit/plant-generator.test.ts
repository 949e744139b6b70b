import { type Equipment, type PlantModel, validatePlant } from '@plantwatt/contract'
import { describe, expect, it } from 'vitest'
import { createRng, deviceRolesOf, generatePlant } from '../../src/plant-generator.ts'

function allEquipment(plant: PlantModel): Equipment[] {
  return plant.sites.flatMap((site) => site.areas.flatMap((area) => area.lines.flatMap((line) => line.equipment)))
}

function allDevices(plant: PlantModel): string[] {
  return plant.sites.flatMap((site) => [
    ...(site.meters?.pv ?? []),
    ...(site.meters?.grid ?? []),
    ...allEquipment({ version: 1, sites: [site] }).flatMap((equipment) => equipment.devices),
  ])
}

function luhnValid(id: string): boolean {
  let sum = 0
  for (let i = 0; i < id.length; i++) {
    let digit = Number(id[id.length - 1 - i])
    if (i % 2 === 1) {
      digit *= 2
      if (digit > 9) digit -= 9
    }
    sum += digit
  }
  return sum % 10 === 0
}

describe('createRng', () => {
  it('is deterministic per seed and stays in [0, 1)', () => {
    const a = createRng(7)
    const b = createRng(7)
    const c = createRng(8)
    const xs = Array.from({ length: 1000 }, () => a())
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs)
    expect(Array.from({ length: 1000 }, () => c())).not.toEqual(xs)
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true)
    const mean = xs.reduce((sum, x) => sum + x, 0) / xs.length
    expect(mean).toBeGreaterThan(0.45)
    expect(mean).toBeLessThan(0.55)
  })
})

describe('generatePlant', () => {
  it.each([1, 5, 9, 10, 37, 300, 5000])('makes a valid plant with exactly %i devices', (n) => {
    const plant = generatePlant({ devices: n })
    const result = validatePlant(plant)
    expect(result.ok ? [] : result.problems).toEqual([])
    const devices = allDevices(plant)
    expect(devices).toHaveLength(n)
    expect(new Set(devices).size).toBe(n)
    for (const id of devices) {
      expect(id).toMatch(/^8601\d{11}$/)
      expect(luhnValid(id)).toBe(true)
    }
    for (const equipment of allEquipment(plant)) {
      expect(equipment.devices.length).toBeGreaterThanOrEqual(1)
      expect(equipment.devices.length).toBeLessThanOrEqual(3)
    }
  })

  it('has site meters (one PV, one grid) from 10 devices on, none for a tiny plant', () => {
    expect(generatePlant({ devices: 9 }).sites[0]!.meters).toBeUndefined()
    const meters = generatePlant({ devices: 10 }).sites[0]!.meters
    expect(meters?.pv).toHaveLength(1)
    expect(meters?.grid).toHaveLength(1)
  })

  it('describes the Yibin site of the contract example', () => {
    const site = generatePlant({ devices: 300 }).sites[0]!
    expect(site.id).toBe('yibin')
    expect(site.timezone).toBe('Asia/Shanghai')
    expect(site.carbon).toEqual({
      gridGPerKWh: [
        610, 605, 600, 598, 597, 600, 612, 630, 580, 520, 470, 440, 430, 435, 450, 490, 560, 640, 660, 650, 640, 630,
        620, 615,
      ],
      residualMixGPerKWh: 680,
      greenShare: 0.266,
    })
    expect(site.areas.map((area) => area.id)).toEqual(['electrode', 'assembly', 'formation', 'utilities'])
    expect(generatePlant({ devices: 20, siteId: 'hefei' }).sites[0]!.id).toBe('hefei')
  })

  it('starts with the tuned coating oven of the contract example', () => {
    const plant = generatePlant({ devices: 1 })
    const [equipment] = allEquipment(plant)
    expect(plant.sites[0]!.areas[0]!.lines[0]!.id).toBe('coating-1')
    expect(equipment?.id).toBe('coater-1-oven')
    expect(equipment?.tuning).toEqual({
      setpoint: 'fan_hz',
      unit: 'Hz',
      min: 30,
      max: 50,
      maxStep: 2,
      constraint: { measure: 'solvent_ppm', max: 400, margin: 0.05 },
      mode: 'auto',
      commandTimeoutS: 600,
    })
  })

  it('keeps plausible proportions and rated powers as it grows', () => {
    for (const n of [300, 5000]) {
      const equipment = allEquipment(generatePlant({ devices: n }))
      const count = (type: string) => equipment.filter((e) => e.type === type).length
      const ovens = count('oven')
      expect(ovens).toBeGreaterThan(0)
      // One coater drive, exhaust fan and NMP recovery per oven; two mixers per coating line.
      expect(Math.abs(count('coater') - ovens)).toBeLessThanOrEqual(1)
      expect(Math.abs(count('mixer') - 2 * ovens)).toBeLessThanOrEqual(4)
      expect(count('formation-cabinet')).toBeGreaterThan(ovens)
      for (const e of equipment.filter((x) => x.type === 'oven')) {
        expect(e.ratedPowerW).toBeGreaterThanOrEqual(225_000)
        expect(e.ratedPowerW).toBeLessThanOrEqual(275_000)
      }
      for (const e of equipment.filter((x) => x.type === 'chiller')) {
        expect(e.ratedPowerW).toBeGreaterThanOrEqual(360_000)
        expect(e.ratedPowerW).toBeLessThanOrEqual(440_000)
      }
    }
  })

  it('gives about half of the production equipment idle thresholds and none to utilities', () => {
    const equipment = allEquipment(generatePlant({ devices: 5000 }))
    const production = equipment.filter((e) => ['coater', 'mixer', 'winder', 'stacker', 'calender'].includes(e.type))
    const given = production.filter((e) => e.idle !== undefined).length / production.length
    expect(given).toBeGreaterThan(0.35)
    expect(given).toBeLessThan(0.65)
    expect(equipment.filter((e) => e.type === 'chiller' && e.idle !== undefined)).toEqual([])
  })

  it('is deterministic: same seed, same plant; another seed, another plant', () => {
    expect(generatePlant({ devices: 500, seed: 3 })).toEqual(generatePlant({ devices: 500, seed: 3 }))
    expect(generatePlant({ devices: 500 })).toEqual(generatePlant({ devices: 500, seed: 1 }))
    expect(generatePlant({ devices: 500, seed: 4 })).not.toEqual(generatePlant({ devices: 500, seed: 3 }))
  })

  it('generates 100,000 devices', () => {
    expect(allDevices(generatePlant({ devices: 100_000 }))).toHaveLength(100_000)
  })

  it('refuses device counts outside 1 to 100,000', () => {
    expect(() => generatePlant({ devices: 0 })).toThrow(RangeError)
    expect(() => generatePlant({ devices: 100_001 })).toThrow(/100000/)
    expect(() => generatePlant({ devices: 100_001 })).toThrow(RangeError)
    expect(() => generatePlant({ devices: 2.5 })).toThrow(RangeError)
    expect(() => generatePlant({ devices: 10, siteId: 'Yibin' })).toThrow(RangeError)
  })
})

describe('deviceRolesOf', () => {
  const oven = (devices: string[]): Equipment => ({ id: 'o', type: 'oven', ratedPowerW: 1, devices })
  const cabinet = (devices: string[]): Equipment => ({ id: 'c', type: 'formation-cabinet', ratedPowerW: 1, devices })

  it('reads back the layout [power, output?, process?]', () => {
    expect(deviceRolesOf(oven(['p', 's']))).toEqual({
      power: 'p',
      output: undefined,
      process: { device: 's', measure: 'solvent_ppm' },
    })
    expect(deviceRolesOf(oven(['p']))).toEqual({
      power: 'p',
      output: undefined,
      process: { device: 'p', measure: 'solvent_ppm' },
    })
    expect(deviceRolesOf(cabinet(['p', 'o', 's']))).toMatchObject({ output: 'o', process: { device: 's' } })
    expect(deviceRolesOf(cabinet(['p', 's']))).toMatchObject({ output: 'p', process: { device: 's' } })
    expect(deviceRolesOf({ id: 'm', type: 'mixer', ratedPowerW: 1, devices: ['p', 'o'] })).toEqual({
      power: 'p',
      output: 'o',
      process: undefined,
    })
    expect(deviceRolesOf({ id: 'x', type: 'press', ratedPowerW: 1, devices: ['p', 'q'] })).toEqual({
      power: 'p',
      output: undefined,
      process: undefined,
    })
  })
})
