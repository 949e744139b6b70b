// A plausible lithium-ion cell plant of any size, for `plantwatt plant generate` (CONTRACT.md §8),
// the built-in demo plant and load tests. The output is a plant model of CONTRACT.md §1 that
// passes validatePlant.
//
// The plant grows in "production modules": one module is what one cell production line needs
// from slurry to formed cell (an anode and a cathode coating line, mixing, calendering, slitting,
// an assembly line with its dry room, formation and ageing) plus its share of utilities. More
// devices mean more modules, so the proportions of a real plant hold at every size; a small N is
// the first part of module 1, starting with the tuned coating oven that the demo is about.
//
// Devices of one equipment, in this order (deviceRolesOf reads it back):
//   [power meter, separate output counter?, process sensor?]
// When the device budget runs short the separate output counter goes first, then the sensor, and
// the power meter also reports what the dropped devices would have.

import type { Area, Equipment, IdleThresholds, Line, PlantModel, Site, Tuning } from '@plantwatt/contract'
import { NODE_ID_PATTERN } from '@plantwatt/contract'

export interface GenerateOptions {
  /** Total number of devices in the plant, site meters included: 1 to MAX_GENERATED_DEVICES. */
  devices: number
  /** Default 1. The same options always give the same plant. */
  seed?: number
  /** Default 'yibin'. */
  siteId?: string
}

export const MAX_GENERATED_DEVICES = 100_000

/** Below this many devices the plant is a pilot line without site meters. */
const METERS_FROM_DEVICES = 10

/**
 * mulberry32: a small, fast, seedable PRNG with a full 2^32 period, good enough for simulation
 * (not for secrets). Returns floats in [0, 1).
 */
export function createRng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

// ---------------------------------------------------------------------------------------------
// Equipment kinds: rated power and which devices each has.

interface Kind {
  type: string
  ratedKW: number
  /** Production equipment: gets explicit idle thresholds about half the time. */
  production: boolean
  /** Counts units produced (CONTRACT.md §2 `output`), on its own counter device or the power meter. */
  output: boolean
  /** A process variable the equipment's sensor reports, if it has one. */
  process?: string
}

const KINDS = {
  oven: { type: 'oven', ratedKW: 250, production: true, output: false, process: 'solvent_ppm' },
  coater: { type: 'coater', ratedKW: 55, production: true, output: true },
  exhaustFan: { type: 'fan', ratedKW: 75, production: false, output: false },
  nmpRecovery: { type: 'nmp-recovery', ratedKW: 150, production: false, output: false, process: 'nmp_ppm' },
  mixer: { type: 'mixer', ratedKW: 90, production: true, output: true },
  calender: { type: 'calender', ratedKW: 200, production: true, output: true },
  slitter: { type: 'slitter', ratedKW: 30, production: true, output: true },
  winder: { type: 'winder', ratedKW: 25, production: true, output: true },
  stacker: { type: 'stacker', ratedKW: 25, production: true, output: true },
  tabWelder: { type: 'welder', ratedKW: 40, production: true, output: true },
  filler: { type: 'electrolyte-filler', ratedKW: 35, production: true, output: true },
  airHandler: { type: 'air-handler', ratedKW: 300, production: false, output: false, process: 'dewpoint' },
  formationCabinet: { type: 'formation-cabinet', ratedKW: 120, production: true, output: true, process: 'cell_temp' },
  ageingRack: { type: 'ageing-rack', ratedKW: 15, production: false, output: false },
  chiller: { type: 'chiller', ratedKW: 400, production: false, output: false, process: 'supply_temp' },
  compressor: { type: 'compressor', ratedKW: 160, production: false, output: false, process: 'pressure' },
  vacuumPump: { type: 'vacuum-pump', ratedKW: 45, production: false, output: false },
} satisfies Record<string, Kind>

const KIND_BY_TYPE = new Map<string, Kind>(Object.values(KINDS).map((kind) => [kind.type, kind]))

