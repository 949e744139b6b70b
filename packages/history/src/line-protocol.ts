import type { HistoryPoint, RefusalReason } from './point.ts'

/**
 * InfluxDB line protocol, written here rather than through the client's `Point` so that a bad
 * value becomes a counted refusal instead of an exception, and so that the exact bytes that go to
 * disk and to the server are ours to test.
 *
 * Escaping (https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/#special-characters):
 * - measurement: `,` and space;
 * - tag keys, tag values, field keys: `,`, `=` and space;
 * - string field values: `"` and `\` inside double quotes;
 * - a backslash is escaped everywhere (`\\`): otherwise a value ending in `\` would escape the
 *   delimiter that follows it and shift every later key.
 * Newlines cannot be escaped at all (the protocol is newline-delimited), so they are refused, and a
 * measurement may not start with `#` (a comment line). Empty tag values are omitted, as InfluxDB does.
 */

const MEASUREMENT_SPECIAL = /[\\, ]/g
const KEY_SPECIAL = /[\\,= ]/g
const STRING_SPECIAL = /[\\"]/g
const NEEDS_MEASUREMENT_ESCAPE = /[\\, ]/
const NEEDS_KEY_ESCAPE = /[\\,= ]/
const NEEDS_STRING_ESCAPE = /[\\"]/
const NEWLINE = /[\r\n]/

export function escapeMeasurement(name: string): string {
  return NEEDS_MEASUREMENT_ESCAPE.test(name) ? name.replace(MEASUREMENT_SPECIAL, '\\$&') : name
}

/** Tag keys, tag values and field keys share one rule. */
export function escapeKey(key: string): string {
  return NEEDS_KEY_ESCAPE.test(key) ? key.replace(KEY_SPECIAL, '\\$&') : key
}

export function quoteString(value: string): string {
  return NEEDS_STRING_ESCAPE.test(value) ? `"${value.replace(STRING_SPECIAL, '\\$&')}"` : `"${value}"`
}

/** A name InfluxDB will take as a key: non-empty, no newline, not `_`-prefixed (reserved: `_field`, `_measurement`, …). */
function isValidKey(key: string): boolean {
  return key.length > 0 && key.charCodeAt(0) !== 95 /* _ */ && !NEWLINE.test(key)
}

/**
 * One point → one line (no trailing newline), or the reason it cannot be written. Never throws:
 * this runs on the processor's hot path, once per point, with no closures.
 */
export function encodeLine(point: HistoryPoint): string | RefusalReason {
  const { measurement, tags, fields, timeMs } = point
  if (typeof measurement !== 'string' || !isValidKey(measurement) || measurement.charCodeAt(0) === 35 /* # */) {
    return 'invalid_name'
  }
  if (typeof timeMs !== 'number' || !Number.isFinite(timeMs) || Math.abs(timeMs) > Number.MAX_SAFE_INTEGER) {
    return 'invalid_time'
  }
  let line = escapeMeasurement(measurement)

  // Sorted tags: InfluxDB's canonical series key order; also makes lines comparable in tests.
  const tagKeys = Object.keys(tags).sort()
  for (let i = 0; i < tagKeys.length; i++) {
    const key = tagKeys[i]!
    const value = tags[key]
    if (typeof value !== 'string') return 'invalid_name'
    if (value.length === 0) continue
    if (!isValidKey(key) || NEWLINE.test(value)) return 'invalid_name'
    line += `,${escapeKey(key)}=${escapeKey(value)}`
  }

  let separator = ' '
  let count = 0
  for (const key in fields) {
    const value = fields[key]
    if (!isValidKey(key)) return 'invalid_name'
    let encoded: string
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return 'non_finite'
      // String(n) gives the shortest round-trip form ("1.5", "1e+21"); both parsers accept it.
      // No `i` suffix: every number is a float, so a field never conflicts with its own past type.
      encoded = String(value)
    } else if (typeof value === 'string') {
      if (NEWLINE.test(value)) return 'invalid_value'
      encoded = quoteString(value)
    } else {
      return 'invalid_value'
    }
    line += `${separator}${escapeKey(key)}=${encoded}`
    separator = ','
    count++
  }
  if (count === 0) return 'no_fields'

  // Fractions of a millisecond are dropped (floor), as the InfluxDB client does for numeric times.
  return `${line} ${Math.floor(timeMs)}`
}
