// Validation of the plant model file, CONTRACT.md §1: "A plant file that breaks these rules is
// refused at start-up with every problem listed, each naming its place as a JSON path in the form
// `sites[0].areas[1].lines[0].id`".
//
// Two stages, both always run so that one start-up attempt shows everything to fix:
// 1. structure: a TypeBox schema (also exported for the OpenAPI document) compiled once; every
//    error is collected and translated into a message a plant engineer can act on;
// 2. meaning: rules a JSON Schema cannot express (unique ids, one owner per device, valid time
//    zones, relations between two fields), written in plain code that tolerates a broken tree.
// At most one problem is reported per path, so one mistake does not produce a cascade.

import { type Static, type TSchema, Type } from '@sinclair/typebox'
import { TypeCompiler, type ValueError, ValueErrorType } from '@sinclair/typebox/compiler'
import { DEVICE_ID_PATTERN, NODE_ID_PATTERN } from './device-auth.ts'
import { type PlantModel, type PlantProblem, type PlantValidation, SITE_DEFAULTS } from './plant-model.ts'

// ---------------------------------------------------------------------------------------------
// Schema. Every object is closed (additionalProperties: false): a typo such as `ratedPowerKW`
// must be reported, never silently ignored (a missing field would otherwise fall back to a
// default or to "learned" and the plant would run with a setting nobody chose).

const closed = { additionalProperties: false } as const

const NodeId = Type.String({
  pattern: NODE_ID_PATTERN.source,
  description: 'Site, area, line or equipment id, unique among its siblings (CONTRACT.md §1).',
})
const DeviceId = Type.String({
  pattern: DEVICE_ID_PATTERN.source,
  description: 'Device id, unique across the whole file; NB-IoT modules usually use their 15-digit IMEI.',
})
// The platform names a measurement by the part of the SenML name after its last ':' or '/'
// (CONTRACT.md §2), so a name containing either could never match a reading.
const MeasurementName = Type.String({ pattern: '^[^:/]+$', description: 'A SenML measurement name.' })
const Name = Type.Optional(Type.String({ description: 'Free text shown to people.' }))
const Positive = (description: string) => Type.Number({ exclusiveMinimum: 0, description })
const NonNegative = (description: string) => Type.Number({ minimum: 0, description })

const IdleSchema = Type.Object(
  {
    offBelowW: NonNegative('Below this power the equipment is off.'),
    runAboveW: NonNegative('At or above this power the equipment is running (not idle).'),
    afterS: Positive('How long the idle condition must last before an alert, in seconds.'),
  },
  { ...closed, description: 'Idle thresholds; where absent they are learned (CONTRACT.md §7).' },
)

const TuningSchema = Type.Object(
  {
    setpoint: MeasurementName,
    unit: Type.Optional(Type.String()),
    min: Type.Number(),
    max: Type.Number(),
    maxStep: Positive('Largest change of the setpoint in one command.'),
    constraint: Type.Object(
      {
        measure: MeasurementName,
        max: Positive('The limit the measure must not exceed.'),
        margin: Type.Number({ minimum: 0, exclusiveMaximum: 1, description: 'Kept below max × (1 − margin).' }),
      },
      closed,
    ),
    mode: Type.Union([Type.Literal('auto'), Type.Literal('advise'), Type.Literal('off')]),
    commandTimeoutS: Type.Optional(Positive('Seconds of event time before an unanswered command fails (600).')),
  },
  closed,
)

const EquipmentSchema = Type.Object(
  {
    id: NodeId,
    name: Name,
    type: Type.String({ minLength: 1, description: 'Free text: oven, fan, press, …' }),
    ratedPowerW: Positive('Rated active power in W; readings above 10 × this are out of range.'),
    devices: Type.Array(DeviceId, { minItems: 1 }),
    idle: Type.Optional(IdleSchema),
    tuning: Type.Optional(TuningSchema),
  },
  closed,
)

const LineSchema = Type.Object({ id: NodeId, name: Name, equipment: Type.Array(EquipmentSchema) }, closed)
const AreaSchema = Type.Object({ id: NodeId, name: Name, lines: Type.Array(LineSchema) }, closed)

