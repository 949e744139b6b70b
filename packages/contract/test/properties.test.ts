import { Encoder } from 'cbor-x'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { type DecodedPack, decodeSenml, encodeSenmlCbor, type RejectReason } from '../src/senml.ts'
import { validatePlant } from '../src/validate-plant.ts'

// Issue 12: property-based tests of the two doors untrusted input comes through. The SenML decoder
// (CONTRACT.md §2) and the plant validator (§1) take any input and answer, never throw: accepted
// readings or counted rejections; a plant or a list of problems with their JSON paths. Seeded and
// bounded (numRuns) so a CI run is the same every time and short.

const NOW = 1_732_250_000
const RUNS = { seed: 20261206, numRuns: 200 }
const REASONS: readonly RejectReason[] = [
  'malformed',
  'non_finite',
  'unit_mismatch',
  'future',
  'too_old',
  'out_of_range',
]
const utf8 = new TextEncoder()

/** What every decoded pack must satisfy, whatever went in. */
function checkDecoded(pack: DecodedPack, records: number | undefined): void {
  for (const reading of pack.readings) {
    expect(typeof reading.name).toBe('string')
    expect(reading.name.length).toBeGreaterThan(0)
    expect(Number.isFinite(reading.time)).toBe(true)
    expect(Number.isFinite(reading.value)).toBe(true)
    expect(['v', 's']).toContain(reading.field)
  }
  for (const rejection of pack.rejections) {
    expect(REASONS).toContain(rejection.reason)
    expect(typeof rejection.detail).toBe('string')
  }
  const whole = pack.rejections.some((rejection) => rejection.index === -1)
  if (whole) {
    // A payload refused as a whole: one rejection, nothing accepted.
    expect(pack.readings).toEqual([])
    expect(pack.rejections).toHaveLength(1)
  } else if (records !== undefined) {
    // Each record gives at most one reading or one rejection (base-only records give neither).
    expect(pack.readings.length + pack.rejections.length).toBeLessThanOrEqual(records)
    for (const rejection of pack.rejections) expect(rejection.index).toBeLessThan(records)
  }
}

const decode = (bytes: Uint8Array) => decodeSenml(bytes, { receivedAt: NOW, notBefore: NOW - 604_800 })

/** A SenML record that decodes: a known or process-variable name, a value, a time. */
const validRecord = fc.oneof(
  fc.record({ n: fc.constant('power'), u: fc.constant('W'), v: fc.double({ min: -1e6, max: 1e6, noNaN: true }) }),
  fc.record({ n: fc.constant('energy'), u: fc.constant('Wh'), s: fc.double({ min: 0, max: 1e9, noNaN: true }) }),
  fc.record({ n: fc.constantFrom('solvent_ppm', 'fan_hz', 'dewpoint'), v: fc.integer() }),
  fc.record({
    bn: fc.constant('urn:dev:imei:860100000000123:'),
    bt: fc.integer({ min: NOW - 1000, max: NOW }),
    n: fc.constant('power'),
    v: fc.integer({ min: 0, max: 1e6 }),
    t: fc.integer({ min: -100, max: 0 }),
  }),
)
const validPack = fc.array(validRecord, { minLength: 1, maxLength: 12 })

/** A value put where a field was: anything JSON can carry, and the numbers JSON cannot. */
const strangeValue = fc.oneof(
  fc.jsonValue(),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -1e308, 2 ** 28 - 1, -1e12, '__proto__', null),
)
const LABELS = [
  'bn',
  'bt',
  'bu',
  'bv',
  'bs',
  'bver',
  'n',
  'u',
  'v',
  's',
  't',
  'ut',
  'vs',
  'vb',
  'vd',
  'x_',
  '__proto__',
]

/** Mutations of a valid pack: a field replaced, removed or added, a record replaced, one appended. */
const mutatedPack = fc
  .tuple(
    validPack,
    fc.array(
      fc.tuple(fc.nat(), fc.constantFrom('set', 'delete', 'replace-record'), fc.constantFrom(...LABELS), strangeValue),
      { minLength: 1, maxLength: 6 },
    ),
  )
  .map(([pack, mutations]) => {
    const records: unknown[] = pack.map((record) => ({ ...record }))
    for (const [at, kind, label, value] of mutations) {
      const k = at % records.length
      if (kind === 'replace-record') records[k] = value
      else if (typeof records[k] === 'object' && records[k] !== null) {
        const record = records[k] as Record<string, unknown>
        if (kind === 'delete') delete record[label]
        else Object.defineProperty(record, label, { value, enumerable: true, configurable: true, writable: true })
      }
    }
    return records
  })

const rawCbor = new Encoder({ useRecords: false, mapsAsObjects: false, variableMapSize: true } as ConstructorParameters<
  typeof Encoder
>[0])

