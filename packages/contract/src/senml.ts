// SenML codec of CONTRACT.md §2 (RFC 8428): device uplinks in SenML JSON or SenML CBOR become
// readings, every bad record is rejected on its own with a reason, and the simulator encodes packs.
// decodeSenml runs once per MQTT message at tens of thousands of records per second, so its record
// loop uses plain loops, module-level constants and no exceptions outside the JSON/CBOR parse.

import { type Options as CborOptions, Decoder, Encoder } from 'cbor-x'

export type RejectReason = 'malformed' | 'non_finite' | 'unit_mismatch' | 'future' | 'too_old' | 'out_of_range'

/** Which SenML field carries a measurement: `v` (value) or `s` (sum, for cumulative counters). */
export type MeasurementField = 'v' | 's'

export interface Reading {
  /** Measurement name: the resolved SenML name after its last `:` or `/` (CONTRACT.md §2). */
  name: string
  /** Epoch seconds, fractions allowed; relative SenML times are already resolved against receipt. */
  time: number
  value: number
  field: MeasurementField
  unit: string | undefined
}

export interface RecordRejection {
  /** Index of the record in the pack, or -1 when the whole payload is refused. */
  index: number
  reason: RejectReason
  detail: string
}

export interface DecodeOptions {
  /** Epoch seconds, wall clock at receipt: "now" of RFC 8428 §4.5.3 relative times. */
  receivedAt: number
  /** Records more than this many seconds ahead of receivedAt are `future` (default 300, CONTRACT.md §2). */
  maxFutureS?: number
  /** Epoch seconds; records older than this are `too_old`. Default: no limit. */
  notBefore?: number
}

export interface DecodedPack {
  /** Accepted readings in pack order; duplicates are kept (the processor dedups, CONTRACT.md §2). */
  readings: Reading[]
  rejections: RecordRejection[]
}

/** One SenML record as the simulator writes it (RFC 8428 §4, Table 1). */
export interface SenmlRecord {
  bn?: string
  bt?: number
  bu?: string
  bv?: number
  bs?: number
  bver?: number
  n?: string
  u?: string
  v?: number
  s?: number
  t?: number
  vs?: string
  vb?: boolean
  ut?: number
}

/** Known measurements of CONTRACT.md §2; any other name is a process variable carried in `v`, any unit. */
export const KNOWN_MEASUREMENTS: Readonly<
  Record<'power' | 'energy' | 'output', { unit: string; field: MeasurementField }>
> = Object.freeze({
  power: Object.freeze({ unit: 'W', field: 'v' as const }),
  energy: Object.freeze({ unit: 'Wh', field: 's' as const }),
  output: Object.freeze({ unit: 'count', field: 's' as const }),
})

// A Map, not the object: a name like `constructor` must not find Object.prototype members.
const KNOWN = new Map<string, { unit: string; field: MeasurementField }>(Object.entries(KNOWN_MEASUREMENTS))

/** RFC 8428 §4.5.3: resolved times below 2^28 are relative to "now". */
const RELATIVE_TIME_LIMIT = 2 ** 28
/** RFC 8428 §4.4: the version this codec understands (also the default when bver is absent). */
const SENML_VERSION = 10
/** RFC 8428 §4.5.1 rule for the concatenated name. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9:./_-]*$/
const DEFAULT_MAX_FUTURE_S = 300
const OPEN_BRACKET = 0x5b
const UNDERSCORE = 0x5f

/**
 * RFC 8428 §6 Table 4 integer map keys. cbor-x decodes maps into plain objects (mapsAsObjects), so
 * an integer key arrives as its decimal string ("-2"); string labels are accepted in CBOR as well.
 * Note Base Sum is -6 (Table 1 and Table 4 agree).
 */
const CBOR_LABEL = {
  bver: -1,
  bn: -2,
  bt: -3,
  bu: -4,
  bv: -5,
  bs: -6,
  n: 0,
  u: 1,
  v: 2,
  vs: 3,
  vb: 4,
  s: 5,
  t: 6,
  ut: 7,
  vd: 8,
} as const
type Label = keyof typeof CBOR_LABEL
// The same labels as object keys, converted once instead of on every lookup.
const CBOR_KEY = Object.fromEntries(Object.entries(CBOR_LABEL).map(([label, key]) => [label, String(key)])) as Record<
  Label,
  string
>
const ENCODE_ORDER: readonly (keyof SenmlRecord)[] = [
  'bver',
  'bn',
  'bt',
  'bu',
  'bv',
  'bs',
  'n',
  'u',
  'v',
  'vs',
  'vb',
  's',
  't',
  'ut',
]

