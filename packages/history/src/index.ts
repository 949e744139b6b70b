export { DEAD_LETTER_FILE, DEAD_LETTER_OLD_FILE, type DeadLetterRecord } from './dead-letter.ts'
export type { LineSender } from './influx-sender.ts'
export { encodeLine, escapeKey, escapeMeasurement, quoteString } from './line-protocol.ts'
export { MemoryHistoryWriter } from './memory-writer.ts'
export { HistoryOptionsError, type HistoryWriterOptions } from './options.ts'
export { type HistoryPoint, REFUSAL_REASONS, type RefusalReason } from './point.ts'
export {
  ALERT_MEASUREMENT,
  type AlertRecord,
  alertPoint,
  BUCKET_MEASUREMENT,
  type BucketRecord,
  type BucketStepName,
  bucketPoint,
  scopeTags,
} from './points.ts'
export type { SendOutcome } from './retry-policy.ts'
export type { HistorySink, HistoryStats } from './sink.ts'
export { HistoryWriter } from './writer.ts'