describe('SenML decoder: any input gives readings or counted rejections, never an exception', () => {
  it('arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => checkDecoded(decode(bytes), undefined)),
      RUNS,
    )
  })

  it('arbitrary bytes after "[" (taken as JSON)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        checkDecoded(decode(Buffer.concat([Buffer.from('['), bytes])), undefined)
      }),
      RUNS,
    )
  })

  it('arbitrary JSON, bare and as an array of records', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        checkDecoded(decode(utf8.encode(JSON.stringify(value))), undefined)
        const pack = [value, value]
        checkDecoded(decode(utf8.encode(JSON.stringify(pack))), pack.length)
      }),
      RUNS,
    )
  })

  it('arbitrary CBOR values', () => {
    fc.assert(
      fc.property(fc.anything({ maxDepth: 3 }), (value) => {
        let bytes: Uint8Array
        try {
          bytes = rawCbor.encode(Array.isArray(value) ? value : [value])
        } catch {
          return // not every JS value has a CBOR form
        }
        checkDecoded(decode(bytes), undefined)
      }),
      RUNS,
    )
  })

  it('valid packs decode in full: every record a reading or a rejection', () => {
    fc.assert(
      fc.property(validPack, (pack) => {
        const decoded = decode(utf8.encode(JSON.stringify(pack)))
        checkDecoded(decoded, pack.length)
        expect(decoded.readings.length + decoded.rejections.length).toBe(pack.length)
        const cbor = decode(encodeSenmlCbor(pack))
        expect(cbor.readings).toEqual(decoded.readings)
      }),
      RUNS,
    )
  })

  it('mutated valid packs, in JSON and in CBOR', () => {
    fc.assert(
      fc.property(mutatedPack, (pack) => {
        let text: string
        try {
          text = JSON.stringify(pack)
        } catch {
          return
        }
        checkDecoded(decode(utf8.encode(text)), pack.length)
        let cbor: Uint8Array | undefined
        try {
          cbor = rawCbor.encode(pack)
        } catch {
          cbor = undefined
        }
        if (cbor) checkDecoded(decode(cbor), pack.length)
      }),
      RUNS,
    )
  })
})

/** Every path (as keys) to a value inside `root`. */
function pathsOf(root: unknown): (string | number)[][] {
  const out: (string | number)[][] = []
  const walk = (value: unknown, path: (string | number)[]) => {
    out.push(path)
    if (Array.isArray(value)) {
      for (let k = 0; k < value.length; k++) walk(value[k], [...path, k])
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, item] of Object.entries(value)) walk(item, [...path, key])
    }
  }
  walk(root, [])
  return out
}

/** Mutations of the valid plant: a value replaced or removed, or an array element duplicated. */
const mutatedPlant = fc
  .array(fc.tuple(fc.nat(), fc.constantFrom('set', 'delete', 'duplicate'), strangeValue), {
    minLength: 1,
    maxLength: 5,
  })
  .map((mutations) => {
    let plant: unknown = examplePlant()
    for (const [at, kind, value] of mutations) {
      const paths = pathsOf(plant)
      const path = paths[at % paths.length]!
      if (path.length === 0) {
        plant = kind === 'set' ? value : plant
        continue
      }
      let parent = plant as Record<string | number, unknown>
      for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>
      const key = path.at(-1)!
      if (kind === 'set') parent[key] = value
      else if (kind === 'delete') {
        if (Array.isArray(parent)) parent.splice(key as number, 1)
        else delete parent[key]
      } else if (Array.isArray(parent)) parent.push(structuredClone(parent[key as number]))
    }
    return plant
  })

function checkValidation(input: unknown): void {
  const result = validatePlant(input)
  if (result.ok) {
    expect(result.plant).toBeDefined()
    return
  }
  expect(result.problems.length).toBeGreaterThan(0)
  for (const problem of result.problems) {
    expect(typeof problem.path).toBe('string')
    expect(typeof problem.message).toBe('string')
    expect(problem.message.length).toBeGreaterThan(0)
  }
}

describe('plant validator: any input gives a plant or a list of problems, never an exception', () => {
  it('the example is valid (the mutations start from a valid plant)', () => {
    expect(validatePlant(examplePlant()).ok).toBe(true)
  })

  it('arbitrary JSON values', () => {
    fc.assert(fc.property(fc.jsonValue(), checkValidation), RUNS)
  })

  it('arbitrary JS values, __proto__ keys included', () => {
    fc.assert(fc.property(fc.anything({ maxDepth: 4, withNullPrototype: true }), checkValidation), RUNS)
  })

  it('mutated valid plants: each problem names a JSON path', () => {
    fc.assert(
      fc.property(mutatedPlant, (plant) => {
        checkValidation(plant)
        const result = validatePlant(plant)
        if (!result.ok) {
          for (const problem of result.problems)
            expect(problem.path).toMatch(/^([A-Za-z_$][\w$-]*|\[\d+\])?([.[][^.[]*)*$/)
        }
      }),
      RUNS,
    )
  })
})