// Created once, not per message (it runs at the ingest rate): plain objects for maps, no record
// extension (untrusted input must not define structures), 64-bit integers as numbers so that a
// device that encodes small integers wide still gets numbers, never BigInt.
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true, int64AsNumber: true } as CborOptions)
// Preferred (shortest) map headers and no tag 259 around the integer-keyed maps: a plain SenML CBOR
// receiver (RFC 8428 §6) expects bare maps.
const cborEncoder = new Encoder({
  useRecords: false,
  mapsAsObjects: false,
  variableMapSize: true,
  useTag259ForMaps: false,
} as CborOptions)
const utf8 = new TextDecoder('utf-8', { fatal: true })

type Fields = Record<string, unknown>

function payloadRejection(detail: string): DecodedPack {
  return { readings: [], rejections: [{ index: -1, reason: 'malformed', detail }] }
}

function parsePayload(payload: Uint8Array): { records: unknown[]; cbor: boolean } | string {
  if (payload.length === 0) return 'empty payload'
  const cbor = payload[0] !== OPEN_BRACKET
  let root: unknown
  try {
    root = cbor ? cborDecoder.decode(payload) : JSON.parse(utf8.decode(payload))
  } catch {
    return cbor ? 'payload is neither SenML JSON nor valid CBOR' : 'payload is not valid UTF-8 JSON'
  }
  if (!Array.isArray(root)) return 'a SenML pack must be an array of records'
  if (root.length === 0) return 'empty SenML pack'
  return { records: root, cbor }
}

/** A record as a plain object, or undefined when it is something else (array, scalar, Date, tag…). */
function asFields(record: unknown): Fields | undefined {
  if (typeof record !== 'object' || record === null) return undefined
  const proto = Object.getPrototypeOf(record)
  if (proto === Object.prototype || proto === null) return record as Fields
  // A CBOR map wrapped in tag 259 decodes to a Map; rare, so copying it is fine. No prototype, so
  // a "__proto__" key stays an ordinary (ignored) field.
  if (record instanceof Map) {
    const out: Fields = Object.create(null)
    for (const [key, value] of record) {
      if (typeof key === 'string' || typeof key === 'number') out[String(key)] = value
    }
    return out
  }
  return undefined
}

/** Reads one field: in CBOR the Table 4 integer label first, then the string label. */
function get(rec: Fields, label: Label, cbor: boolean): unknown {
  if (cbor) {
    const byInt = rec[CBOR_KEY[label]]
    if (byInt !== undefined) return byInt
  }
  return rec[label]
}

/** RFC 8428 §4.4: a label ending in `_` is must-understand; this codec understands none. */
function mustUnderstandLabel(rec: Fields): string | undefined {
  for (const key in rec) {
    if (key.charCodeAt(key.length - 1) === UNDERSCORE) return key
  }
  return undefined
}

/** Seconds for a detail message, without float noise. */
function secs(x: number): string {
  return String(Math.round(x * 1000) / 1000)
}

function quote(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text)
}

/** Measurement name of CONTRACT.md §2 (after the last `:` or `/`), or undefined if invalid. */
function measurementName(resolved: string): string | undefined {
  if (!NAME_PATTERN.test(resolved)) return undefined
  const cut = Math.max(resolved.lastIndexOf(':'), resolved.lastIndexOf('/'))
  if (cut < 0) return resolved
  return cut === resolved.length - 1 ? undefined : resolved.slice(cut + 1)
}

/** Why a resolved name gave no measurement name (only on the rejection path). */
function nameProblem(resolved: string): string {
  if (resolved.length === 0) return 'record has no name'
  if (!NAME_PATTERN.test(resolved)) return 'invalid SenML name (RFC 8428 §4.5.1)'
  return 'name has nothing after its last ":" or "/"'
}

/**
 * Decodes one uplink payload (CONTRACT.md §2). Never throws for any payload: a payload that is not a
 * SenML pack gives one rejection with index -1; otherwise each bad record is rejected on its own and
 * the good ones are returned in pack order.
 */
