export { Accounting } from './accounting.ts'
export type {
  AccountingSnapshot,
  AccountingState,
  ColumnWrite,
  SlicedAccountingSnapshot,
} from './accounting-checkpoint.ts'
export type * from './accounting-types.ts'
export { type BucketStep, LocalCalendar } from './calendar.ts'
export type { ReadingLogCapture, ReadingLogWrite, SeriesLogState } from './reading-log.ts'
export { powerInRange } from './reading-ranges.ts'
export {
  type DemandPeak,
  type PeriodBounds,
  periodBounds,
  previousBounds,
  REPORT_PERIODS,
  type ReportFigures,
  type ReportPeriod,
  reportFigures,
} from './report.ts'
export { SETTLE_AFTER_MS, StalledClocks } from './stalled-clocks.ts'