/** The coating oven's tuning, as in the example of CONTRACT.md §1. */
const OVEN_TUNING: Tuning = {
  setpoint: 'fan_hz',
  unit: 'Hz',
  min: 30,
  max: 50,
  maxStep: 2,
  constraint: { measure: 'solvent_ppm', max: 400, margin: 0.05 },
  mode: 'auto',
  commandTimeoutS: 600,
}

// The carbon figures of the example of CONTRACT.md §1 (Sichuan grid, hourly, local time).
const GRID_G_PER_KWH = [
  610, 605, 600, 598, 597, 600, 612, 630, 580, 520, 470, 440, 430, 435, 450, 490, 560, 640, 660, 650, 640, 630, 620,
  615,
]

const AREAS: Record<string, string> = {
  electrode: 'Electrode workshop',
  assembly: 'Cell assembly',
  formation: 'Formation and ageing',
  utilities: 'Utilities',
}

/** Modules sharing one utility line (one chilled-water plant serves several production lines). */
const MODULES_PER_UTILITY_LINE = 4

// ---------------------------------------------------------------------------------------------

interface Slot {
  area: string
  line: string
  lineName: string
  kind: Kind
  id: string
  name: string
  tuning?: Tuning
}

/**
 * The equipment of production module `m` (1-based) in the order it is built, most interesting
 * first. Numbers run plant-wide per kind (mixer-5 is in module 2), so ids read well in any scope.
 */
function* moduleSlots(m: number, random: () => number, counters: Map<string, number>): Generator<Slot> {
  const next = (key: string): number => {
    const n = (counters.get(key) ?? 0) + 1
    counters.set(key, n)
    return n
  }
  const slot = (area: string, line: string, lineName: string, kind: Kind, id: string, name: string): Slot => ({
    area,
    line,
    lineName,
    kind,
    id,
    name,
  })

  for (const electrode of ['anode', 'cathode']) {
    const c = next('coating')
    const line = `coating-${c}`
    const lineName = `Coating line ${c} (${electrode})`
    yield {
      ...slot('electrode', line, lineName, KINDS.oven, `coater-${c}-oven`, `Coater ${c} drying oven`),
      tuning: OVEN_TUNING,
    }
    yield slot('electrode', line, lineName, KINDS.coater, `coater-${c}-drive`, `Coater ${c} drive`)
    yield slot('electrode', line, lineName, KINDS.exhaustFan, `coater-${c}-exhaust`, `Coater ${c} exhaust fan`)
    yield slot('electrode', line, lineName, KINDS.nmpRecovery, `coater-${c}-nmp`, `Coater ${c} NMP recovery`)
  }
  for (const electrode of ['anode', 'anode', 'cathode', 'cathode']) {
    const n = next('mixer')
    yield slot('electrode', `mixing-${m}`, `Mixing line ${m}`, KINDS.mixer, `mixer-${n}`, `Mixer ${n} (${electrode})`)
  }
  for (let i = 0; i < 2; i++) {
    const n = next('calender')
    yield slot(
      'electrode',
      `calendering-${m}`,
      `Calendering line ${m}`,
      KINDS.calender,
      `calender-${n}`,
      `Calender ${n}`,
    )
  }
  for (let i = 0; i < 2; i++) {
    const n = next('slitter')
    yield slot('electrode', `slitting-${m}`, `Slitting line ${m}`, KINDS.slitter, `slitter-${n}`, `Slitter ${n}`)
  }

  // Wound (cylindrical, prismatic) or stacked (pouch, blade) cells: one technology per line.
  const stacking = random() < 0.4
  const cellFormers = 4 + Math.floor(random() * 5)
  const assembly = `assembly-${m}`
  const assemblyName = `Assembly line ${m}`
  for (let i = 0; i < cellFormers; i++) {
    const kind = stacking ? KINDS.stacker : KINDS.winder
    const n = next(kind.type)
    const label = stacking ? 'Stacker' : 'Winder'
    yield slot('assembly', assembly, assemblyName, kind, `${kind.type}-${n}`, `${label} ${n}`)
  }
  for (let i = 0; i < Math.ceil(cellFormers / 2); i++) {
    const n = next('tab-welder')
    yield slot('assembly', assembly, assemblyName, KINDS.tabWelder, `tab-welder-${n}`, `Tab welder ${n}`)
  }
  for (let i = 0; i < 2; i++) {
    const n = next('filler')
    yield slot('assembly', assembly, assemblyName, KINDS.filler, `filler-${n}`, `Electrolyte filling ${n}`)
  }
  for (let i = 0; i < 2; i++) {
    const n = next('ahu')
    yield slot('assembly', `dry-room-${m}`, `Dry room ${m}`, KINDS.airHandler, `ahu-${n}`, `Dry-room air handler ${n}`)
  }

  const cabinets = 8 + Math.floor(random() * 5)
  for (let i = 0; i < cabinets; i++) {
    const n = next('cabinet')
    const kind = KINDS.formationCabinet
    yield slot('formation', `formation-${m}`, `Formation line ${m}`, kind, `cabinet-${n}`, `Formation cabinet ${n}`)
  }
  const racks = 6 + Math.floor(random() * 5)
  for (let i = 0; i < racks; i++) {
    const n = next('rack')
    yield slot('formation', `ageing-${m}`, `Ageing line ${m}`, KINDS.ageingRack, `rack-${n}`, `Ageing rack ${n}`)
  }

  const u = Math.ceil(m / MODULES_PER_UTILITY_LINE)
  yield slot('utilities', `chilled-water-${u}`, `Chilled water ${u}`, KINDS.chiller, `chiller-${m}`, `Chiller ${m}`)
  yield slot(
    'utilities',
    `compressed-air-${u}`,
    `Compressed air ${u}`,
    KINDS.compressor,
    `compressor-${m}`,
    `Compressor ${m}`,
  )
  yield slot('utilities', `vacuum-${u}`, `Vacuum ${u}`, KINDS.vacuumPump, `vacuum-pump-${m}`, `Vacuum pump ${m}`)
}