const CarbonSchema = Type.Object(
  {
    gridGPerKWh: Type.Union(
      [
        NonNegative('Grid carbon intensity, gCO2e per kWh, all day.'),
        Type.Array(NonNegative('gCO2e per kWh'), {
          minItems: 24,
          maxItems: 24,
          description: 'Grid carbon intensity per hour of the local day, gCO2e per kWh.',
        }),
      ],
      { description: 'a non-negative number, or a list of exactly 24 non-negative hourly values' },
    ),
    residualMixGPerKWh: NonNegative('Residual mix carbon intensity for market-based CO2, gCO2e per kWh.'),
    greenShare: Type.Number({ minimum: 0, maximum: 1, description: 'Share covered by green certificates.' }),
  },
  closed,
)

/** JSON Schema of a site's carbon figures (CONTRACT.md §1, §6 PUT /api/v1/sites/{site}/carbon). */
export const SiteCarbonSchema = CarbonSchema
const carbonCheck = TypeCompiler.Compile(CarbonSchema)

/** True when `value` is a complete, valid set of carbon figures. */
export function isValidCarbon(value: unknown): value is Static<typeof CarbonSchema> {
  return carbonCheck.Check(value)
}

const SiteSchema = Type.Object(
  {
    id: NodeId,
    name: Name,
    timezone: Type.String({ description: 'IANA time zone, e.g. Asia/Shanghai.' }),
    latenessS: Type.Optional(Positive('Seconds a bucket waits for late readings (default 120).')),
    offlineAfterS: Type.Optional(Positive('Seconds of silence before a device is offline (default 900).')),
    maxAgeS: Type.Optional(Positive('Oldest accepted reading behind the site clock, seconds (default 604800).')),
    carbon: Type.Optional(CarbonSchema),
    meters: Type.Optional(
      Type.Object({ pv: Type.Optional(Type.Array(DeviceId)), grid: Type.Optional(Type.Array(DeviceId)) }, closed),
    ),
    areas: Type.Array(AreaSchema),
  },
  closed,
)

/** JSON Schema of `plant.json` (CONTRACT.md §1), for the OpenAPI document. */
export const PlantModelSchema = Type.Object(
  {
    // Editors find the schema of a file through its own `$schema` (e.g. the output of `plantwatt
    // plant schema` saved beside it); the only key outside CONTRACT.md §1 that a plant may carry.
    $schema: Type.Optional(Type.String({ description: 'Where editors find this schema; plantwatt ignores it.' })),
    version: Type.Literal(1),
    // A file without any site has nothing to monitor and no device could connect: surely a mistake.
    sites: Type.Array(SiteSchema, { minItems: 1 }),
  },
  { ...closed, title: 'PlantModel', description: 'The plant model file, CONTRACT.md §1.' },
)

// The schema and the hand-written types of plant-model.ts must describe the same shape.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const schemaMatchesTypes: Same<Static<typeof PlantModelSchema>, PlantModel> = true
void schemaMatchesTypes

// Compiled once: validation runs at every start-up and on large generated plants.
const compiled = TypeCompiler.Compile(PlantModelSchema)

// ---------------------------------------------------------------------------------------------

/** Checks a parsed plant file against every rule of CONTRACT.md §1 and lists all problems. */
export function validatePlant(input: unknown): PlantValidation {
  const problems = new Problems()
  if (!compiled.Check(input)) structuralProblems(input, problems)
  semanticProblems(input, problems)
  const list = problems.list()
  if (list.length > 0) return { ok: false, problems: inDocumentOrder(list, input) }
  // A copy, so the caller's object stays theirs; frozen, so no consumer can alter the plant that
  // every other component was configured from. Defaults are not applied here (SITE_DEFAULTS).
  return { ok: true, plant: deepFreeze(structuredClone(input as PlantModel)) }
}

/** One problem per path: the first found is the most specific (type before value, value before relation). */
class Problems {
  private readonly byPath = new Map<string, string>()
  add(path: string, message: string): void {
    if (!this.byPath.has(path)) this.byPath.set(path, message)
  }
  has(path: string): boolean {
    return this.byPath.has(path)
  }
  list(): PlantProblem[] {
    return [...this.byPath].map(([path, message]) => ({ path, message }))
  }
}