export function decodeSenml(payload: Uint8Array, options: DecodeOptions): DecodedPack {
  const parsed = parsePayload(payload)
  if (typeof parsed === 'string') return payloadRejection(parsed)
  const { records, cbor } = parsed
  const receivedAt = options.receivedAt
  const latest = receivedAt + (options.maxFutureS ?? DEFAULT_MAX_FUTURE_S)
  const notBefore = options.notBefore ?? Number.NEGATIVE_INFINITY

  const readings: Reading[] = []
  const rejections: RecordRejection[] = []

  // Base fields in effect (RFC 8428 §4.1: they apply from their record until overridden). A base
  // field with the wrong type poisons the base: records that depend on it are rejected instead of
  // silently resolved against an older base (a misdated or misnamed reading would be stored as
  // good data). *Bad holds the index of the record that broke it, -1 when the base is sound.
  let bn = ''
  let bt = 0
  let bu: string | undefined
  let bv = 0
  let bs = 0
  let bnBad = -1
  let btBad = -1
  let buBad = -1
  let bvBad = -1
  let bsBad = -1

  // Packs repeat a handful of names; remember the last resolution to skip concat + regex. The
  // initial state is the resolution of (bn '', no n): no name.
  let lastBn = ''
  let lastN: string | undefined
  let lastName: string | undefined

  for (let i = 0; i < records.length; i++) {
    const rec = asFields(records[i])
    if (rec === undefined) {
      rejections.push({ index: i, reason: 'malformed', detail: 'record is not a map' })
      continue
    }

    const mustUnderstand = mustUnderstandLabel(rec)
    if (mustUnderstand !== undefined) {
      // RFC 8428 §4.4: an error MUST be generated; the field may change how other records resolve,
      // so none of the pack is used.
      return payloadRejection(`record ${i} has must-understand field ${quote(mustUnderstand)} (RFC 8428 §4.4)`)
    }

    // Base fields (RFC 8428 §4.1), each applied only when it has the right type.
    let badBase: string | undefined
    const rbver = get(rec, 'bver', cbor)
    if (rbver !== undefined) {
      if (typeof rbver !== 'number' || !Number.isInteger(rbver) || rbver < 1) badBase = 'bver'
      else if (rbver > SENML_VERSION) {
        // RFC 8428 §4.4: a larger version MUST NOT be used (RFC 9100 features this codec lacks).
        return payloadRejection(`record ${i} has SenML version ${rbver}, this receiver understands ${SENML_VERSION}`)
      }
    }
    const rbn = get(rec, 'bn', cbor)
    if (rbn !== undefined) {
      if (typeof rbn === 'string') {
        bn = rbn
        bnBad = -1
      } else {
        badBase = 'bn'
        bnBad = i
      }
    }
    const rbt = get(rec, 'bt', cbor)
    if (rbt !== undefined) {
      if (typeof rbt === 'number') {
        bt = rbt
        btBad = -1
      } else {
        badBase = 'bt'
        btBad = i
      }
    }
    const rbu = get(rec, 'bu', cbor)
    if (rbu !== undefined) {
      if (typeof rbu === 'string') {
        bu = rbu
        buBad = -1
      } else {
        badBase = 'bu'
        buBad = i
      }
    }
    const rbv = get(rec, 'bv', cbor)
    if (rbv !== undefined) {
      if (typeof rbv === 'number') {
        bv = rbv
        bvBad = -1
      } else {
        badBase = 'bv'
        bvBad = i
      }
    }
    const rbs = get(rec, 'bs', cbor)
    if (rbs !== undefined) {
      if (typeof rbs === 'number') {
        bs = rbs
        bsBad = -1
      } else {
        badBase = 'bs'
        bsBad = i
      }
    }
    if (badBase !== undefined) {
      rejections.push({ index: i, reason: 'malformed', detail: `base field ${badBase} has the wrong type` })
      continue
    }

    const n = get(rec, 'n', cbor)
    const u = get(rec, 'u', cbor)
    const v = get(rec, 'v', cbor)
    const s = get(rec, 's', cbor)
    const t = get(rec, 't', cbor)
    const ut = get(rec, 'ut', cbor)
    const hasVs = get(rec, 'vs', cbor) !== undefined
    const hasVb = get(rec, 'vb', cbor) !== undefined
    const hasVd = get(rec, 'vd', cbor) !== undefined

    // A record of base fields only (RFC 8428 §5.1.7 opens with one) carries no measurement.
    if (
      n === undefined &&
      u === undefined &&
      v === undefined &&
      s === undefined &&
      t === undefined &&
      ut === undefined &&
      !hasVs &&
      !hasVb &&
      !hasVd
    ) {
      continue
    }

    // Field types of RFC 8428 Table 1 (null counts as a wrong type, not as absent).
    let detail: string | undefined
    if (n !== undefined && typeof n !== 'string') detail = 'field n must be a string'
    else if (u !== undefined && typeof u !== 'string') detail = 'field u must be a string'
    else if (v !== undefined && typeof v !== 'number') detail = 'field v must be a number'
    else if (s !== undefined && typeof s !== 'number') detail = 'field s must be a number'
    else if (t !== undefined && typeof t !== 'number') detail = 'field t must be a number'
    else if (ut !== undefined && typeof ut !== 'number') detail = 'field ut must be a number'
    else if ((v !== undefined ? 1 : 0) + (hasVs ? 1 : 0) + (hasVb ? 1 : 0) + (hasVd ? 1 : 0) > 1) {
      detail = 'more than one value field (RFC 8428 §4.2)'
    } else if (bnBad >= 0) detail = `base name of record ${bnBad} is invalid`
    if (detail !== undefined) {
      rejections.push({ index: i, reason: 'malformed', detail })
      continue
    }

    // Name: bn + n (RFC 8428 §4.5.1), then the part after the last ':' or '/' (CONTRACT.md §2).
    const nStr = n as string | undefined
    if (bn !== lastBn || nStr !== lastN) {
      lastBn = bn
      lastN = nStr
      const resolved = nStr === undefined ? bn : bn + nStr
      lastName = resolved.length === 0 ? undefined : measurementName(resolved)
    }
    const name = lastName
    if (name === undefined) {
      rejections.push({ index: i, reason: 'malformed', detail: nameProblem(nStr === undefined ? bn : bn + nStr) })
      continue
    }

    const known = KNOWN.get(name)
    const field: MeasurementField = known === undefined ? 'v' : known.field
    const raw = (field === 'v' ? v : s) as number | undefined
    if (raw === undefined) {
      rejections.push({
        index: i,
        reason: 'malformed',
        detail:
          v === undefined && s === undefined && (hasVs || hasVb || hasVd)
            ? 'only numeric values are supported'
            : `${name} needs a numeric ${field} field`,
      })
      continue
    }
    if (field === 'v' ? bvBad >= 0 : bsBad >= 0) {
      const base = field === 'v' ? 'bv' : 'bs'
      rejections.push({
        index: i,
        reason: 'malformed',
        detail: `${base} of record ${field === 'v' ? bvBad : bsBad} is invalid`,
      })
      continue
    }
    if (btBad >= 0) {
      rejections.push({ index: i, reason: 'malformed', detail: `base time of record ${btBad} is invalid` })
      continue
    }
    const unitRaw = u !== undefined ? (u as string) : buBad >= 0 ? null : bu
    if (unitRaw === null) {
      rejections.push({ index: i, reason: 'malformed', detail: `base unit of record ${buBad} is invalid` })
      continue
    }

    // RFC 8428 §4.5.4: bv + v and bs + s (a missing one counts as zero).
    const value = (field === 'v' ? bv : bs) + raw
    if (!Number.isFinite(value)) {
      rejections.push({ index: i, reason: 'non_finite', detail: `${field} is not a finite number` })
      continue
    }
    // RFC 8428 §4.5.3: bt + t; below 2^28 it is relative to receipt, and no time at all means "now".
    let time = bt + ((t as number | undefined) ?? 0)
    if (!Number.isFinite(time)) {
      rejections.push({ index: i, reason: 'non_finite', detail: 'time is not a finite number' })
      continue
    }
    if (time < RELATIVE_TIME_LIMIT) time += receivedAt

    // An empty unit says nothing, so it is treated as absent rather than as a contradiction.
    const unit = unitRaw === '' ? undefined : unitRaw
    if (known !== undefined && unit !== undefined && unit !== known.unit) {
      rejections.push({
        index: i,
        reason: 'unit_mismatch',
        detail: `${name} must be in ${known.unit}, got ${quote(unit)}`,
      })
      continue
    }

    if (time > latest) {
      rejections.push({ index: i, reason: 'future', detail: `time is ${secs(time - receivedAt)} s ahead of receipt` })
      continue
    }
    if (time < notBefore) {
      rejections.push({
        index: i,
        reason: 'too_old',
        detail: `time is ${secs(notBefore - time)} s before the oldest accepted`,
      })
      continue
    }

    readings.push({ name, time, value, field, unit })
  }

  return { readings, rejections }
}

/** SenML JSON (RFC 8428 §5). The first byte is `[`, which is how receivers tell it from CBOR. */
export function encodeSenmlJson(pack: SenmlRecord[]): Buffer {
  return Buffer.from(JSON.stringify(pack), 'utf8')
}

/** SenML CBOR (RFC 8428 §6) with the integer labels of Table 4; unknown properties are dropped. */
export function encodeSenmlCbor(pack: SenmlRecord[]): Buffer {
  const records: Map<number, unknown>[] = new Array(pack.length)
  for (let i = 0; i < pack.length; i++) {
    const record = pack[i] as SenmlRecord
    const map = new Map<number, unknown>()
    for (const label of ENCODE_ORDER) {
      const value = record[label]
      if (value !== undefined) map.set(CBOR_LABEL[label], value)
    }
    records[i] = map
  }
  return cborEncoder.encode(records)
}
