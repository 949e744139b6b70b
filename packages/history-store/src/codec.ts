// Keys and values of the history store, as bytes.
//
// Keys are big-endian so that LMDB's byte order is the query order. Two layouts, measured
// (docs/decisions.md "History store"):
// - 15m, 1h, 1d and demand, scope-major (9 bytes):
//     scope id (u32) | kind (u8: 15m, 1h, 1d, demand) | bucket start in UTC minutes (u32)
//   All buckets of one scope and step are one contiguous run ordered by time, so `range` is a
//   seek and a sequential read of exactly the rows it answers, whatever the store holds.
// - 1m, time-major (8 bytes): minute (u32) | scope id (u32). Every minute brings a row for every
//   scope; scope-major, that batch touches (and LMDB copies and writes) one page per scope — about
//   110 MB a minute for 27,636 scopes, and a write rate that fell 9-fold within 3 simulated hours
//   (measured) — while time-major it appends a few hundred pages at the tree's end. A 1-minute range reads one key per minute instead (at most 10,080 in 7 days).
// Scope names go through a dictionary (history-store.ts) so that keys stay short and "a/b" never
// prefixes "a/b2". u32 minutes reach the year 10136.
//
// Value: format byte, revision (varint), presence mask of the optional figures, float mask, then
// each figure. Every figure is either a whole number of thousandths (energy in Wh from whole mWh,
// peak watts, anything round) stored as a zigzag varint of thousandths, or else the float64 itself:
// both give back the very number written (§5: the history API answers exactly the figures sent),
// and a typical minute row takes about 30 bytes instead of 80.

import type { Kind } from './retention.ts'
import type { BucketRecord, DemandRecord } from './types.ts'

export const KEY_BYTES = 9
export const KIND_CODE: Record<Kind, number> = { '1m': 0, '15m': 1, '1h': 2, '1d': 3, demand: 4 }
export const MAX_MINUTE = 0xffff_ffff
export const MAX_REVISION = Number.MAX_SAFE_INTEGER

const FORMAT_BUCKET = 1
const FORMAT_DEMAND = 2

export function encodeKey(scopeId: number, kind: Kind, minute: number): Buffer {
  const key = Buffer.allocUnsafe(KEY_BYTES)
  key.writeUInt32BE(scopeId, 0)
  key.writeUInt8(KIND_CODE[kind], 4)
  key.writeUInt32BE(minute, 5)
  return key
}

export function minuteOfKey(key: Uint8Array): number {
  return ((key[5]! << 24) >>> 0) + (key[6]! << 16) + (key[7]! << 8) + key[8]!
}

export const MINUTE_KEY_BYTES = 8

/** Key of a 1-minute bucket: time-major (see above). */
export function encodeMinuteKey(scopeId: number, minute: number): Buffer {
  const key = Buffer.allocUnsafe(MINUTE_KEY_BYTES)
  key.writeUInt32BE(minute, 0)
  key.writeUInt32BE(scopeId, 4)
  return key
}

export function minuteOfMinuteKey(key: Uint8Array): number {
  return ((key[0]! << 24) >>> 0) + (key[1]! << 16) + (key[2]! << 8) + key[3]!
}

/** Figures in value order; the optional ones have a presence bit each. */
const REQUIRED = ['energyWh', 'co2G', 'co2MarketG', 'idleWh', 'peakW'] as const
const OPTIONAL = ['outputUnits', 'idleCo2G', 'pvWh', 'savedWh', 'savedCo2G'] as const

/** Reusable scratch: encoding a value allocates only the returned copy. */
const scratch = Buffer.allocUnsafe(16 + 10 * 10)
let at = 0

function putVarint(n: number): void {
  // Arithmetic, not bitwise: values reach 2^53.
  while (n >= 0x80) {
    scratch[at++] = (n % 0x80) | 0x80
    n = Math.floor(n / 0x80)
  }
  scratch[at++] = n
}

/** Thousandths of `x` when they give back x exactly, else undefined. */
function milli(x: number): number | undefined {
  if (Object.is(x, -0)) return undefined
  const m = Math.round(x * 1000)
  return Number.isSafeInteger(m) && m / 1000 === x ? m : undefined
}

