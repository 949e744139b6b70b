// The event-time energy engine of the stream processor (CONTRACT.md §2 dedup and range checks,
// §5 `live` and `buckets`, §6 `GET /api/v1/energy`, §7 figures). Pure: readings carry their own
// time, nothing here reads a clock or does I/O. One instance holds every site of a plant.
//
// A facade over parts with one job each, sharing the sites and devices of accounting-core.ts:
//   ingest.ts                readings in: dedup, ranges, spreading into minutes
//   minute-closing.ts        the site clock, closing minutes, sending their buckets
//   bucket-revisions.ts      revising sent buckets (revision-gate.ts)
//   cold-revisions.ts        minutes older than the ring (cold-minutes.ts)
//   scope-figures.ts         a scope's figures over minutes, with carbon (carbon.ts)
//   read-models.ts           live figures (today-sums.ts) and bucket history
//   idle-energy.ts           idle spans and energy between two times
//   accounting-checkpoint.ts saving and restoring the state

import type { Reading, SiteCarbon } from '@plantwatt/contract'
import type { DeviceInfo, PlantIndex } from '@plantwatt/plant'
import {
  AccountingCheckpoint,
  type AccountingSnapshot,
  type AccountingState,
  type CheckpointState,
  checkAccountingState,
  type PackedSeries,
  type SlicedAccountingSnapshot,
} from './accounting-checkpoint.ts'
import { AccountingCore } from './accounting-core.ts'
import type {
  AcceptResult,
  AccountingCounters,
  AccountingOptions,
  BucketEvent,
  BucketRow,
  EnergyFigures,
  LiveAccounting,
} from './accounting-types.ts'
import { BucketRevisions } from './bucket-revisions.ts'
import type { BucketStep } from './calendar.ts'
import { replaceCarbon } from './carbon.ts'
import { decodeCheckpoint } from './checkpoint.ts'
import type { ColdPort } from './cold-minutes.ts'
import { ColdRevisions } from './cold-revisions.ts'
import { IdleEnergy } from './idle-energy.ts'
import { Ingest } from './ingest.ts'
import { MinuteClosing } from './minute-closing.ts'
import { ReadModels } from './read-models.ts'
import { ScopeFigures } from './scope-figures.ts'

/** Columns are kept this much longer than maxAgeS (columnFloors). */
const COLUMN_MARGIN_MINUTES = 1440

export class Accounting {
  private readonly core: AccountingCore
  private readonly coldRevisions: ColdRevisions
  private readonly revisions: BucketRevisions
  private readonly closing: MinuteClosing
  private readonly ingest: Ingest
  private readonly idle: IdleEnergy
  private readonly reads: ReadModels
  private readonly store: AccountingCheckpoint
  readonly counters: AccountingCounters
  /**
   * Series whose restored readings did not add up to the count their state recorded (a reading
   * log chunk missing from the store); 0 after a sound restore.
   */
  restoreMismatches = 0

  constructor(
    readonly plant: PlantIndex,
    options: AccountingOptions = {},
  ) {
    const core = new AccountingCore(plant, options)
    const figures = new ScopeFigures(core)
    this.core = core
    this.counters = core.counters
    this.coldRevisions = new ColdRevisions(core, figures)
    this.revisions = new BucketRevisions(core, figures, this.coldRevisions)
    this.closing = new MinuteClosing(core, figures, this.revisions, this.coldRevisions)
    this.ingest = new Ingest(core, this.closing, this.coldRevisions)
    this.idle = new IdleEnergy(core, figures, this.ingest)
    this.reads = new ReadModels(core, figures)
    this.store = new AccountingCheckpoint(core, this.coldRevisions)
  }

  /**
   * The processor's state store and history store, for minutes older than the ring
   * (cold-minutes.ts); without it their pieces are counted `beyondHistory`.
   */
  get cold(): ColdPort | undefined {
    return this.core.cold
  }

  set cold(port: ColdPort | undefined) {
    this.core.cold = port
  }

  /** The site clock (§7), epoch seconds; undefined before the site's first accepted reading. */
  siteClock(siteId: string): number | undefined {
    return this.core.sites.get(siteId)?.clock
  }

  /** Takes one decoded reading of a device, in arrival order (ingest.ts). */
  accept(device: DeviceInfo, reading: Reading): AcceptResult {
    return this.ingest.accept(device, reading)
  }

  /** The names of a device's other measurements (§2 process variables) held for ordering and dedup. */
  otherMeasurements(deviceId: string): string[] {
    return this.ingest.otherMeasurements(deviceId)
  }

  /** Drops a device's series of one other measurement (ingest.ts); false when there was none. */
  forgetMeasurement(deviceId: string, name: string): boolean {
    return this.ingest.forgetMeasurement(deviceId, name)
  }

  /**
   * Buckets of CONTRACT.md §5 that closed or changed since the last call (minute-closing.ts).
   * `settle`: sites whose clock stands still (stalled-clocks.ts): their held revisions go out now.
   */
  takeBucketEvents(settle?: ReadonlySet<string>): BucketEvent[] {
    return this.closing.takeBucketEvents(settle)
  }

  /** The cold revisions held by the committed checkpoint of snapshot `generation` (cold-revisions.ts). */
  coldCommitted(generation: number): BucketEvent[] {
    return this.coldRevisions.coldCommitted(generation)
  }

