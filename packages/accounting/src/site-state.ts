// Per-site state of the engine: the bucket ring, the calendar, carbon versions, closing and
// revision bookkeeping, idle spans and month demand peaks, plus the scope index of the site.

import type { SiteInfo } from '@plantwatt/plant'
import { SiteBuckets } from './bucket-store.ts'
import { type BucketStep, LocalCalendar } from './calendar.ts'
import type { CarbonVersion } from './carbon.ts'
import type { ColdColumn } from './cold-minutes.ts'
import { RevisionGate } from './revision-gate.ts'
import type { Span } from './spread.ts'
import { ClosedMinuteChanges } from './today-sums.ts'

export type ScopeKind = 'equipment' | 'line' | 'aggregate'

export interface ScopeRef {
  scope: string
  site: SiteState
  kind: ScopeKind
  /** Equipment index (equipment), aggregate index (area, site); unused for lines. */
  index: number
  /** Equipment indexes of a line. */
  equipment: Int32Array
  /** Position in the site's scope list (month peaks). */
  position: number
}

export class SiteState {
  readonly calendar: LocalCalendar
  readonly store: SiteBuckets
  readonly refs: ScopeRef[] = []
  /** Per equipment: the aggregate rows it adds to (its area and the site). */
  readonly equipmentAggregates: number[][] = []
  /** Per equipment: idle spans, sorted by start (§7 idle, set by the caller). */
  readonly spans: (Span[] | undefined)[]
  readonly hasGridMeters: boolean
  readonly retentionS: number
  /** The range of this site's PV and grid meters' power, ±W (accounting.ts meterLimitW). */
  readonly meterLimitW: number
  carbon: CarbonVersion[]
  /** Site clock (§7), epoch seconds. */
  clock: number | undefined = undefined
  /** Minute of the earliest accepted reading. */
  firstMinute = Number.POSITIVE_INFINITY
  /** Last minute whose buckets were emitted as closed. */
  emittedThrough = Number.NEGATIVE_INFINITY
  /** Emitted minutes changed since (by later readings, idle spans, carbon inputs). */
  dirty = new Set<number>()
  /** Counts changes to emitted minutes by quarter hour, so that sums cached over them know they are stale. */
  readonly closedChanges: ClosedMinuteChanges
  /**
   * Latest revision per step and bucket start minute, one counter per bucket of the site: each
   * revision sent (for the scopes that moved, revision-gate.ts) takes the next number.
   */
  revisions: Record<BucketStep, Map<number, number>> = {
    '1m': new Map(),
    '15m': new Map(),
    '1h': new Map(),
    '1d': new Map(),
  }
  /** Changes to minutes already sent and the buckets they leave unsent (revision-gate.ts). */
  readonly gate = new RevisionGate()
  /** Per equipment: the positions in `refs` of the scopes holding it (built when first needed). */
  private holders: number[][] | undefined
  /** Minutes older than the ring held to take late readings (cold-minutes.ts), by minute. */
  readonly cold = new Map<number, ColdColumn>()
  /** Cold minutes changed since their buckets were last revised. */
  readonly coldDirty = new Set<number>()
  /** Cold minutes changed since the last snapshot (their columns go into the next checkpoint). */
  readonly coldChanged = new Set<number>()
  /**
   * Changes to ring minutes of buckets whose first minute left the ring (cold-revisions.ts
   * noteStraddled), until the next take revises them; not in checkpoints: the processor takes
   * before every snapshot, so a snapshot never finds any here.
   */
  readonly straddled: { step: BucketStep; start: number; position: number; delta: Float64Array; peakW: number }[] = []
  /** Local month (year × 12 + month) of monthPeakWh. */
  monthKey = -1
  /** Per scope: the highest closed 15-minute energy of the month, Wh. */
  monthPeakWh: Float64Array

  constructor(
    readonly info: SiteInfo,
    historyMinutes: number,
    retentionS: number | undefined,
    meterLimitW: number,
  ) {
    this.meterLimitW = meterLimitW
    this.calendar = new LocalCalendar(info.spec.timezone)
    this.hasGridMeters = (info.spec.meters?.grid?.length ?? 0) > 0
    this.retentionS = retentionS ?? Math.max(300, 3 * info.latenessS)
    this.carbon = [{ fromMinute: Number.NEGATIVE_INFINITY, carbon: info.spec.carbon }]
    const aggregateOf = new Map<string, number>()
    for (const node of info.scopes) {
      if (node.level === 'site' || node.level === 'area') aggregateOf.set(node.scope, aggregateOf.size)
    }
    this.store = new SiteBuckets(historyMinutes, info.equipment.length, aggregateOf.size)
    this.closedChanges = new ClosedMinuteChanges(historyMinutes)
    this.spans = new Array(info.equipment.length).fill(undefined)
    for (const eq of info.equipment) {
      this.equipmentAggregates[eq.index] = eq.ancestors
        .filter((a) => aggregateOf.has(a.scope))
        .map((a) => aggregateOf.get(a.scope)!)
    }
    for (const node of info.scopes) {
      const kind: ScopeKind = node.level === 'equipment' ? 'equipment' : node.level === 'line' ? 'line' : 'aggregate'
      const index = node.level === 'equipment' ? (node.equipment[0]?.index ?? 0) : (aggregateOf.get(node.scope) ?? -1)
      this.refs.push({
        scope: node.scope,
        site: this,
        kind,
        index,
        equipment: Int32Array.from(node.equipment, (e) => e.index),
        position: this.refs.length,
      })
    }
    this.monthPeakWh = new Float64Array(this.refs.length)
  }

  /** Positions in `refs` of the scopes holding equipment `eq` (itself, its line, area and site). */
  scopesOf(eq: number): number[] {
    if (this.holders === undefined) {
      const holders: number[][] = this.info.equipment.map(() => [])
      for (const ref of this.refs) for (const e of ref.equipment) holders[e]!.push(ref.position)
      this.holders = holders
    }
    return this.holders[eq]!
  }

  /** Last minute whose end the site clock has passed by latenessS (§7 closing). */
  closedThrough(): number {
    if (this.clock === undefined) return Number.NEGATIVE_INFINITY
    return Math.floor((this.clock - this.info.latenessS) / 60) - 1
  }
}
