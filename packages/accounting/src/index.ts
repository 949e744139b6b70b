export {
  type AcceptResult,
  Accounting,
  type AccountingCounters,
  type AccountingOptions,
  type AccountingSnapshot,
  type AccountingState,
  type BucketEvent,
  type BucketRow,
  type ColumnWrite,
  type EnergyFigures,
  type LiveAccounting,
  powerInRange,
} from './accounting.ts'
export { type BucketStep, LocalCalendar } from './calendar.ts'
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