  /** After a restore: the cold revisions of the restored outbox, to send again (cold-revisions.ts). */
  coldRestored(): BucketEvent[] {
    return this.coldRevisions.coldRestored()
  }

  /** Sends a bucket again above the history store's revision (bucket-revisions.ts). */
  reviseAbove(scope: string, step: BucketStep, tMs: number, storedRevision: number): boolean {
    return this.revisions.reviseAbove(scope, step, tMs, storedRevision)
  }

  /** Whether a revision waits for the next takeBucketEvents() (bucket-revisions.ts). */
  hasPendingRevisions(): boolean {
    return this.revisions.hasPendingRevisions()
  }

  /** Buckets of `step` with fromMs ≤ t < toMs held in the 1-minute history, exact or `asSent` (§6, read-models.ts). */
  history(...args: Parameters<ReadModels['history']>): BucketRow[] {
    return this.reads.history(...args)
  }

  /** What today's sums keep and cost (read-models.ts). */
  todayStats(): { scopes: number; bytes: number; siteBytes: number; minutesRead: number } {
    return this.reads.todayStats()
  }

  /** Live accounting figures of a scope (§5 `live` minus powerW and idle, read-models.ts). */
  live(scope: string, powerW?: number): LiveAccounting | undefined {
    return this.reads.live(scope, powerW)
  }

  /** Opens, moves the end of, or closes an idle span of an equipment (idle-energy.ts). */
  setIdleSpan(equipmentScope: string, startS: number, endS: number | undefined): void {
    this.idle.setIdleSpan(equipmentScope, startS, endS)
  }

  /** Energy an equipment drew within [fromS, toS] and its CO2 (idle-energy.ts). */
  energyBetween(equipmentScope: string, fromS: number, toS: number): EnergyFigures {
    return this.idle.energyBetween(equipmentScope, fromS, toS)
  }

  /**
   * Replaces a site's carbon figures (§6 PUT /api/v1/sites/{site}/carbon) for the minutes after
   * the site clock's; buckets up to the clock's minute keep the figures they had.
   */
  setCarbon(siteId: string, carbon: SiteCarbon): void {
    const site = this.core.sites.get(siteId)
    if (site === undefined) throw new RangeError(`unknown site ${siteId}`)
    replaceCarbon(site.carbon, site.clock, carbon)
  }

  /**
   * Per site, the first minute whose column the state store keeps (CONTRACT.md §7: a reading may
   * revise buckets up to maxAgeS behind the site clock): maxAgeS or the ring, whichever reaches
   * further back, and a day's margin. Sites without a reading yet keep everything.
   */
  columnFloors(marginMinutes = COLUMN_MARGIN_MINUTES): Map<string, number> {
    const floors = new Map<string, number>()
    for (const [id, site] of this.core.sites) {
      if (site.clock === undefined) continue
      const maxAge = Math.floor((site.clock - site.info.maxAgeS) / 60)
      floors.set(id, Math.min(maxAge, site.store.oldest()) - marginMinutes)
    }
    return floors
  }

  /** Bytes of the 1-minute bucket history of every site. */
  historyBytes(): number {
    let bytes = 0
    for (const site of this.core.sites.values()) bytes += site.store.bytes()
    return bytes
  }

  /** The whole state as one Buffer (checkpoint.ts); restore() with the same plant carries on exactly. */
  checkpoint(): Buffer {
    return this.store.checkpoint()
  }

  /** The incremental checkpoint (issue 13, accounting-checkpoint.ts); restoreFrom() carries on exactly. */
  snapshot(full = false): AccountingSnapshot {
    return this.store.snapshot(full)
  }

  /** snapshot() with the reading log's chunk taken over later turns (accounting-checkpoint.ts). */
  snapshotSliced(full = false): SlicedAccountingSnapshot {
    return this.store.snapshotSliced(full)
  }

  /** Every device's retained readings packed (states before the reading log; tests). */
  packSeries(): PackedSeries {
    return this.store.packSeries()
  }

  /**
   * A new engine for the same plant model from a snapshot()'s state and the columns persisted with
   * it and before it: `column(site, minute)` gives a minute's bytes, undefined for none (zeros);
   * `readings`, the reading log's chunks held, by generation in ascending order; `outputColumn`,
   * a minute's output column (snapshot().outputColumns).
   */
  static restoreFrom(
    plant: PlantIndex,
    state: AccountingState,
    column: (site: string, minute: number) => Uint8Array | undefined,
    options: AccountingOptions = {},
    readings: () => Iterable<[number, Uint8Array]> = () => [],
    outputColumn?: (site: string, minute: number) => Uint8Array | undefined,
  ): Accounting {
    checkAccountingState(state)
    const engine = new Accounting(plant, options)
    engine.restoreMismatches = engine.store.restoreFrom(plant, state, column, readings, outputColumn)
    return engine
  }

  /** A new engine for the same plant model from a checkpoint(). */
  static restore(plant: PlantIndex, checkpoint: Uint8Array, options: AccountingOptions = {}): Accounting {
    const state = decodeCheckpoint<CheckpointState>(checkpoint)
    const engine = new Accounting(plant, options)
    engine.store.restore(plant, state)
    return engine
  }
}
