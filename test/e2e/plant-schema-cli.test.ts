import { Ajv2020 } from 'ajv/dist/2020.js'
import ajvFormats from 'ajv-formats'
import { describe, expect, it } from 'vitest'
import { runCli } from '../support/plantwatt-process.ts'

// What a plant engineer does with the command line: print the schema, generate a plant, and check
// the one against the other with a standard validator.

describe('plantwatt plant schema and plant generate, as a user runs them', () => {
  it('prints a schema that ajv compiles strictly and that generated plants pass', async () => {
    const schema = await runCli(['plant', 'schema'])
    expect(schema.code).toBe(0)
    const ajv = new Ajv2020({ strict: true, allErrors: true })
    // ajv-formats is CommonJS: its plugin is the module's `default` export.
    ajvFormats.default(ajv)
    const validate = ajv.compile(JSON.parse(schema.stdout))
    for (const devices of ['25', '500']) {
      const plant = await runCli(['plant', 'generate', '--devices', devices, '--seed', '11'])
      expect(plant.code).toBe(0)
      const generated = JSON.parse(plant.stdout)
      expect(validate(generated), JSON.stringify(validate.errors)).toBe(true)
      // And a broken copy does not.
      generated.sites[0].areas[0].lines[0].equipment[0].ratedPowerW = 'lots'
      expect(validate(generated)).toBe(false)
    }
  })
})
