import { describe, expect, it } from 'vitest'
import { PlantModelSchema, type PlantProblem, validatePlant } from '../src/index.ts'

// The example of CONTRACT.md §1, verbatim.
const CONTRACT_EXAMPLE = `{
  "version": 1,
  "sites": [{
    "id": "yibin",
    "name": "Yibin cell plant",
    "timezone": "Asia/Shanghai",
    "latenessS": 120,
    "offlineAfterS": 900,
    "maxAgeS": 604800,
    "carbon": {
      "gridGPerKWh": [610, 605, 600, 598, 597, 600, 612, 630, 580, 520, 470, 440,
                      430, 435, 450, 490, 560, 640, 660, 650, 640, 630, 620, 615],
      "residualMixGPerKWh": 680,
      "greenShare": 0.266
    },
    "meters": { "pv": ["860100000000001"], "grid": [] },
    "areas": [{
      "id": "electrode", "name": "Electrode workshop",
      "lines": [{
        "id": "coating-1", "name": "Coating line 1",
        "equipment": [{
          "id": "coater-1-oven", "type": "oven", "ratedPowerW": 250000,
          "devices": ["860100000000123", "860100000000124"],
          "idle": { "offBelowW": 2000, "runAboveW": 60000, "afterS": 300 },
          "tuning": {
            "setpoint": "fan_hz", "unit": "Hz", "min": 30, "max": 50, "maxStep": 2,
            "constraint": { "measure": "solvent_ppm", "max": 400, "margin": 0.05 },
            "mode": "auto", "commandTimeoutS": 600
          }
        }]
      }]
    }]
  }]
}`

type Json = any

const example = (): Json => JSON.parse(CONTRACT_EXAMPLE)

const equipment = (id: string, devices: string[], extra: Json = {}): Json => ({
  id,
  type: 'fan',
  ratedPowerW: 75_000,
  devices,
  ...extra,
})

/** A bigger valid plant: two areas with several lines, so deep paths can be exercised. */
function bigPlant(): Json {
  const plant = example()
  const site = plant.sites[0]
  site.areas.push({
    id: 'assembly',
    lines: [
      {
        id: 'l1',
        equipment: [
          equipment('winder-1', ['860100000001001']),
          equipment('winder-2', ['860100000001002']),
          equipment('oven-2', ['860100000001003'], {
            tuning: {
              setpoint: 'fan_hz',
              min: 30,
              max: 50,
              maxStep: 2,
              constraint: { measure: 'solvent_ppm', max: 400, margin: 0.05 },
              mode: 'advise',
            },
          }),
        ],
      },
    ],
  })
  return plant
}

function problemsOf(input: unknown): PlantProblem[] {
  const result = validatePlant(input)
  if (result.ok) throw new Error('expected the plant to be refused')
  return result.problems
}

function expectOneProblem(input: unknown, path: string, message?: RegExp): PlantProblem {
  const problems = problemsOf(input)
  expect(problems.map((p) => p.path)).toEqual([path])
  const problem = problems[0]!
  if (message) expect(problem.message).toMatch(message)
  return problem
}

describe('validatePlant: valid files', () => {
  it('accepts the example of CONTRACT.md §1', () => {
    const result = validatePlant(example())
    expect(result).toEqual({ ok: true, plant: example() })
  })

  it('accepts a minimal site: optional settings, carbon, meters, names, idle and tuning absent', () => {
    const plant = {
      version: 1,
      sites: [{ id: 's', timezone: 'UTC', areas: [{ id: 'a', lines: [{ id: 'l', equipment: [] }] }] }],
    }
    expect(validatePlant(plant).ok).toBe(true)
  })

  it('accepts a single number as gridGPerKWh', () => {
    const plant = example()
    plant.sites[0].carbon.gridGPerKWh = 550
    expect(validatePlant(plant).ok).toBe(true)
  })

  it('lets sibling ids repeat in different parents', () => {
    const plant = bigPlant()
    const site = plant.sites[0]
    site.areas[0].lines[0].id = 'l1'
    site.areas[0].lines[0].equipment[0].id = 'winder-1'
    site.areas.push({ id: 'formation', lines: [{ id: 'l1', equipment: [equipment('winder-1', ['x-1'])] }] })
    plant.sites.push({ id: 'other', timezone: 'Europe/Berlin', areas: [{ id: 'electrode', lines: [] }] })
    expect(validatePlant(plant).ok).toBe(true)
  })

  it('returns a deeply frozen copy without defaults applied', () => {
    const input = example()
    delete input.sites[0].latenessS
    const result = validatePlant(input)
    if (!result.ok) throw new Error(JSON.stringify(result.problems))
    const plant = result.plant
    expect(Object.isFrozen(plant)).toBe(true)
    expect(Object.isFrozen(plant.sites[0]!.areas[0]!.lines[0]!.equipment[0]!.tuning!.constraint)).toBe(true)
    expect(Object.isFrozen(plant.sites[0]!.carbon!.gridGPerKWh)).toBe(true)
    expect(plant.sites[0]!.latenessS).toBeUndefined()
    expect(Object.isFrozen(input)).toBe(false)
  })

  it('exports the schema as plain JSON Schema', () => {
    const json = JSON.parse(JSON.stringify(PlantModelSchema))
    expect(json.type).toBe('object')
    expect(json.additionalProperties).toBe(false)
    expect(json.required).toEqual(['version', 'sites'])
  })
})