// ---------------------------------------------------------------------------------------------
// Stage 1: structural errors from TypeBox, translated.

function structuralProblems(input: unknown, problems: Problems): void {
  const errors = flattenUnions([...compiled.Errors(input)])
  // A misspelt key usually shows up twice: as an unknown key and as a missing required one.
  // Report it once, at the misspelt key, with the suggestion.
  const suppressed = new Set<string>()
  const suggestions = new Map<ValueError, string>()
  for (const error of errors) {
    if (error.type !== ValueErrorType.ObjectAdditionalProperties) continue
    const { parent, key } = splitPointer(error.path)
    const known = Object.keys((error.schema as { properties?: object }).properties ?? {})
    const suggestion = closest(key, known)
    if (suggestion === undefined) continue
    suggestions.set(error, suggestion)
    const container = valueAt(input, parent)
    if (isRecord(container) && container[suggestion] === undefined) suppressed.add(`${parent}/${escapeKey(suggestion)}`)
  }
  for (const error of errors) {
    if (suppressed.has(error.path)) continue
    problems.add(pointerToPath(error.path, input), describe(error, input, suggestions.get(error)))
  }
}

/**
 * TypeBox reports a failed union as one error holding the errors of each alternative. Where the
 * value's JSON type picks one alternative (a number, or a list for `gridGPerKWh`), that
 * alternative's errors say precisely what is wrong (`gridGPerKWh[5]` is negative); otherwise the
 * union error stays and is described as a whole.
 */
function flattenUnions(errors: ValueError[]): ValueError[] {
  const out: ValueError[] = []
  for (const error of errors) {
    if (error.type !== ValueErrorType.Union) {
      out.push(error)
      continue
    }
    const variants = (error.schema as { anyOf?: TSchema[] }).anyOf ?? []
    const jsonType = jsonTypeOf(error.value)
    const matching = variants.flatMap((v, i) => (v.type === jsonType && v.const === undefined ? [i] : []))
    const chosen = matching.length === 1 ? error.errors[matching[0]!] : undefined
    if (chosen === undefined) out.push(error)
    else out.push(...flattenUnions([...chosen]))
  }
  return out
}

function describe(error: ValueError, root: unknown, suggestion: string | undefined): string {
  const schema = error.schema as Record<string, unknown>
  const label = labelOf(error.path, root)
  const got = show(error.value)
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return `${label} is required`
    case ValueErrorType.ObjectAdditionalProperties: {
      const key = splitPointer(error.path).key
      if (suggestion !== undefined) return `unknown property '${key}': did you mean '${suggestion}'?`
      const known = Object.keys((schema.properties as object | undefined) ?? {})
      return `unknown property '${key}' (allowed here: ${known.join(', ')})`
    }
    case ValueErrorType.Object:
      return error.path === ''
        ? `the plant file must be a JSON object, got ${got}`
        : `${label} must be an object, got ${got}`
    case ValueErrorType.Array:
      return `${label} must be a list, got ${got}`
    case ValueErrorType.ArrayMinItems:
    case ValueErrorType.ArrayMaxItems: {
      const n = Array.isArray(error.value) ? error.value.length : 0
      if (schema.minItems === schema.maxItems) return `${label} must have exactly ${schema.minItems} values, got ${n}`
      if (label === 'devices') return `devices must not be empty: an equipment needs at least one device`
      if (schema.minItems === 1) return `${label} must not be empty`
      return error.type === ValueErrorType.ArrayMinItems
        ? `${label} must have at least ${schema.minItems} values, got ${n}`
        : `${label} must have at most ${schema.maxItems} values, got ${n}`
    }
    case ValueErrorType.Number:
      return `${label} must be a number, got ${got}`
    case ValueErrorType.NumberExclusiveMinimum:
      return schema.exclusiveMinimum === 0
        ? `${label} must be a positive number, got ${got}`
        : `${label} must be greater than ${schema.exclusiveMinimum}, got ${got}`
    case ValueErrorType.NumberMinimum:
      return schema.minimum === 0
        ? `${label} must not be negative, got ${got}`
        : `${label} must be at least ${schema.minimum}, got ${got}`
    case ValueErrorType.NumberMaximum:
      return `${label} must be at most ${schema.maximum}, got ${got}`
    case ValueErrorType.NumberExclusiveMaximum:
      return `${label} must be less than ${schema.exclusiveMaximum}, got ${got}`
    case ValueErrorType.String:
      return `${label} must be a string, got ${got}`
    case ValueErrorType.StringMinLength:
      return `${label} must not be empty`
    case ValueErrorType.StringPattern:
      return patternMessage(label, String(error.value), String(schema.pattern))
    case ValueErrorType.Literal:
      return `${label} must be ${JSON.stringify(schema.const)}, got ${got}`
    case ValueErrorType.Union: {
      const variants = (schema.anyOf as TSchema[] | undefined) ?? []
      if (variants.length > 0 && variants.every((v) => v.const !== undefined)) {
        return `${label} must be one of ${variants.map((v) => `'${v.const}'`).join(', ')}, got ${got}`
      }
      return `${label} must be ${schema.description ?? 'of another type'}, got ${got}`
    }
    default:
      return `${label}: ${error.message}`
  }
}

