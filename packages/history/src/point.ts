/**
 * The point model plantwatt owns. It is deliberately smaller than InfluxDB's: tags are strings,
 * fields are finite numbers (or, for an alert's id-free text, strings), time is epoch ms. Owning the
 * model means that a NaN from a bug upstream is refused and counted here instead of throwing inside
 * `Point.floatField` (client 1.35 throws on NaN) on the processor's hot path.
 */
export interface HistoryPoint {
  readonly measurement: string
  /** Identity of the series. Keys in any order; the encoder writes them sorted (InfluxDB's canonical order). */
  readonly tags: Readonly<Record<string, string>>
  /** Numbers are written as floats (never `i`), so a field never changes type between points. */
  readonly fields: Readonly<Record<string, number | string>>
  /** Epoch milliseconds; written with `precision=ms`. */
  readonly timeMs: number
}

/**
 * Why a point was refused, one catalogue (fastify habit: codes are never reused).
 * - `non_finite`: a field is NaN or ±Infinity (refused whole: half a bucket is worse than none).
 * - `no_fields`: InfluxDB requires at least one field.
 * - `invalid_name`: empty or reserved measurement/key, or a newline anywhere (line protocol cannot carry one).
 * - `invalid_value`: a field that is neither a number nor a string.
 * - `invalid_time`: time is not a finite number in the safe integer range.
 * - `bad_request`, `unprocessable`: the server answered 400 / 422 for this line alone (dead-lettered).
 * - `too_large`: the server answered 413 for this line alone (dead-lettered).
 * - `queue_full`: the disk spill reached `maxDiskBytes` (the stated policy when every bound is full).
 * - `spill_failed`: the disk refused a write (ENOSPC, EIO) and memory was full too.
 */
export const REFUSAL_REASONS = [
  'non_finite',
  'no_fields',
  'invalid_name',
  'invalid_value',
  'invalid_time',
  'bad_request',
  'unprocessable',
  'too_large',
  'queue_full',
  'spill_failed',
] as const
export type RefusalReason = (typeof REFUSAL_REASONS)[number]

export function emptyRefusals(): Record<RefusalReason, number> {
  const counts = {} as Record<RefusalReason, number>
  for (const reason of REFUSAL_REASONS) counts[reason] = 0
  return counts
}
