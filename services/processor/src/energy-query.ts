// GET /api/v1/energy (CONTRACT.md §6), asked by the gateway over the bus: closed buckets from the
// embedded history store, any range and step within retention; the buckets accounting still holds
// in its 1-minute history (the last 25 h, the open ones with what has arrived so far) over them,
// since they are the newest figures. At most 100,000 buckets: more answers which coarser step to ask.

import type { Accounting, BucketRow } from '@plantwatt/accounting'
import type { BucketStep } from '@plantwatt/contract'
import { BUCKET_STEPS } from '@plantwatt/contract'
import type { BucketRecord } from '@plantwatt/history-store'
import { type HistoryStoreSink, MAX_BUCKETS_PER_ANSWER } from './history-sink.ts'

/** A range holding more than 100,000 buckets: the gateway answers 400 naming `coarserStep`. */
export interface TooManyBuckets {
  tooMany: true
  limit: number
  /** The next coarser step, null for `1d` (ask a shorter range). */
  coarserStep: BucketStep | null
}

export type EnergyAnswer = BucketRow[] | TooManyBuckets

export function isTooMany(answer: unknown): answer is TooManyBuckets {
  return typeof answer === 'object' && answer !== null && (answer as TooManyBuckets).tooMany === true
}

/** §5/§6 figures of a stored bucket, without its revision (the answer's rows carry none). */
function rowOf(record: BucketRecord): BucketRow {
  const { revision: _revision, ...row } = record
  return row
}

function tooMany(step: BucketStep): TooManyBuckets {
  const coarser = BUCKET_STEPS[BUCKET_STEPS.indexOf(step) + 1] ?? null
  return { tooMany: true, limit: MAX_BUCKETS_PER_ANSWER, coarserStep: coarser }
}

export async function energyAnswer(
  accounting: Accounting,
  sink: HistoryStoreSink | undefined,
  params: unknown,
  /**
   * Adds to a row accounting still holds the optional figures its bucket events carry (savedWh of
   * tuned scopes): stored rows have them as they were sent, and the answer must be the same
   * whichever of the two a row comes from (§5: exactly the figures last sent).
   */
  completeHeld: (row: BucketRow, scope: string, step: BucketStep) => BucketRow = (row) => row,
): Promise<EnergyAnswer> {
  const { scope, step, fromMs, toMs } = (params ?? {}) as Record<string, unknown>
  if (typeof scope !== 'string' || !BUCKET_STEPS.includes(step as BucketStep)) throw new Error('bad energy query')
  if (typeof fromMs !== 'number' || typeof toMs !== 'number') throw new Error('bad energy query')
  // Read before the store's await: the answer is the state of one moment, not of two.
  const held = accounting
    // §5 v1.1: closed buckets as last sent (a change under the revision threshold may wait).
    .history(scope, step as BucketStep, fromMs, toMs, { asSent: true })
    .map((row) => completeHeld(row, scope, step as BucketStep))
  if (!sink) return held.length > MAX_BUCKETS_PER_ANSWER ? tooMany(step as BucketStep) : held
  const stored = await sink.range(scope, step as BucketStep, fromMs, toMs, MAX_BUCKETS_PER_ANSWER + 1)
  if (stored.length > MAX_BUCKETS_PER_ANSWER) return tooMany(step as BucketStep)
  if (held.length === 0) return stored.map(rowOf)
  // Both are ordered by t; accounting's rows replace the stored ones from its first on.
  const firstHeld = held[0]!.t
  const rows: BucketRow[] = []
  for (const record of stored) {
    if (record.t >= firstHeld) break
    rows.push(rowOf(record))
  }
  for (const row of held) rows.push(row)
  return rows.length > MAX_BUCKETS_PER_ANSWER ? tooMany(step as BucketStep) : rows
}