describe('validatePlant: every problem, once, at its path', () => {
  it('reports exactly three problems for three distinct mistakes', () => {
    const plant = bigPlant()
    plant.version = 2
    plant.sites[0].areas[1].lines[0].id = 'Line 1'
    plant.sites[0].areas[1].lines[0].equipment[2].tuning.maxStep = 0
    const problems = problemsOf(plant)
    expect(problems).toEqual([
      { path: 'version', message: 'version must be 1, got 2' },
      { path: 'sites[0].areas[1].lines[0].id', message: expect.stringMatching(/^id 'Line 1' must match \^/) },
      {
        path: 'sites[0].areas[1].lines[0].equipment[2].tuning.maxStep',
        message: 'maxStep must be a positive number, got 0',
      },
    ])
  })

  it('refuses input that is not an object, at the root $', () => {
    for (const input of [null, undefined, 42, 'plant', [], [{ version: 1 }]]) {
      expect(expectOneProblem(input, '$').message).toMatch(/plant file must be a JSON object/)
    }
  })

  it('requires version and sites', () => {
    expect(problemsOf({})).toEqual([
      { path: 'version', message: 'version is required' },
      { path: 'sites', message: 'sites is required' },
    ])
  })

  it('refuses a file without sites', () => {
    expectOneProblem({ version: 1, sites: [] }, 'sites', /must not be empty/)
  })

  it('reports a wrong type once, not once per alternative', () => {
    const plant = example()
    plant.sites[0].areas[0].lines[0].equipment[0].ratedPowerW = '250 kW'
    expectOneProblem(plant, 'sites[0].areas[0].lines[0].equipment[0].ratedPowerW', /must be a number, got '250 kW'/)
  })

  it('lists structural and semantic problems together in document order', () => {
    const plant = bigPlant()
    plant.sites[0].areas[0].lines[0].equipment[0].devices.push('860100000000001') // the PV meter
    plant.sites[0].areas[0].lines[0].equipment[0].idle.afterS = 0
    plant.sites[0].areas[1].lines[0].id = 'coating-1'
    plant.sites[0].areas[1].id = 'electrode'
    expect(problemsOf(plant).map((p) => p.path)).toEqual([
      'sites[0].areas[0].lines[0].equipment[0].devices[2]',
      'sites[0].areas[0].lines[0].equipment[0].idle.afterS',
      'sites[0].areas[1].id',
    ])
  })

  it('reports each of many problems across the tree', () => {
    const plant = bigPlant()
    plant.sites[0].timezone = 'Mars/Olympus'
    plant.sites[0].areas[1].lines[0].equipment[0].devices = []
    plant.sites[0].areas[1].lines[0].equipment[1].idle = { offBelowW: -1, runAboveW: 10, afterS: 0 }
    plant.sites[0].carbon.greenShare = 1.5
    expect(
      problemsOf(plant)
        .map((p) => p.path)
        .sort(),
    ).toEqual([
      'sites[0].areas[1].lines[0].equipment[0].devices',
      'sites[0].areas[1].lines[0].equipment[1].idle.afterS',
      'sites[0].areas[1].lines[0].equipment[1].idle.offBelowW',
      'sites[0].carbon.greenShare',
      'sites[0].timezone',
    ])
  })
})