function patternMessage(label: string, value: string, pattern: string): string {
  if (pattern === NODE_ID_PATTERN.source) {
    return `${label} '${value}' must match ${pattern} (lowercase letters, digits and '-', starting with a letter or digit, at most 48 characters)`
  }
  if (pattern === DEVICE_ID_PATTERN.source) {
    return `device id '${value}' must match ${pattern} (letters, digits, '_' and '-', at most 64 characters)`
  }
  if (pattern === MeasurementName.pattern) {
    return `${label} '${value}' must be a measurement name without ':' or '/' (the platform names a reading by what follows the last ':' or '/')`
  }
  return `${label} '${value}' must match ${pattern}`
}

/** What a message calls the value at a pointer: its key, or for list members what they are. */
function labelOf(pointer: string, root: unknown): string {
  if (pointer === '') return 'the plant file'
  const { parent, key } = splitPointer(pointer)
  if (!Array.isArray(valueAt(root, parent))) return key
  const listName = splitPointer(parent).key
  const member: Record<string, string> = {
    sites: 'site',
    areas: 'area',
    lines: 'line',
    equipment: 'equipment',
    devices: 'device id',
    pv: 'device id',
    grid: 'device id',
  }
  return member[listName] ?? `${listName}[${key}]`
}

// ---------------------------------------------------------------------------------------------
// Stage 2: the rules of CONTRACT.md §1 a schema cannot express. The input may be structurally
// broken here, so every access is guarded, and a relation is not checked where one of its fields
// already has a problem (one mistake, one message).

function semanticProblems(input: unknown, problems: Problems): void {
  if (!isRecord(input)) return
  const devices = new Map<string, string>() // device id → path of its first occurrence
  const sitePaths = new Map<string, string>()
  for (const [site, s] of members(input.sites, 'sites')) {
    uniqueId(site, s, 'site', sitePaths, problems)
    checkTimezone(site, s, problems)
    checkAges(site, s, problems)
    if (isRecord(site.meters)) {
      for (const kind of ['pv', 'grid'] as const) {
        for (const [id, path] of strings(site.meters[kind], `${s}.meters.${kind}`)) {
          uniqueDevice(id, path, devices, problems)
        }
      }
    }
    const areaPaths = new Map<string, string>()
    for (const [area, a] of members(site.areas, `${s}.areas`)) {
      uniqueId(area, a, 'area', areaPaths, problems)
      const linePaths = new Map<string, string>()
      for (const [line, l] of members(area.lines, `${a}.lines`)) {
        uniqueId(line, l, 'line', linePaths, problems)
        const equipmentPaths = new Map<string, string>()
        for (const [equipment, e] of members(line.equipment, `${l}.equipment`)) {
          uniqueId(equipment, e, 'equipment', equipmentPaths, problems)
          for (const [id, path] of strings(equipment.devices, `${e}.devices`)) uniqueDevice(id, path, devices, problems)
          checkIdle(equipment.idle, `${e}.idle`, problems)
          checkTuning(equipment.tuning, `${e}.tuning`, problems)
        }
      }
    }
  }
}

