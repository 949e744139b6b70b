// The JSON Schema of plant.json (CONTRACT.md §1) for people and tools outside plantwatt: editors
// that validate as you type (through the file's `$schema`), and CI checks of plant files. It is the
// schema validate-plant.ts compiles, so the two cannot drift apart.

import { PlantModelSchema } from './validate-plant.ts'

export const PLANT_SCHEMA_ID = 'urn:plantwatt:schema:plant:1'

const DESCRIPTION = [
  'The plantwatt plant model (plant.json): sites, their areas, lines and equipment, and which device',
  'belongs to what. This schema checks the shape of the file. plantwatt checks more when it loads a',
  'plant, rules a JSON Schema cannot express: ids are unique among their siblings, device ids are',
  'unique across the whole file (a device belongs to one equipment or is one site meter), the time',
  'zone is a known IANA zone, maxAgeS is at least latenessS, offBelowW does not exceed runAboveW, and',
  'a tuning min is below its max. A file that passes this schema can still be refused at start-up,',
  'with every problem listed at its JSON path.',
].join(' ')

/** The schema as a plain JSON value, draft 2020-12 (a fresh object on every call). */
export function plantJsonSchema(): Record<string, unknown> {
  // TypeBox marks its schemas with symbol keys; a JSON round trip leaves plain JSON Schema.
  const schema = JSON.parse(JSON.stringify(PlantModelSchema)) as Record<string, unknown>
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: PLANT_SCHEMA_ID,
    ...schema,
    title: 'plantwatt plant model',
    description: DESCRIPTION,
  }
}