/**
 * IMEI-like device ids: `8601` and four digits make the type allocation code of one batch of
 * NB-IoT modules, then a 6-digit serial and the Luhn check digit of a real IMEI. Modules bought
 * as one batch have consecutive serials, so the ids are consecutive from a seeded start.
 */
function deviceIds(count: number, random: () => number): (index: number) => string {
  const tac = `8601${Math.floor(random() * 10_000)
    .toString()
    .padStart(4, '0')}`
  const start = Math.floor(random() * (1_000_000 - count + 1))
  return (index) => {
    const body = tac + (start + index).toString().padStart(6, '0')
    return body + luhnDigit(body)
  }
}

function luhnDigit(body: string): string {
  let sum = 0
  for (let i = 0; i < body.length; i++) {
    // Double every second digit counting from the right end of the body.
    let digit = body.charCodeAt(body.length - 1 - i) - 48
    if (i % 2 === 0) {
      digit *= 2
      if (digit > 9) digit -= 9
    }
    sum += digit
  }
  return String((10 - (sum % 10)) % 10)
}

/** Rated power with a ±10 % spread between units of one kind, rounded to whole kW. */
function ratedPowerW(kind: Kind, random: () => number): number {
  return Math.round(kind.ratedKW * (0.9 + random() * 0.2)) * 1000
}

/**
 * Idle thresholds for about half of the production equipment; the rest is left to be learned
 * from its power history (CONTRACT.md §1 `idle` optional, §7), so both paths get exercised.
 */
function idleThresholds(kind: Kind, rated: number, random: () => number): IdleThresholds | undefined {
  if (!kind.production || random() >= 0.5) return undefined
  const offBelowW = Math.max(100, Math.round((rated * (0.005 + random() * 0.015)) / 100) * 100)
  const runAboveW = Math.round((rated * (0.2 + random() * 0.15)) / 1000) * 1000
  const afterS = [120, 300, 300, 600][Math.floor(random() * 4)] ?? 300
  return { offBelowW, runAboveW, afterS }
}

