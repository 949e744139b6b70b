import { demoPlant } from '@plantwatt/cli/demo-plant'
import { type PlantModel, plantJsonSchema, validatePlant } from '@plantwatt/contract'
import { generatePlant } from '@plantwatt/fleet'
import { Ajv2020 } from 'ajv/dist/2020.js'
import ajvFormats from 'ajv-formats'
import { describe, expect, it } from 'vitest'
import { examplePlant } from '../support/example-plant.ts'

// The JSON Schema of plant.json (CONTRACT.md §1) that `plantwatt plant schema` prints, for editors
// and CI checks of a plant file: a standard validator (ajv, strict) accepts the schema, every plant
// plantwatt makes or ships, and refuses a broken one.

const schema = plantJsonSchema()
const ajv = new Ajv2020({ strict: true, allErrors: true })
// ajv-formats is CommonJS: its plugin is the module's `default` export.
ajvFormats.default(ajv)
const validate = ajv.compile(schema)

function errorsOf(plant: unknown): string[] {
  if (validate(plant)) return []
  return (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`)
}

type Editable = { sites: Record<string, any>[] } & Record<string, unknown>
const editable = (plant: PlantModel) => structuredClone(plant) as unknown as Editable

describe('plant JSON Schema', () => {
  it('is a draft 2020-12 schema that ajv compiles in strict mode, with an $id editors can refer to', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema')
    expect(typeof schema.$id).toBe('string')
    expect(ajv.validateSchema(schema)).toBe(true)
    // What a schema cannot say is said in its description, so nobody takes it for the whole check.
    expect(String(schema.description)).toMatch(/unique/)
    expect(String(schema.description)).toMatch(/plantwatt/)
  })

  it('accepts the demo plant, the contract example and generated plants of several sizes', () => {
    expect(errorsOf(demoPlant())).toEqual([])
    expect(errorsOf(examplePlant())).toEqual([])
    for (const devices of [1, 40, 1000, 5000]) {
      expect(errorsOf(generatePlant({ devices, seed: devices })), `${devices} devices`).toEqual([])
    }
  })

  it('refuses a broken plant, and each mistake on its own', () => {
    const broken = editable(examplePlant())
    broken.sites[0]!.areas[0].lines[0].id = 'Coating 1'
    broken.sites[0]!.areas[0].lines[0].equipment[0].ratedPowerW = -5
    broken.sites[0]!.areas[0].lines[0].equipment[0].ratedPowerKW = 250
    delete broken.sites[0]!.timezone
    const errors = errorsOf(broken)
    expect(errors.join('\n')).toMatch(/lines\/0\/id/)
    expect(errors.join('\n')).toMatch(/ratedPowerW/)
    expect(errors.join('\n')).toMatch(/timezone/)
    expect(errors.join('\n')).toMatch(/additional properties/)

    const mistakes: ((plant: Editable) => void)[] = [
      (p) => {
        p.version = 2
      },
      (p) => {
        p.sites = []
      },
      (p) => {
        p.sites[0]!.carbon.gridGPerKWh = [600, 500]
      },
      (p) => {
        p.sites[0]!.carbon.greenShare = 1.5
      },
      (p) => {
        p.sites[0]!.areas[0].lines[0].equipment[0].devices = []
      },
      (p) => {
        p.sites[0]!.areas[0].lines[0].equipment[0].devices = ['imei 8601']
      },
      (p) => {
        p.sites[0]!.areas[0].lines[0].equipment[0].tuning.mode = 'manual'
      },
      (p) => {
        p.sites[0]!.areas[0].lines[0].equipment[0].tuning.constraint.measure = 'urn:dev:ppm'
      },
    ]
    for (const [i, mistake] of mistakes.entries()) {
      const plant = editable(examplePlant())
      mistake(plant)
      expect(errorsOf(plant), `mistake ${i}`).not.toEqual([])
      // plantwatt refuses it too: the schema never accepts what start-up refuses for its shape.
      expect(validatePlant(plant).ok, `mistake ${i}`).toBe(false)
    }
  })

  it('lets a plant file name its schema with $schema, for editors, and plantwatt still loads it', () => {
    const plant = { $schema: './plant.schema.json', ...examplePlant() }
    expect(errorsOf(plant)).toEqual([])
    expect(validatePlant(plant).ok).toBe(true)
  })

  it('leaves to plantwatt the rules a schema cannot express: a duplicate device passes the schema only', () => {
    const plant = editable(examplePlant())
    plant.sites[0]!.areas[0].lines[1].equipment[0].devices = ['860100000000123']
    expect(errorsOf(plant)).toEqual([])
    expect(validatePlant(plant).ok).toBe(false)
  })
})