function uniqueId(
  node: Record<string, unknown>,
  path: string,
  kind: string,
  seen: Map<string, string>,
  problems: Problems,
): void {
  if (typeof node.id !== 'string') return
  const idPath = `${path}.id`
  const first = seen.get(node.id)
  if (first === undefined) seen.set(node.id, idPath)
  else problems.add(idPath, `duplicate ${kind} id '${node.id}', also at ${first} (ids are unique among siblings)`)
}

function uniqueDevice(id: string, path: string, seen: Map<string, string>, problems: Problems): void {
  const first = seen.get(id)
  if (first === undefined) seen.set(id, path)
  else {
    problems.add(
      path,
      `duplicate device id '${id}', also at ${first} (a device belongs to one equipment or is one site meter)`,
    )
  }
}

const timezoneCache = new Map<string, boolean>()

function isTimeZone(zone: string): boolean {
  let valid = timezoneCache.get(zone)
  if (valid === undefined) {
    try {
      new Intl.DateTimeFormat(undefined, { timeZone: zone })
      valid = zone.length > 0
    } catch {
      valid = false
    }
    timezoneCache.set(zone, valid)
  }
  return valid
}

function checkTimezone(site: Record<string, unknown>, path: string, problems: Problems): void {
  const zone = site.timezone
  if (typeof zone !== 'string' || isTimeZone(zone)) return
  const hint = closest(zone, Intl.supportedValuesOf('timeZone'), 3)
  problems.add(
    `${path}.timezone`,
    `timezone '${zone}' is not a known IANA time zone${hint === undefined ? " (such as 'Asia/Shanghai')" : `: did you mean '${hint}'?`}`,
  )
}

/** maxAgeS ≥ latenessS (§7): a bucket must still accept the readings it waits for. Defaults count. */
function checkAges(site: Record<string, unknown>, path: string, problems: Problems): void {
  const latePath = `${path}.latenessS`
  const agePath = `${path}.maxAgeS`
  if (problems.has(latePath) || problems.has(agePath)) return
  const lateness = site.latenessS ?? SITE_DEFAULTS.latenessS
  const maxAge = site.maxAgeS ?? SITE_DEFAULTS.maxAgeS
  if (!isPositive(lateness) || !isPositive(maxAge) || maxAge >= lateness) return
  if (site.maxAgeS !== undefined) {
    const given = site.latenessS === undefined ? ', the default' : ''
    problems.add(agePath, `maxAgeS (${maxAge}) must be at least latenessS (${lateness}${given})`)
  } else {
    problems.add(latePath, `latenessS (${lateness}) must not exceed maxAgeS (${maxAge}, the default)`)
  }
}

function checkIdle(idle: unknown, path: string, problems: Problems): void {
  if (!isRecord(idle)) return
  const { offBelowW, runAboveW } = idle
  if (problems.has(`${path}.offBelowW`) || problems.has(`${path}.runAboveW`)) return
  if (isFiniteNumber(offBelowW) && isFiniteNumber(runAboveW) && offBelowW > runAboveW) {
    problems.add(`${path}.offBelowW`, `offBelowW (${offBelowW}) must not exceed runAboveW (${runAboveW})`)
  }
}