function putFigures(values: readonly number[]): void {
  let floatMask = 0
  const millis: (number | undefined)[] = []
  for (let i = 0; i < values.length; i++) {
    const m = milli(values[i]!)
    millis.push(m)
    if (m === undefined) floatMask |= 1 << i
  }
  putVarint(floatMask)
  for (let i = 0; i < values.length; i++) {
    const m = millis[i]
    if (m === undefined) {
      scratch.writeDoubleLE(values[i]!, at)
      at += 8
    } else putVarint(m >= 0 ? m * 2 : -m * 2 - 1)
  }
}

export function encodeBucket(row: BucketRecord): Buffer {
  at = 0
  scratch[at++] = FORMAT_BUCKET
  putVarint(row.revision)
  let presence = 0
  const values: number[] = REQUIRED.map((name) => row[name])
  for (let i = 0; i < OPTIONAL.length; i++) {
    const v = row[OPTIONAL[i]!]
    if (v !== undefined) {
      presence |= 1 << i
      values.push(v)
    }
  }
  putVarint(presence)
  putFigures(values)
  return Buffer.from(scratch.subarray(0, at))
}

export function encodeDemand(row: DemandRecord): Buffer {
  at = 0
  scratch[at++] = FORMAT_DEMAND
  putVarint(row.revision)
  putFigures([row.kW])
  return Buffer.from(scratch.subarray(0, at))
}

// Decoding runs per row of every answer (2,880 for a month of quarters), so it keeps its cursor in
// module variables and reads floats through one 8-byte scratch: no allocation but the row itself.
let bytes: Uint8Array = new Uint8Array(0)
let pos = 0
const f64 = new Float64Array(1)
const f64Bytes = new Uint8Array(f64.buffer)

function varint(): number {
  let n = 0
  let scale = 1
  for (;;) {
    const b = bytes[pos++]
    if (b === undefined) throw new RangeError('truncated history value')
    n += (b & 0x7f) * scale
    if (b < 0x80) return n
    scale *= 0x80
  }
}

/** The next figure: float64 when its bit in floatMask is set, else zigzag thousandths. */
function figure(floatMask: number, i: number): number {
  if (floatMask & (1 << i)) {
    if (pos + 8 > bytes.length) throw new RangeError('truncated history value')
    for (let k = 0; k < 8; k++) f64Bytes[k] = bytes[pos + k]!
    pos += 8
    return f64[0]!
  }
  const z = varint()
  return (z % 2 === 0 ? z / 2 : -(z + 1) / 2) / 1000
}

/** Moves the cursor to `value`'s first figure byte after the format byte; returns the revision. */
function start(value: Uint8Array): number {
  bytes = value
  pos = 1
  return varint()
}

/** The revision of a stored value, read without decoding the figures (the write path's check). */
export function revisionOf(value: Uint8Array): number {
  return start(value)
}

/**
 * Whether two encoded values hold the same figures, whatever their revisions: the encoding is
 * deterministic, so the bytes after the revision decide.
 */
export function sameFigures(a: Uint8Array, b: Uint8Array): boolean {
  if (a[0] !== b[0]) return false
  start(a)
  const pa = pos
  start(b)
  const pb = pos
  if (a.length - pa !== b.length - pb) return false
  for (let i = 0; i < a.length - pa; i++) if (a[pa + i] !== b[pb + i]) return false
  return true
}

export function decodeBucket(t: number, value: Uint8Array): BucketRecord {
  if (value[0] !== FORMAT_BUCKET) throw new RangeError(`not a bucket value (format ${value[0]})`)
  const revision = start(value)
  const presence = varint()
  const floatMask = varint()
  const row: BucketRecord = {
    t,
    energyWh: figure(floatMask, 0),
    co2G: figure(floatMask, 1),
    co2MarketG: figure(floatMask, 2),
    idleWh: figure(floatMask, 3),
    peakW: figure(floatMask, 4),
    revision,
  }
  if (presence !== 0) {
    let k = REQUIRED.length
    for (let i = 0; i < OPTIONAL.length; i++) if (presence & (1 << i)) row[OPTIONAL[i]!] = figure(floatMask, k++)
  }
  return row
}

export function decodeDemand(t: number, value: Uint8Array): DemandRecord {
  if (value[0] !== FORMAT_DEMAND) throw new RangeError(`not a demand value (format ${value[0]})`)
  const revision = start(value)
  const floatMask = varint()
  return { t, kW: figure(floatMask, 0), revision }
}