describe('validatePlant: the rules of CONTRACT.md §1', () => {
  const E = 'sites[0].areas[0].lines[0].equipment[0]'
  const mutate = (change: (plant: Json) => void): Json => {
    const plant = example()
    change(plant)
    return plant
  }
  const eq = (plant: Json): Json => plant.sites[0].areas[0].lines[0].equipment[0]

  it('version must be 1', () => {
    expectOneProblem(
      mutate((p) => {
        p.version = '1'
      }),
      'version',
      /must be 1/,
    )
  })

  it('ids must match the id pattern', () => {
    const problem = expectOneProblem(
      mutate((p) => {
        p.sites[0].areas[0].lines[0].id = 'Coating 1'
      }),
      'sites[0].areas[0].lines[0].id',
    )
    expect(problem.message).toContain(`id 'Coating 1' must match ^[a-z0-9][a-z0-9-]{0,47}$`)
    expectOneProblem(
      mutate((p) => {
        p.sites[0].id = 'x'.repeat(49)
      }),
      'sites[0].id',
    )
    expectOneProblem(
      mutate((p) => {
        eq(p).id = '-oven'
      }),
      `${E}.id`,
    )
  })

  it('ids must be unique among siblings, at every level', () => {
    const plant = bigPlant()
    const site = plant.sites[0]
    site.areas[1].id = 'electrode'
    site.areas[1].lines.push({ id: 'l1', equipment: [] })
    site.areas[1].lines[0].equipment[1].id = 'winder-1'
    plant.sites.push({ id: 'yibin', timezone: 'UTC', areas: [] })
    const problems = problemsOf(plant)
    // In the order the file reads.
    expect(problems).toEqual([
      { path: 'sites[0].areas[1].id', message: expect.stringContaining(`also at sites[0].areas[0].id`) },
      {
        path: 'sites[0].areas[1].lines[0].equipment[1].id',
        message: expect.stringContaining(`also at sites[0].areas[1].lines[0].equipment[0].id`),
      },
      { path: 'sites[0].areas[1].lines[1].id', message: expect.stringContaining(`line id 'l1'`) },
      {
        path: 'sites[1].id',
        message: `duplicate site id 'yibin', also at sites[0].id (ids are unique among siblings)`,
      },
    ])
  })

  it('device ids must match the device id pattern, in equipment and meters', () => {
    const problem = expectOneProblem(
      mutate((p) => {
        eq(p).devices[1] = 'imei 8601'
      }),
      `${E}.devices[1]`,
    )
    expect(problem.message).toMatch(/^device id 'imei 8601' must match \^\[A-Za-z0-9_-\]\{1,64\}\$/)
    expectOneProblem(
      mutate((p) => {
        p.sites[0].meters.grid = ['a'.repeat(65)]
      }),
      'sites[0].meters.grid[0]',
      /device id/,
    )
    expectOneProblem(
      mutate((p) => {
        eq(p).devices[0] = 860100000000123
      }),
      `${E}.devices[0]`,
      /device id must be a string, got 860100000000123/,
    )
  })

  it('device ids are unique across the whole file, meters included', () => {
    const plant = bigPlant()
    const site = plant.sites[0]
    site.meters.grid = ['860100000000123'] // also a device of coater-1-oven
    site.areas[1].lines[0].equipment[1].devices.push('860100000001001') // also winder-1's
    site.areas[1].lines[0].equipment[0].devices.push('860100000001001') // twice in one equipment
    site.meters.pv.push('860100000000001') // twice a PV meter
    plant.sites.push({
      id: 'other',
      timezone: 'UTC',
      meters: { grid: ['860100000000124'] }, // a device of another site's equipment
      areas: [],
    })
    const problems = problemsOf(plant)
    expect(problems.map((p) => p.path)).toEqual([
      'sites[0].meters.pv[1]',
      'sites[0].areas[0].lines[0].equipment[0].devices[0]',
      'sites[0].areas[1].lines[0].equipment[0].devices[1]',
      'sites[0].areas[1].lines[0].equipment[1].devices[1]',
      'sites[1].meters.grid[0]',
    ])
    expect(problems[1]!.message).toBe(
      `duplicate device id '860100000000123', also at sites[0].meters.grid[0] (a device belongs to one equipment or is one site meter)`,
    )
    expect(problems[4]!.message).toContain('also at sites[0].areas[0].lines[0].equipment[0].devices[1]')
  })

  it('timezone must be an IANA time zone', () => {
    expectOneProblem(
      mutate((p) => {
        p.sites[0].timezone = 'Asia/Shangai'
      }),
      'sites[0].timezone',
      /'Asia\/Shangai' is not a known IANA time zone: did you mean 'Asia\/Shanghai'\?/,
    )
    expectOneProblem(
      mutate((p) => {
        p.sites[0].timezone = ''
      }),
      'sites[0].timezone',
    )
    expectOneProblem(
      mutate((p) => {
        delete p.sites[0].timezone
      }),
      'sites[0].timezone',
      /timezone is required/,
    )
  })

  it('latenessS, offlineAfterS and maxAgeS are positive numbers, maxAgeS ≥ latenessS', () => {
    for (const key of ['latenessS', 'offlineAfterS', 'maxAgeS']) {
      expectOneProblem(
        mutate((p) => {
          p.sites[0][key] = 0
        }),
        `sites[0].${key}`,
        /must be a positive number, got 0/,
      )
      expectOneProblem(
        mutate((p) => {
          p.sites[0][key] = '60'
        }),
        `sites[0].${key}`,
        /must be a number/,
      )
    }
    expectOneProblem(
      mutate((p) => {
        p.sites[0].maxAgeS = 60
      }),
      'sites[0].maxAgeS',
      /^maxAgeS \(60\) must be at least latenessS \(120\)$/,
    )
    // The defaults take part: latenessS 120 when absent, maxAgeS 604800 when absent.
    expectOneProblem(
      mutate((p) => {
        delete p.sites[0].latenessS
        p.sites[0].maxAgeS = 100
      }),
      'sites[0].maxAgeS',
      /latenessS \(120, the default\)/,
    )
    expectOneProblem(
      mutate((p) => {
        delete p.sites[0].maxAgeS
        p.sites[0].latenessS = 700_000
      }),
      'sites[0].latenessS',
      /must not exceed maxAgeS \(604800, the default\)/,
    )
    expect(
      validatePlant(
        mutate((p) => {
          p.sites[0].maxAgeS = 120
        }),
      ).ok,
    ).toBe(true)
  })

  it('carbon: gridGPerKWh is a non-negative number or exactly 24 of them', () => {
    expectOneProblem(
      mutate((p) => {
        p.sites[0].carbon.gridGPerKWh = -1
      }),
      'sites[0].carbon.gridGPerKWh',
      /must not be negative, got -1/,
    )
    expectOneProblem(
      mutate((p) => {
        p.sites[0].carbon.gridGPerKWh.pop()
      }),
      'sites[0].carbon.gridGPerKWh',
      /must have exactly 24 values, got 23/,
    )
    expectOneProblem(
      mutate((p) => {
        p.sites[0].carbon.gridGPerKWh[5] = -600
      }),
      'sites[0].carbon.gridGPerKWh[5]',
      /must not be negative/,
    )
    expectOneProblem(
      mutate((p) => {
        p.sites[0].carbon.gridGPerKWh = '610'
      }),
      'sites[0].carbon.gridGPerKWh',
      /must be a non-negative number, or a list of exactly 24 non-negative hourly values, got '610'/,
    )
  })

  it('carbon: residualMixGPerKWh ≥ 0 and greenShare in [0, 1]', () => {
    expectOneProblem(
      mutate((p) => {
        p.sites[0].carbon.residualMixGPerKWh = -680
      }),
      'sites[0].carbon.residualMixGPerKWh',
    )
    expectOneProblem(
      mutate((p) => {
        p.sites[0].carbon.greenShare = 26.6
      }),
      'sites[0].carbon.greenShare',
      /must be at most 1, got 26.6/,
    )
    expectOneProblem(
      mutate((p) => {
        p.sites[0].carbon.greenShare = -0.1
      }),
      'sites[0].carbon.greenShare',
    )
    for (const greenShare of [0, 1]) {
      expect(
        validatePlant(
          mutate((p) => {
            p.sites[0].carbon.greenShare = greenShare
          }),
        ).ok,
      ).toBe(true)
    }
  })

  it('ratedPowerW > 0 and devices non-empty', () => {
    expectOneProblem(
      mutate((p) => {
        eq(p).ratedPowerW = 0
      }),
      `${E}.ratedPowerW`,
      /positive/,
    )
    expectOneProblem(
      mutate((p) => {
        eq(p).devices = []
      }),
      `${E}.devices`,
      /devices must not be empty/,
    )
    expectOneProblem(
      mutate((p) => {
        delete eq(p).type
      }),
      `${E}.type`,
      /type is required/,
    )
  })

  it('idle: 0 ≤ offBelowW ≤ runAboveW, afterS > 0', () => {
    expectOneProblem(
      mutate((p) => {
        eq(p).idle.offBelowW = -5
      }),
      `${E}.idle.offBelowW`,
      /must not be negative/,
    )
    expectOneProblem(
      mutate((p) => {
        eq(p).idle.offBelowW = 70_000
      }),
      `${E}.idle.offBelowW`,
      /^offBelowW \(70000\) must not exceed runAboveW \(60000\)$/,
    )
    expectOneProblem(
      mutate((p) => {
        eq(p).idle.afterS = -300
      }),
      `${E}.idle.afterS`,
    )
    expectOneProblem(
      mutate((p) => {
        delete eq(p).idle.runAboveW
      }),
      `${E}.idle.runAboveW`,
      /required/,
    )
    expect(
      validatePlant(
        mutate((p) => {
          eq(p).idle = { offBelowW: 0, runAboveW: 0, afterS: 1 }
        }),
      ).ok,
    ).toBe(true)
  })

  it('tuning: min < max, maxStep > 0, mode, constraint max > 0, margin in [0, 1), commandTimeoutS > 0', () => {
    const T = `${E}.tuning`
    expectOneProblem(
      mutate((p) => {
        eq(p).tuning.min = 50
      }),
      `${T}.min`,
      /^min \(50\) must be less than max \(50\)$/,
    )
    expectOneProblem(
      mutate((p) => {
        eq(p).tuning.maxStep = -2
      }),
      `${T}.maxStep`,
    )
    expectOneProblem(
      mutate((p) => {
        eq(p).tuning.mode = 'automatic'
      }),
      `${T}.mode`,
      /^mode must be one of 'auto', 'advise', 'off', got 'automatic'$/,
    )
    expectOneProblem(
      mutate((p) => {
        eq(p).tuning.constraint.max = 0
      }),
      `${T}.constraint.max`,
    )
    expectOneProblem(
      mutate((p) => {
        eq(p).tuning.constraint.margin = 1
      }),
      `${T}.constraint.margin`,
      /must be less than 1/,
    )
    expectOneProblem(
      mutate((p) => {
        eq(p).tuning.constraint.margin = -0.05
      }),
      `${T}.constraint.margin`,
    )
    expectOneProblem(
      mutate((p) => {
        eq(p).tuning.commandTimeoutS = 0
      }),
      `${T}.commandTimeoutS`,
    )
    expectOneProblem(
      mutate((p) => {
        eq(p).tuning.setpoint = 'fan/hz'
      }),
      `${T}.setpoint`,
      /without ':' or '\/'/,
    )
    for (const mode of ['auto', 'advise', 'off']) {
      expect(
        validatePlant(
          mutate((p) => {
            eq(p).tuning.mode = mode
            delete eq(p).tuning.commandTimeoutS
            delete eq(p).tuning.unit
          }),
        ).ok,
      ).toBe(true)
    }
  })

  it('unknown properties are problems anywhere, with a suggestion for a typo', () => {
    const plant = example()
    eq(plant).ratedPowerKW = eq(plant).ratedPowerW / 1000
    delete eq(plant).ratedPowerW
    plant.$comment = 'generated'
    plant.sites[0].meters.export = []
    eq(plant).tuning.constraint.Margin = 0.1
    expect(problemsOf(plant)).toEqual([
      { path: 'sites[0].meters.export', message: `unknown property 'export' (allowed here: pv, grid)` },
      { path: `${E}.tuning.constraint.Margin`, message: `unknown property 'Margin': did you mean 'margin'?` },
      { path: `${E}.ratedPowerKW`, message: `unknown property 'ratedPowerKW': did you mean 'ratedPowerW'?` },
      { path: '$comment', message: `unknown property '$comment' (allowed here: $schema, version, sites)` },
    ])
  })

  it('quotes keys that are not identifiers in paths', () => {
    const plant = example()
    plant.sites[0]['time zone'] = 'UTC'
    expectOneProblem(plant, 'sites[0]["time zone"]', /unknown property 'time zone'/)
  })

  it('names deep places precisely', () => {
    const plant = bigPlant()
    plant.sites[0].areas[1].lines[0].equipment[2].tuning.maxStep = 'two'
    expectOneProblem(plant, 'sites[0].areas[1].lines[0].equipment[2].tuning.maxStep', /must be a number, got 'two'/)
    const other = bigPlant()
    other.sites[0].areas[1].lines[0].equipment[2] = 'oven-2'
    expectOneProblem(other, 'sites[0].areas[1].lines[0].equipment[2]', /^equipment must be an object, got 'oven-2'$/)
  })
})