/** Generates a plant model with exactly `options.devices` devices. Pure and deterministic. */
export function generatePlant(options: GenerateOptions): PlantModel {
  const { devices } = options
  if (!Number.isInteger(devices) || devices < 1 || devices > MAX_GENERATED_DEVICES) {
    throw new RangeError(`devices must be an integer from 1 to ${MAX_GENERATED_DEVICES}, got ${devices}`)
  }
  const seed = options.seed ?? 1
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`)
  const siteId = options.siteId ?? 'yibin'
  if (!NODE_ID_PATTERN.test(siteId)) {
    throw new RangeError(`siteId '${siteId}' must match ${NODE_ID_PATTERN.source} (CONTRACT.md §1)`)
  }

  const random = createRng(seed)
  const idOf = deviceIds(devices, random)
  let nextDevice = 0
  const takeDevice = () => idOf(nextDevice++)

  const site: Site = {
    id: siteId,
    name: siteId === 'yibin' ? 'Yibin cell plant' : `Cell plant ${siteId}`,
    timezone: 'Asia/Shanghai',
    latenessS: 120,
    offlineAfterS: 900,
    maxAgeS: 604_800,
    carbon: { gridGPerKWh: [...GRID_G_PER_KWH], residualMixGPerKWh: 680, greenShare: 0.266 },
    areas: [],
  }
  if (devices >= METERS_FROM_DEVICES) site.meters = { pv: [takeDevice()], grid: [takeDevice()] }

  const areas = new Map<string, Area>()
  const lines = new Map<string, Line>()
  const counters = new Map<string, number>()
  for (let m = 1; nextDevice < devices; m++) {
    for (const slot of moduleSlots(m, random, counters)) {
      const remaining = devices - nextDevice
      if (remaining === 0) break
      const wanted = 1 + (slot.kind.output && random() < 0.6 ? 1 : 0) + (slot.kind.process ? 1 : 0)
      const count = Math.min(wanted, remaining)
      const rated = ratedPowerW(slot.kind, random)
      const equipment: Equipment = {
        id: slot.id,
        name: slot.name,
        type: slot.kind.type,
        ratedPowerW: rated,
        devices: Array.from({ length: count }, takeDevice),
      }
      const idle = idleThresholds(slot.kind, rated, random)
      if (idle) equipment.idle = idle
      if (slot.tuning) equipment.tuning = structuredClone(slot.tuning)
      lineFor(slot, site, areas, lines).equipment.push(equipment)
    }
  }
  return { version: 1, sites: [site] }
}

/** Areas and lines are created with their first equipment, so a small plant has no empty ones. */
function lineFor(slot: Slot, site: Site, areas: Map<string, Area>, lines: Map<string, Line>): Line {
  const key = `${slot.area}/${slot.line}`
  let line = lines.get(key)
  if (line) return line
  let area = areas.get(slot.area)
  if (!area) {
    area = { id: slot.area, name: AREAS[slot.area] ?? slot.area, lines: [] }
    areas.set(slot.area, area)
    site.areas.push(area)
  }
  line = { id: slot.line, name: slot.lineName, equipment: [] }
  lines.set(key, line)
  area.lines.push(line)
  return line
}

// ---------------------------------------------------------------------------------------------

export interface DeviceRoles {
  /** Reports `power` and `energy` for the equipment. */
  power: string
  /** Reports the `output` counter (production equipment only); may be the power meter itself. */
  output: string | undefined
  /** Reports the process variable (and, for a tuned equipment, its setpoint); may be the power meter. */
  process: { device: string; measure: string } | undefined
}

/**
 * Which device of a generated equipment reports what, by the layout described at the top of this
 * file. For a type the generator does not make, every reading is attributed to the first device.
 */
export function deviceRolesOf(equipment: Equipment): DeviceRoles {
  const { devices } = equipment
  const power = devices[0] ?? ''
  const kind = KIND_BY_TYPE.get(equipment.type)
  if (kind === undefined) return { power, output: undefined, process: undefined }
  const n = devices.length
  const measure = equipment.tuning?.constraint.measure ?? kind.process
  const process =
    measure === undefined ? undefined : { device: n >= 2 && kind.process ? devices[n - 1]! : power, measure }
  const separateOutput = n === 3 || (n === 2 && kind.process === undefined)
  const output = kind.output ? (separateOutput ? devices[1]! : power) : undefined
  return { power, output, process }
}