function checkTuning(tuning: unknown, path: string, problems: Problems): void {
  if (!isRecord(tuning)) return
  const { min, max } = tuning
  if (problems.has(`${path}.min`) || problems.has(`${path}.max`)) return
  if (isFiniteNumber(min) && isFiniteNumber(max) && !(min < max)) {
    problems.add(`${path}.min`, `min (${min}) must be less than max (${max})`)
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}

function isPositive(value: unknown): value is number {
  return isFiniteNumber(value) && value > 0
}

/** The object members of a list, with their paths; anything else is the schema's business. */
function* members(list: unknown, path: string): Generator<[Record<string, unknown>, string]> {
  if (!Array.isArray(list)) return
  for (let i = 0; i < list.length; i++) {
    const item: unknown = list[i]
    if (isRecord(item)) yield [item, `${path}[${i}]`]
  }
}

function* strings(list: unknown, path: string): Generator<[string, string]> {
  if (!Array.isArray(list)) return
  for (let i = 0; i < list.length; i++) {
    const item: unknown = list[i]
    if (typeof item === 'string') yield [item, `${path}[${i}]`]
  }
}

function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  return typeof value
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing'
  if (Array.isArray(value)) return 'a list'
  if (isRecord(value)) return 'an object'
  const text = typeof value === 'string' ? `'${value}'` : String(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

function escapeKey(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1')
}

function unescapeKey(key: string): string {
  return key.replace(/~1/g, '/').replace(/~0/g, '~')
}

function splitPointer(pointer: string): { parent: string; key: string } {
  const cut = pointer.lastIndexOf('/')
  return { parent: pointer.slice(0, Math.max(cut, 0)), key: unescapeKey(pointer.slice(cut + 1)) }
}

function valueAt(root: unknown, pointer: string): unknown {
  let node = root
  if (pointer === '') return node
  for (const raw of pointer.slice(1).split('/')) {
    if (typeof node !== 'object' || node === null) return undefined
    node = (node as Record<string, unknown>)[unescapeKey(raw)]
  }
  return node
}

/**
 * `/sites/0/areas/1/lines/0/id` → `sites[0].areas[1].lines[0].id` (CONTRACT.md §1); the root is
 * `$`. The input decides whether a number is a list index or an (unknown) object key.
 */
function pointerToPath(pointer: string, root: unknown): string {
  if (pointer === '') return '$'
  let node = root
  let path = '$'
  for (const raw of pointer.slice(1).split('/')) {
    const key = unescapeKey(raw)
    path = childPath(path, Array.isArray(node) ? Number(key) : key)
    node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined
  }
  return path
}

function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`
  if (!/^[A-Za-z_$][\w$]*$/.test(key)) return `${parent}[${JSON.stringify(key)}]`
  return parent === '$' ? key : `${parent}.${key}`
}

const LAST_SEGMENT = /(?:\.[A-Za-z_$][\w$]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\]|^[A-Za-z_$][\w$]*)$/

/**
 * Problems sorted as the file reads, so the list can be worked through top to bottom whichever
 * stage found them. A missing key sorts where its object starts.
 */
function inDocumentOrder(problems: PlantProblem[], root: unknown): PlantProblem[] {
  if (problems.length < 2) return problems
  const rank = new Map<string, number>()
  const walk = (node: unknown, path: string): void => {
    rank.set(path, rank.size)
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) walk(node[i], childPath(path, i))
    } else if (isRecord(node)) for (const [key, value] of Object.entries(node)) walk(value, childPath(path, key))
  }
  walk(root, '$')
  const rankOf = (path: string): number => {
    let p = path
    for (;;) {
      const found = rank.get(p)
      if (found !== undefined) return found
      const parent = p.replace(LAST_SEGMENT, '')
      p = parent === p || parent === '' ? '$' : parent
    }
  }
  return problems
    .map((problem) => ({ problem, rank: rankOf(problem.path) }))
    .sort((a, b) => a.rank - b.rank)
    .map(({ problem }) => problem)
}

/** The candidate a typo most likely meant: same letters in another case, or a few edits away. */
function closest(word: string, candidates: readonly string[], maxDistance = 2): string | undefined {
  let best: string | undefined
  let bestDistance = maxDistance + 1
  const lower = word.toLowerCase()
  for (const candidate of candidates) {
    const distance = candidate.toLowerCase() === lower ? 0 : editDistance(lower, candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  // Short words are a few edits away from anything: only suggest where most of the word survives.
  return best !== undefined && (bestDistance === 0 || bestDistance * 3 <= word.length) ? best : undefined
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution)
    }
    previous = current
  }
  return previous[b.length]!
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const member of Object.values(value)) deepFreeze(member)
  }
  return value
}
