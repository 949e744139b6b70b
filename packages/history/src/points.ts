import type { HistoryPoint } from './point.ts'

/**
 * The processor's derived events as points. The shapes are structural copies of CONTRACT.md §5 so
 * that this adapter does not depend on the contract package for two small records.
 */

export type BucketStepName = '1m' | '15m' | '1h' | '1d'

/** A closed (or revised) energy bucket, as the processor emits it (CONTRACT.md §5 `bucket`, §7). */
export interface BucketRecord {
  scope: string
  step: BucketStepName
  /** Bucket start, epoch ms. */
  t: number
  energyWh: number
  co2G: number
  co2MarketG: number
  idleWh: number
  peakW: number
  revision: number
  // Optional figures of CONTRACT.md §5, present where they apply.
  outputUnits?: number
  idleCo2G?: number
  pvWh?: number
  savedWh?: number
  savedCo2G?: number
}

/** The optional bucket fields of CONTRACT.md §5: written where a bucket has them, never as 0 for "absent". */
const OPTIONAL_BUCKET_FIELDS = ['outputUnits', 'idleCo2G', 'pvWh', 'savedWh', 'savedCo2G'] as const

/** An alert state change (CONTRACT.md §5 alert shape) with its channel sequence number. */
export interface AlertRecord {
  id: string
  kind: string
  state: string
  severity: string
  scope: string
  at: number
  since: number
  message: string
  data: Readonly<Record<string, unknown>>
  seq: number
}

export const BUCKET_MEASUREMENT = 'bucket'
export const ALERT_MEASUREMENT = 'alert'

const SCOPE_LEVELS = ['site', 'area', 'line', 'equipment'] as const

/**
 * `site/area/line/equipment` → `{site, area, line, equipment}` for the levels present
 * (CONTRACT.md §1: scope strings). Extra levels beyond equipment are kept in the last tag
 * rather than dropped, so two different scopes never share a series.
 */
export function scopeTags(scope: string): Record<string, string> {
  const parts = scope.split('/')
  const tags: Record<string, string> = {}
  const levels = Math.min(parts.length, SCOPE_LEVELS.length)
  for (let i = 0; i < levels; i++) tags[SCOPE_LEVELS[i]!] = parts[i]!
  if (parts.length > SCOPE_LEVELS.length) tags.equipment = parts.slice(SCOPE_LEVELS.length - 1).join('/')
  return tags
}

/**
 * A bucket is identified by measurement + scope tags + step + start time. `revision` is a field,
 * not a tag: a revised bucket must land on the same series and timestamp, where InfluxDB replaces
 * the earlier values instead of keeping both.
 */
export function bucketPoint(bucket: BucketRecord): HistoryPoint {
  const tags = scopeTags(bucket.scope)
  tags.step = bucket.step
  const fields: Record<string, number> = {
    energyWh: bucket.energyWh,
    co2G: bucket.co2G,
    co2MarketG: bucket.co2MarketG,
    idleWh: bucket.idleWh,
    peakW: bucket.peakW,
    revision: bucket.revision,
  }
  for (const name of OPTIONAL_BUCKET_FIELDS) {
    const value = bucket[name]
    if (value !== undefined) fields[name] = value
  }
  return { measurement: BUCKET_MEASUREMENT, tags, fields, timeMs: bucket.t }
}

const NEWLINES = /[\r\n]+/g

/**
 * An alert event at its event time `at`. `id` is a tag: two alerts of the same kind and scope can
 * change state in the same millisecond (offline alerts of two devices of one equipment are
 * evaluated on the same site clock tick), and without the id the second would overwrite the first.
 * That costs one series per alert, which an alert rate of thousands per day keeps affordable.
 * Numeric `data` entries (powerW, durationS, wastedWh, wastedCo2G) become fields; others are left
 * out, since they are not figures. Newlines in the message become spaces (line protocol has none).
 */
export function alertPoint(event: AlertRecord): HistoryPoint {
  const tags = scopeTags(event.scope)
  tags.kind = event.kind
  tags.state = event.state
  tags.severity = event.severity
  tags.id = event.id
  const fields: Record<string, number | string> = {
    seq: event.seq,
    since: event.since,
    message: event.message.replace(NEWLINES, ' '),
  }
  for (const key in event.data) {
    const value = event.data[key]
    if (typeof value === 'number' && !(key in fields)) fields[key] = value
  }
  return { measurement: ALERT_MEASUREMENT, tags, fields, timeMs: event.at }
}
