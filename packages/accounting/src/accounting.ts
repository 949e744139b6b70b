// The event-time energy engine of the stream processor (CONTRACT.md §2 dedup and range checks,
// §5 `live` and `buckets`, §6 `GET /api/v1/energy`, §7 figures). Pure: readings carry their own
// time, nothing here reads a clock or does I/O. One instance holds every site of a plant.

import type { Reading, SiteCarbon } from '@plantwatt/contract'
import type { DeviceInfo, PlantIndex } from '@plantwatt/plant'
import { DEFAULT_HISTORY_MINUTES, PEAK_WATTS, type SiteBuckets } from './bucket-store.ts'
import { type BucketStep, STEPS } from './calendar.ts'
import { carbonAt, gridIntensity, type MinuteFactors, marketIntensity, minuteFactors } from './carbon.ts'
import { decodeCheckpoint, encodeCheckpoint } from './checkpoint.ts'
import { ColdColumn, type ColdPort, type StoredFigures } from './cold-minutes.ts'
import { forecastKW, intervalKW } from './demand.ts'
import {
  counterIncrement,
  coverageNow,
  DEFAULT_MAX_POWER_GAP_S,
  DeviceEnergy,
  type DeviceSink,
  EnergyContext,
} from './device-energy.ts'
import {
  type OutputColumnWrite,
  OutputMinutes,
  type OutputMinutesHead,
  type OutputMinutesState,
  restoreOutputs,
  snapshotOutputs,
} from './output-minutes.ts'
import { type LoggedSeries, ReadingLog, type ReadingLogWrite, type SeriesLogState } from './reading-log.ts'
import {
  anyUnsent,
  asSent,
  type BucketGate,
  CO2,
  CO2_MARKET,
  ENERGY,
  FIGURE_COUNT,
  FINAL_AFTER_LATENESS,
  IDLE,
  IDLE_CO2,
  type MinuteChange,
  MinuteChange as MinuteChangeClass,
  material,
  OUTPUT,
  PEAK,
  PV,
  type SavedGate,
} from './revision-gate.ts'
import { ReadingSeries, type SeriesState } from './series.ts'
import type { ScopeRef } from './site-state.ts'
import { SiteState } from './site-state.ts'
import { MinuteScratch, type Span, spreadPart } from './spread.ts'
import { type TodayFigures, TodaySums } from './today-sums.ts'

export interface AccountingOptions {
  /**
   * Seconds of readings kept per device and measurement behind its latest one, so that late
   * readings re-split their interval exactly. Default max(300, 3 × latenessS) of the site: NB-IoT
   * power-saving batches arrive in order per device; what comes late within one device are
   * retransmissions and reordered messages, a batch interval or two behind.
   */
  retentionS?: number
  /**
   * Length of the in-memory 1-minute history ring (default 1516: 25 h 16 min, see bucket-store.ts).
   * Older minutes, up to maxAgeS, are the processor's state store's (snapshot() columns,
   * cold-minutes.ts): late readings still revise them when a ColdPort is set (`cold`).
   */
  historyMinutes?: number
  /** Longest gap between power readings that the trapezoid rule bridges (default 900 s, §7). */
  maxPowerGapS?: number
  /** Most readings kept per device and measurement, whatever their times (default 65,536). */
  maxRetained?: number
}

export type AcceptResult = 'accepted' | 'duplicate' | 'too_old' | 'out_of_range'

/** A `bucket` frame of CONTRACT.md §5 without `type` and `sub`; `t` in ms. */
export interface BucketEvent {
  scope: string
  step: BucketStep
  t: number
  energyWh: number
  co2G: number
  co2MarketG: number
  idleWh: number
  peakW: number
  revision: number
  /** PV energy counted as used by the scope: its energy × the minute's PV share (§5 optional, §7). */
  pvWh?: number
  /** CO2 of the idle energy: idle energy × the minute's location-based factor (§5 optional). */
  idleCo2G?: number
  /** Units produced: increments of the equipment's `output` counters within (§5 optional, §2); absent when 0. */
  outputUnits?: number
  /** Tuning savings (CONTRACT.md §5 optional fields), added by the processor's tuning loop. */
  savedWh?: number
  savedCo2G?: number
}

/** One row of `GET /api/v1/energy` (§6); `t` in ms. */
export interface BucketRow {
  t: number
  energyWh: number
  co2G: number
  co2MarketG: number
  idleWh: number
  peakW: number
  /** The §5 optional figures, as the bucket events carry them (see BucketEvent). */
  pvWh?: number
  idleCo2G?: number
  outputUnits?: number
  /** Tuning savings, where the bucket events carried them (§5 optional fields). */
  savedWh?: number
  savedCo2G?: number
}

/** The accounting figures of a `live` frame (§5); the caller adds powerW and idle. */
export interface LiveAccounting {
  scope: string
  /** The site clock in ms, null before the site's first reading. */
  at: number | null
  energyTodayWh: number
  co2TodayG: number
  co2MarketTodayG: number
  /** Grid intensity in force at the site clock. */
  gridGPerKWh: number
  /** Today's: the share of the scope's energy today that PV covered, minute by minute. */
  pvShare: number
  demand: { intervalStart: number; kW: number; forecastKW: number; monthPeakKW: number } | null
}

export interface EnergyFigures {
  energyWh: number
  co2G: number
  co2MarketG: number
}

export interface AccountingCounters {
  accepted: number
  duplicate: number
  too_old: number
  out_of_range: number
  /** Accepted readings older than their device's retained readings: see accept(). */
  approximated: number
  /**
   * Minute pieces that could not be placed: older than the ring and either older than maxAgeS or
   * without the state store's columns (no ColdPort). Their energy is lost; the processor logs it.
   */
  beyondHistory: number
  /** Minute pieces placed in minutes older than the ring (cold-minutes.ts). */
  coldPlaced: number
}

/** CONTRACT.md §2: a power below −1 % or above 10 × the equipment's ratedPowerW is out of range. */
export function powerInRange(ratedPowerW: number, watts: number): boolean {
  return watts >= -0.01 * ratedPowerW && watts <= 10 * ratedPowerW
}

/** Columns are kept this much longer than maxAgeS (columnFloors). */
const COLUMN_MARGIN_MINUTES = 1440

/** The floor of a site meter's range (issue 12 finding 13): a site without equipment still meters. */
const MIN_METER_LIMIT_W = 1_000_000

/**
 * Range of a site meter's power (issue 12 finding 13, docs/data-limits.md): a PV or grid meter
 * reads at most 10 × the site's whole rated load (the sum of its equipment's ratedPowerW, at least
 * 1 MW) either way — PV generated, grid imported or exported. A counter step implying more is out
 * of range too.
 */
export function meterLimitW(site: { equipment: readonly { spec: { ratedPowerW: number } }[] }): number {
  let rated = 0
  for (const equipment of site.equipment) rated += equipment.spec.ratedPowerW
  return Math.max(MIN_METER_LIMIT_W, 10 * rated)
}

function meterPowerInRange(limitW: number, watts: number): boolean {
  return watts >= -limitW && watts <= limitW
}

interface Figures {
  energy: number
  idle: number
  /** Location-based CO2 of the idle energy. */
  idleCo2: number
  co2: number
  co2Market: number
  pv: number
  peak: number
  /** Milli-units produced (output counters), and whether the scope has any equipment counting. */
  output: number
  counts: boolean
}

/**
 * A bucket's figures as sent (§5) and answered (§6). `outputUnits` is present where units were
 * counted: decided by the figures alone, so the same readings give the same fields in any arrival
 * order (an equipment's first reading adds no units).
 */
function bucketRow(t: number, f: Figures): BucketRow {
  const row: BucketRow = {
    t,
    energyWh: f.energy,
    co2G: f.co2,
    co2MarketG: f.co2Market,
    idleWh: f.idle,
    peakW: f.peak,
    pvWh: f.pv,
    idleCo2G: f.idleCo2,
  }
  if (f.output !== 0) row.outputUnits = f.output
  return row
}

/** A site's closing and revision bookkeeping, the same in both checkpoint formats. */
interface SavedSite {
  clock: number | undefined
  firstMinute: number
  emittedThrough: number
  dirty: number[]
  revisions: Record<string, [number, number][]>
  carbon: { fromMinute: number; carbon: SiteCarbon | undefined }[]
  monthKey: number
  monthPeakWh: Float64Array
  spans: [number, [number, number][]][]
  /** Changes to sent minutes not yet taken, buckets with unsent differences (revision-gate.ts); absent in older states. */
  gate?: SavedGate
}

function saveSite(site: SiteState): SavedSite {
  return {
    clock: site.clock,
    firstMinute: site.firstMinute,
    emittedThrough: site.emittedThrough,
    dirty: [...site.dirty],
    revisions: Object.fromEntries(STEPS.map((s) => [s, [...site.revisions[s]]])),
    carbon: site.carbon.map((v) => ({ ...v })),
    monthKey: site.monthKey,
    monthPeakWh: site.monthPeakWh.slice(),
    spans: site.spans.flatMap((spans, eq) =>
      spans && spans.length > 0 ? [[eq, spans.map((s) => [s.start, s.end] as [number, number])]] : [],
    ) as [number, [number, number][]][],
    gate: site.gate.save(),
  }
}

function applySavedSite(site: SiteState, saved: SavedSite): void {
  site.clock = saved.clock
  site.firstMinute = saved.firstMinute
  site.emittedThrough = saved.emittedThrough
  site.dirty = new Set(saved.dirty)
  for (const step of STEPS) site.revisions[step] = new Map(saved.revisions[step])
  site.carbon = saved.carbon
  site.monthKey = saved.monthKey
  site.monthPeakWh.set(saved.monthPeakWh)
  for (const [eq, spans] of saved.spans) site.spans[eq] = spans.map(([start, end]): Span => ({ start, end }))
  site.gate.changes.clear()
  for (const [minute, change] of saved.gate?.changes ?? [])
    site.gate.changes.set(minute, MinuteChangeClass.from(change))
  // The unsent differences were not saved: those buckets go out whole, exact, above the revisions sent.
  for (const [step, start, finalDone] of saved.gate?.buckets ?? []) {
    const end = site.calendar.bucketEnd(step, start)
    const gate = site.gate.bucket(step, start, end, finalAt(site, end), site.clock ?? Number.NEGATIVE_INFINITY)
    gate.whole = true
    gate.finalDone = finalDone
  }
}

/** Site clock (s) at which a bucket ending at minute `end` gets its last revision (§5). */
function finalAt(site: SiteState, end: number): number {
  return end * 60 + FINAL_AFTER_LATENESS * site.info.latenessS
}

interface CheckpointState {
  counters: AccountingCounters
  sites: (SavedSite & {
    id: string
    store: Record<string, Float64Array | Int32Array | Uint16Array | number>
  })[]
  devices: [string, [string, SeriesState][]][]
  /** Units produced per minute, per site that has output counters (output-minutes.ts). */
  output?: [string, OutputMinutesState][]
}

/** The incremental checkpoint's state (snapshot()): everything but the ring's columns. */
export interface AccountingState {
  format: 'plantwatt-accounting-state'
  version: 1
  counters: AccountingCounters
  sites: ({
    id: string
    /** The ring's shape, checked at restore: the plant model and history length must be the same. */
    length: number
    nEq: number
    nAgg: number
    newest: number
  } & SavedSite)[]
  /**
   * The retained readings: since the reading log, per series its state beside the log's chunks
   * (reading-log.ts); in states written before it, all of them packed.
   */
  devices: SeriesLogState | PackedSeries
  /** Cold revisions waiting for this checkpoint's commit (cold-minutes.ts), sent after a restore. */
  outbox: BucketEvent[]
  /**
   * Units produced per minute, per site that has output counters (output-minutes.ts), whole: in
   * states written before `outputHeads`.
   */
  output?: [string, OutputMinutesState][]
  /** Units produced per minute: per site the ring's head; the minutes are columns (outputColumns). */
  outputHeads?: [string, OutputMinutesHead][]
}

/**
 * Every device's retained readings in a few arrays instead of one small object and two typed
 * arrays per series (80,000 of them at 40,000 devices, which node:v8 serialises one by one):
 * series k is `device[k]`'s `name[k]`, `len[k]` readings, times then values (when flags bit 0)
 * next in `data`; flags bit 1 is `evicted`; `ever` holds firstEver and lastEver.
 */
export interface PackedSeries {
  device: string[]
  name: string[]
  len: Uint32Array
  flags: Uint8Array
  ever: Float64Array
  data: Float64Array
}

/** A minute's column to persist (bucket-store.ts column()). */
export interface ColumnWrite {
  site: string
  minute: number
  bytes: Uint8Array
}

export interface AccountingSnapshot {
  state: AccountingState
  /** Columns changed since the previous snapshot (all held ones when `full`), cold minutes' too. */
  columns: ColumnWrite[]
  /** To pass to coldCommitted() once this snapshot is committed. */
  generation: number
  /** The reading log's chunk of what was inserted since the previous snapshot, and what to prune. */
  readings: ReadingLogWrite
  /** Output minutes' columns changed since the previous snapshot (all held ones when `full`). */
  outputColumns: OutputColumnWrite[]
}

const STORE_ARRAYS = ['slotMinute', 'eqEnergy', 'eqIdle', 'eqPeak', 'aggEnergy', 'aggIdle', 'aggPeak', 'pv', 'grid']

export class Accounting {
  private readonly sites = new Map<string, SiteState>()
  /** Per site id, units produced per minute; only for sites whose equipment report `output`. */
  private readonly outputs = new Map<string, OutputMinutes>()
  private readonly scopes = new Map<string, ScopeRef>()
  private readonly devices = new Map<string, DeviceEnergy>()
  private readonly scratch = new MinuteScratch()
  /** Buckets sent ahead of a jump of a site clock (advanceClock), handed out by the next take. */
  private readonly sentAhead: BucketEvent[] = []
  private readonly context = new EnergyContext(this.scratch)
  private readonly maxRetained: number
  /** The retained readings' log for the checkpoint (snapshot()). */
  private readonly readingLog = new ReadingLog()
  private readonly factors: MinuteFactors = { location: 0, market: 0, pvShare: 0 }
  private factorBuffer = new Float64Array(0)
  /**
   * Per scope asked, today's figures over the minutes already closed, by hour (today-sums.ts):
   * live() adds only the open minutes to them instead of summing the whole day again (a line's
   * day is its equipment × 1,440 minutes, asked for every second); a changed closed minute makes
   * only its hour summed again.
   */
  private readonly today = new TodaySums((ref, from, to, out) => {
    const f = this.figures(ref, from, to, this.minuteFactorsOf(ref.site, from, to), this.todayScratch)
    out.energy += f.energy
    out.co2 += f.co2
    out.co2Market += f.co2Market
    out.pv += f.pv
  })
  private readonly todayScratch: Figures = this.newFigures()
  private readonly todayFigures: TodayFigures = { energy: 0, co2: 0, co2Market: 0, pv: 0 }
  readonly counters: AccountingCounters = {
    accepted: 0,
    duplicate: 0,
    too_old: 0,
    out_of_range: 0,
    approximated: 0,
    beyondHistory: 0,
    coldPlaced: 0,
  }
  /**
   * The processor's state store and history store, for minutes older than the ring
   * (cold-minutes.ts); without it their pieces are counted `beyondHistory`.
   */
  cold: ColdPort | undefined
  /**
   * Series whose restored readings did not add up to the count their state recorded (a reading
   * log chunk missing from the store); 0 after a sound restore.
   */
  restoreMismatches = 0
  /** Snapshot generation: changes are tagged with it, snapshot() moves it on. */
  private generation = 0
  /** Cold revisions waiting for the checkpoint that holds their columns (cold-minutes.ts). */
  private outbox: { event: BucketEvent; generation: number }[] = []
  /**
   * Cold revisions as last computed, by scope, step and start, until the history store surely
   * holds them (`released`: the generation when they were handed over).
   */
  private readonly sentCold = new Map<
    string,
    { event: BucketEvent; released: number | undefined; generation: number }
  >()

  constructor(
    readonly plant: PlantIndex,
    options: AccountingOptions = {},
  ) {
    const history = options.historyMinutes ?? DEFAULT_HISTORY_MINUTES
    if (!Number.isInteger(history) || history < 1441) throw new RangeError('historyMinutes must be an integer ≥ 1441')
    this.context.maxPowerGapS = options.maxPowerGapS ?? DEFAULT_MAX_POWER_GAP_S
    this.maxRetained = options.maxRetained ?? 65_536
    for (const [id, info] of plant.sites) {
      const site = new SiteState(info, history, options.retentionS, meterLimitW(info))
      this.sites.set(id, site)
      for (const ref of site.refs) this.scopes.set(ref.scope, ref)
    }
  }

  /** The site clock (§7), epoch seconds; undefined before the site's first accepted reading. */
  siteClock(siteId: string): number | undefined {
    return this.sites.get(siteId)?.clock
  }

  /**
   * Takes one decoded reading of a device (in arrival order). Readings older than the device's
   * retained window (see AccountingOptions.retentionS) but within maxAgeS are accepted and
   * counted `approximated`: the interval that holds them was already accounted from its two
   * (since evicted) ends, so the device's total is right and only the split of that interval
   * across minutes keeps the even spread; such a reading only raises the minute's peak, and a
   * repeat of it cannot be told from a new one (it changes nothing, so it is never counted twice).
   */
  accept(device: DeviceInfo, reading: Reading): AcceptResult {
    const site = this.sites.get(device.siteId)
    if (site === undefined) throw new RangeError(`unknown site ${device.siteId}`)
    const t = reading.time
    if (site.clock !== undefined && t < site.clock - site.info.maxAgeS) {
      this.counters.too_old++
      return 'too_old'
    }
    const dev = this.deviceOf(device)
    const name = reading.name
    const series = dev.series(name)
    const pos = series.lowerBound(t)
    if (pos < series.len && series.time(pos) === t) {
      this.counters.duplicate++
      return 'duplicate'
    }
    const beyond = pos === 0 && series.evicted
    const equipment = device.role === 'equipment' ? device.equipment : undefined
    // Cumulative counters (§2 `energy`, `output`) count up from zero: a negative value is no
    // reading of one (a reset restarts at zero), whoever reports it.
    if ((name === 'energy' || name === 'output') && reading.value < 0) {
      this.counters.out_of_range++
      return 'out_of_range'
    }
    if (equipment !== undefined) {
      const rated = equipment.spec.ratedPowerW
      if (name === 'power' && !powerInRange(rated, reading.value)) {
        this.counters.out_of_range++
        return 'out_of_range'
      }
      if (name === 'energy' && pos > 0) {
        const dt = t - series.time(pos - 1)
        const implied = (counterIncrement(series.value(pos - 1), reading.value) * 3600) / dt
        if (!powerInRange(rated, implied)) {
          this.counters.out_of_range++
          return 'out_of_range'
        }
      }
    } else {
      const limit = site.meterLimitW
      if (name === 'power' && !meterPowerInRange(limit, reading.value)) {
        this.counters.out_of_range++
        return 'out_of_range'
      }
      if (name === 'energy' && pos > 0) {
        const dt = t - series.time(pos - 1)
        const implied = (counterIncrement(series.value(pos - 1), reading.value) * 3600) / dt
        if (!meterPowerInRange(limit, implied)) {
          this.counters.out_of_range++
          return 'out_of_range'
        }
      }
    }
    this.counters.accepted++
    this.advanceClock(site, t)
    if (beyond) {
      this.counters.approximated++
      if (equipment !== undefined && name === 'power') this.raisePeak(site, equipment.index, t, reading.value)
      return 'accepted'
    }
    if (name === 'output' && equipment !== undefined) {
      series.insert(pos, t, reading.value)
      this.outputInserted(site, equipment.index, series, pos)
      series.evictBefore(series.lastEver - site.retentionS, this.maxRetained)
      return 'accepted'
    }
    const sink = dev.sink
    this.context.spans = sink.kind === 'equipment' ? site.spans[sink.eq] : undefined
    if (name === 'energy') {
      const before = coverageNow(dev)
      series.insert(pos, t, reading.value)
      this.context.energyInserted(dev, pos, before)
    } else if (name === 'power') {
      series.insert(pos, t, reading.value)
      this.context.powerInserted(dev, pos)
      if (equipment !== undefined) this.raisePeak(site, equipment.index, t, reading.value)
    } else {
      series.insert(pos, t, 0)
    }
    this.flush(site, sink)
    series.evictBefore(series.lastEver - site.retentionS, this.maxRetained)
    return 'accepted'
  }

  /** The names of a device's other measurements (§2 process variables) held for ordering and dedup. */
  otherMeasurements(deviceId: string): string[] {
    const dev = this.devices.get(deviceId)
    return dev === undefined ? [] : [...dev.others.keys()]
  }

  /**
   * Drops a device's series of one other measurement (the caller bounds the names a device holds,
   * CONTRACT.md §2). Such series carry no energy, only ordering and dedup: a repeat of a reading
   * of a forgotten name is taken as new. False when there was none (power and energy never go).
   */
  forgetMeasurement(deviceId: string, name: string): boolean {
    return this.devices.get(deviceId)?.others.delete(name) ?? false
  }

  /**
   * Accounts an `output` reading just inserted at `pos` of its series: as a counter (§7 energy
   * counter rules, §2 a decrease is a reset), the interval it splits is taken out and its two
   * halves put in, spread evenly over their time, in whole milli-units.
   */
  private outputInserted(site: SiteState, eq: number, series: ReadingSeries, pos: number): void {
    const out = this.scratch
    const part = (i: number, j: number, sign: number) => {
      const a = series.time(i)
      const b = series.time(j)
      spreadPart(out, a, b, counterIncrement(series.value(i), series.value(j)) * 1000, a, b, sign, undefined)
    }
    const hasPrev = pos > 0
    const hasNext = pos + 1 < series.len
    if (hasPrev && hasNext) part(pos - 1, pos + 1, -1)
    if (hasPrev) part(pos - 1, pos, 1)
    if (hasNext) part(pos, pos + 1, 1)
    let minutes = this.outputs.get(site.info.node.id)
    if (minutes === undefined) {
      minutes = new OutputMinutes(site.store.length, site.store.nAgg)
      this.outputs.set(site.info.node.id, minutes)
    }
    // From its first reading on (which adds nothing yet), the equipment's buckets carry outputUnits.
    minutes.track(eq)
    if (out.empty) return
    const aggs = site.equipmentAggregates[eq]!
    for (let m = out.lo; m <= out.hi; m++) {
      const units = out.energy[m - out.base]!
      if (units === 0) continue
      const slot = site.store.slotOf(m)
      if (slot < 0) {
        this.counters.beyondHistory++
        continue
      }
      minutes.add(m, slot, eq, aggs, units)
      if (m <= site.emittedThrough) {
        site.dirty.add(m)
        site.closedChanges.note(m)
        site.gate.change(m).of(eq).output += units
      }
    }
    out.clear()
  }

  private deviceOf(device: DeviceInfo): DeviceEnergy {
    let dev = this.devices.get(device.deviceId)
    if (dev === undefined) {
      const sink: DeviceSink =
        device.role === 'equipment' && device.equipment
          ? { kind: 'equipment', eq: device.equipment.index }
          : device.role === 'grid'
            ? { kind: 'grid' }
            : { kind: 'pv' }
      dev = new DeviceEnergy(device.deviceId, sink)
      this.devices.set(device.deviceId, dev)
    }
    return dev
  }

  private advanceClock(site: SiteState, t: number): void {
    const minute = Math.floor(t / 60)
    if (minute < site.firstMinute) site.firstMinute = minute
    if (site.clock === undefined || t > site.clock) {
      const newOldest = minute - site.store.length + 1
      if (minute > site.store.newest && this.wouldEvictUnsent(site, newOldest)) {
        // Days of buffered readings can arrive between two takes (a fleet flushing NB-IoT buffers
        // after an outage): what closed by the clock so far is sent now, while the ring holds all
        // of its buckets' minutes. The reading that moves the clock is not placed yet; where it
        // adds to a minute sent here, that minute is revised like any late one.
        this.emitRevisions(site, this.sentAhead, newOldest)
        this.emitClosed(site, this.sentAhead)
        // A single jump past the ring: the minutes it drops are sent as they stand (the reading's
        // own part of them goes the way of any reading older than the ring).
        site.clock = t
        this.emitClosed(site, this.sentAhead, newOldest - 1)
      }
      site.clock = t
      site.store.advanceTo(minute)
    }
  }

  /**
   * Moving the ring's oldest minute to `newOldest` drops a minute that a bucket not sent yet (or
   * to be revised) still needs: a day bucket needs every minute from the start of its local day.
   */
  private wouldEvictUnsent(site: SiteState, newOldest: number): boolean {
    const needs = (minute: number) => Math.max(site.calendar.bucketStart('1d', minute), site.store.oldest()) < newOldest
    const firstUnsent = Math.max(site.emittedThrough + 1, site.firstMinute)
    if (firstUnsent <= site.store.newest && needs(firstUnsent)) return true
    for (const m of site.dirty) if (needs(m)) return true
    // A bucket with unsent differences is sent before its first minute leaves (revision-gate.ts).
    return newOldest > site.store.oldest() && site.gate.holdsBefore(newOldest)
  }

  private raisePeak(site: SiteState, eq: number, t: number, watts: number): void {
    const minute = Math.floor(t / 60)
    const slot = site.store.slotOf(minute)
    if (slot < 0) {
      const cold = this.coldColumn(site, minute)
      if (cold?.buckets.raisePeak(0, eq, site.equipmentAggregates[eq]!, watts)) this.coldTouched(site, cold)
      return
    }
    const before = site.store.eqPeak[slot * site.store.nEq + eq]!
    if (site.store.raisePeak(slot, eq, site.equipmentAggregates[eq]!, watts) && minute <= site.emittedThrough) {
      site.dirty.add(minute)
      site.closedChanges.note(minute)
      const change = site.gate.change(minute).of(eq)
      if (change.peakBefore < 0) change.peakBefore = before
    }
  }

  /** Applies the scratch's net per-minute changes to the sink's buckets. */
  private flush(site: SiteState, sink: DeviceSink): void {
    const out = this.scratch
    if (out.empty) return
    const store = site.store
    const aggs = sink.kind === 'equipment' ? site.equipmentAggregates[sink.eq]! : undefined
    for (let m = out.lo; m <= out.hi; m++) {
      const energy = out.energy[m - out.base]!
      const idle = out.idle[m - out.base]!
      if (energy === 0 && idle === 0) continue
      const slot = store.slotOf(m)
      if (slot < 0) {
        const cold = this.coldColumn(site, m)
        if (cold === undefined) {
          this.counters.beyondHistory++
          continue
        }
        const b = cold.buckets
        if (sink.kind === 'equipment') b.addEquipment(0, sink.eq, aggs!, energy, idle)
        else if (sink.kind === 'pv') b.addPv(0, energy)
        else b.addGrid(0, energy)
        this.coldTouched(site, cold)
        this.counters.coldPlaced++
        continue
      }
      if (sink.kind === 'equipment') store.addEquipment(slot, sink.eq, aggs!, energy, idle)
      else if (sink.kind === 'pv') store.addPv(slot, energy)
      else store.addGrid(slot, energy)
      if (m <= site.emittedThrough) {
        site.dirty.add(m)
        site.closedChanges.note(m)
        const change = site.gate.change(m)
        if (sink.kind === 'equipment') {
          const of = change.of(sink.eq)
          of.energy += energy
          of.idle += idle
        } else if (sink.kind === 'pv') change.pv += energy
        else change.grid += energy
      }
    }
    out.clear()
  }

  // -------------------------------------------------------------------------------------------
  // Reading the buckets

  /** Per-minute carbon factors and PV share of a site for minutes [from, to), in a shared buffer. */
  private minuteFactorsOf(site: SiteState, from: number, to: number): Float64Array {
    const n = Math.max(0, to - from)
    if (this.factorBuffer.length < n * 3) this.factorBuffer = new Float64Array(n * 3)
    const buf = this.factorBuffer
    const store = site.store
    for (let i = 0; i < n; i++) {
      const m = from + i
      const slot = store.slotOf(m)
      if (slot < 0) {
        buf[i * 3] = 0
        buf[i * 3 + 1] = 0
        buf[i * 3 + 2] = 0
        continue
      }
      const carbon = carbonAt(site.carbon, m)
      const f = minuteFactors(
        store.aggEnergy[slot * store.nAgg]!,
        store.pv[slot]!,
        store.grid[slot]!,
        site.hasGridMeters,
        gridIntensity(carbon, site.calendar, m),
        marketIntensity(carbon),
        this.factors,
      )
      buf[i * 3] = f.location
      buf[i * 3 + 1] = f.market
      buf[i * 3 + 2] = f.pvShare
    }
    return buf
  }

  /** A scope's figures over minutes [from, to), with factors from minuteFactorsOf(site, from, to). */
  private figures(ref: ScopeRef, from: number, to: number, factors: Float64Array, out: Figures): Figures {
    const store = ref.site.store
    out.energy = 0
    out.idle = 0
    out.idleCo2 = 0
    out.co2 = 0
    out.co2Market = 0
    out.pv = 0
    out.peak = 0
    out.output = 0
    const output = this.outputs.get(ref.site.info.node.id)
    out.counts = output !== undefined && this.countsOutput(ref, output)
    let seen = false
    for (let m = from; m < to; m++) {
      const slot = store.slotOf(m)
      if (slot < 0) continue
      let energy = 0
      let idle = 0
      let peak = 0
      if (ref.kind === 'equipment') {
        const i = slot * store.nEq + ref.index
        energy = store.eqEnergy[i]!
        idle = store.eqIdle[i]!
        peak = PEAK_WATTS[store.eqPeak[i]!]!
      } else if (ref.kind === 'aggregate') {
        const i = slot * store.nAgg + ref.index
        energy = store.aggEnergy[i]!
        idle = store.aggIdle[i]!
        peak = store.aggPeak[i]!
      } else {
        const base = slot * store.nEq
        const eqs = ref.equipment
        for (let k = 0; k < eqs.length; k++) {
          energy += store.eqEnergy[base + eqs[k]!]!
          idle += store.eqIdle[base + eqs[k]!]!
          peak += PEAK_WATTS[store.eqPeak[base + eqs[k]!]!]!
        }
      }
      const j = (m - from) * 3
      out.energy += energy
      out.idle += idle
      out.idleCo2 += idle * factors[j]!
      out.co2 += energy * factors[j]!
      out.co2Market += energy * factors[j + 1]!
      out.pv += energy * factors[j + 2]!
      if (!seen || peak > out.peak) out.peak = peak
      seen = true
      if (out.counts) {
        out.output +=
          ref.kind === 'equipment'
            ? output!.ofEquipment(m, slot, ref.index)
            : ref.kind === 'aggregate'
              ? output!.ofAggregate(m, slot, ref.index)
              : output!.ofEquipmentList(m, slot, ref.equipment)
      }
    }
    // Stored in mWh; factors are per Wh.
    out.energy /= 1000
    out.idle /= 1000
    out.idleCo2 /= 1000
    out.co2 /= 1000
    out.co2Market /= 1000
    out.pv /= 1000
    out.output /= 1000
    return out
  }

  /** Per site: which scopes (by position) hold equipment that report output, for how many such. */
  private readonly countingScopes = new Map<string, { reporting: number; flags: Uint8Array }>()

  /** Whether the scope holds equipment that report `output` (its buckets carry outputUnits, §5). */
  private countsOutput(ref: ScopeRef, output: OutputMinutes): boolean {
    const site = ref.site
    const id = site.info.node.id
    const reporting = output.reporting()
    let cached = this.countingScopes.get(id)
    if (cached === undefined || cached.reporting !== reporting.length) {
      const flags = new Uint8Array(site.refs.length)
      for (const eq of reporting) {
        for (const ancestor of site.info.equipment[eq]!.ancestors) {
          const position = this.scopes.get(ancestor.scope)?.position
          if (position !== undefined) flags[position] = 1
        }
      }
      cached = { reporting: reporting.length, flags }
      this.countingScopes.set(id, cached)
    }
    return cached.flags[ref.position] === 1
  }

  private newFigures(): Figures {
    return { energy: 0, idle: 0, idleCo2: 0, co2: 0, co2Market: 0, pv: 0, peak: 0, output: 0, counts: false }
  }

  /**
   * Buckets of CONTRACT.md §5 that closed or changed since the last call, for every step and
   * scope: a minute closes once the site clock passed its end by latenessS, a 15m/1h/1d bucket
   * with its last minute. A change to an emitted minute (late reading, idle span, PV or grid
   * reading: a site's carbon factor moves every scope's CO2) re-sends the buckets holding it with
   * the revision increased, for the scopes whose figures moved materially (revision-gate.ts).
   */
  takeBucketEvents(): BucketEvent[] {
    const events: BucketEvent[] = this.sentAhead.splice(0)
    for (const site of this.sites.values()) {
      if (site.clock === undefined) continue
      this.emitRevisions(site, events)
      this.emitClosed(site, events)
      if (site.coldDirty.size > 0) this.emitCold(site)
    }
    return events
  }

  // -------------------------------------------------------------------------------------------
  // Minutes older than the ring (cold-minutes.ts)

  /** The cold column of a minute older than the ring, loaded when first needed; undefined when it cannot be placed. */
  private coldColumn(site: SiteState, minute: number): ColdColumn | undefined {
    const held = site.cold.get(minute)
    if (held !== undefined) return held
    if (this.cold === undefined || site.clock === undefined || minute >= site.store.oldest()) return undefined
    // CONTRACT.md §7: buckets are revised up to maxAgeS behind the site clock, no further.
    if (minute < Math.floor((site.clock - site.info.maxAgeS) / 60)) return undefined
    const column = new ColdColumn(minute, site.store.nEq, site.store.nAgg, this.generation)
    // A minute the ring moved past before a checkpoint wrote it: its newest bytes are still here.
    const bytes = site.store.evicted.get(minute) ?? this.cold.column(site.info.spec.id, minute)
    // None held: a minute before the site's first reading, or one that held nothing: zeros.
    if (bytes !== undefined) {
      column.buckets.loadColumn(0, bytes, site.equipmentAggregates)
      column.buckets.loadColumn(1, bytes, site.equipmentAggregates)
    }
    site.cold.set(minute, column)
    return column
  }

  private coldTouched(site: SiteState, column: ColdColumn): void {
    site.coldDirty.add(column.minute)
    site.coldChanged.add(column.minute)
    column.generation = this.generation
  }

  /** A scope's energy and idle (mWh) and peak (W) in one slot of a cold column. */
  private scopeMinute(ref: ScopeRef, b: SiteBuckets, slot: number, out: Figures): Figures {
    out.energy = 0
    out.idle = 0
    out.peak = 0
    if (ref.kind === 'equipment') {
      const i = slot * b.nEq + ref.index
      out.energy = b.eqEnergy[i]!
      out.idle = b.eqIdle[i]!
      out.peak = PEAK_WATTS[b.eqPeak[i]!]!
    } else if (ref.kind === 'aggregate') {
      const i = slot * b.nAgg + ref.index
      out.energy = b.aggEnergy[i]!
      out.idle = b.aggIdle[i]!
      out.peak = b.aggPeak[i]!
    } else {
      const base = slot * b.nEq
      for (const eq of ref.equipment) {
        out.energy += b.eqEnergy[base + eq]!
        out.idle += b.eqIdle[base + eq]!
        out.peak += PEAK_WATTS[b.eqPeak[base + eq]!]!
      }
    }
    return out
  }

  /** Carbon factors of one slot of a cold column (the site's row is aggregate 0, as in the ring). */
  private coldFactors(site: SiteState, b: SiteBuckets, slot: number, minute: number): [number, number, number] {
    const carbon = carbonAt(site.carbon, minute)
    const f = minuteFactors(
      b.aggEnergy[slot * b.nAgg]!,
      b.pv[slot]!,
      b.grid[slot]!,
      site.hasGridMeters,
      gridIntensity(carbon, site.calendar, minute),
      marketIntensity(carbon),
      this.factors,
    )
    return [f.location, f.market, f.pvShare]
  }

  /** The bucket as last computed here, else as the history store holds it. */
  private lastSent(scope: string, step: BucketStep, start: number): StoredFigures | undefined {
    const key = `${scope} ${step} ${start}`
    return this.sentCold.get(key)?.event ?? this.cold?.bucket(scope, step, start * 60_000)
  }

  /** Revisions of the buckets of every changed cold minute, into the outbox. */
  private emitCold(site: SiteState): void {
    const minutes = [...site.coldDirty].sort((a, b) => a - b)
    site.coldDirty.clear()
    const round = new Map<string, BucketEvent>()
    const now = this.newFigures()
    const old = this.newFigures()
    for (const minute of minutes) {
      const column = site.cold.get(minute)!
      const b = column.buckets
      const [locNow, marketNow, pvShareNow] = this.coldFactors(site, b, 0, minute)
      const [locOld, marketOld, pvShareOld] = this.coldFactors(site, b, 1, minute)
      for (const ref of site.refs) {
        this.scopeMinute(ref, b, 0, now)
        this.scopeMinute(ref, b, 1, old)
        const co2Now = (now.energy * locNow) / 1000
        const co2Old = (old.energy * locOld) / 1000
        const marketGNow = (now.energy * marketNow) / 1000
        const marketGOld = (old.energy * marketOld) / 1000
        // §5's optional figures the reports sum: PV energy used by the scope, CO2 of its idle energy.
        const pvNow = (now.energy * pvShareNow) / 1000
        const pvOld = (old.energy * pvShareOld) / 1000
        const idleCo2Now = (now.idle * locNow) / 1000
        const idleCo2Old = (old.idle * locOld) / 1000
        if (
          now.energy === old.energy &&
          now.idle === old.idle &&
          now.peak === old.peak &&
          co2Now === co2Old &&
          marketGNow === marketGOld &&
          pvNow === pvOld &&
          idleCo2Now === idleCo2Old
        ) {
          continue
        }
        for (const step of STEPS) {
          const start = site.calendar.bucketStart(step, minute)
          const key = `${ref.scope} ${step} ${start}`
          let event = round.get(key)
          const waiting = this.sentCold.get(key)
          if (event === undefined && waiting?.released === undefined && waiting?.generation === this.generation) {
            // Still in the outbox and in no snapshot yet: revised in place, one revision for both.
            event = waiting.event
            round.set(key, event)
          }
          if (event === undefined) {
            const base = this.lastSent(ref.scope, step, start)
            event = {
              scope: ref.scope,
              step,
              t: start * 60_000,
              energyWh: base?.energyWh ?? 0,
              co2G: base?.co2G ?? 0,
              co2MarketG: base?.co2MarketG ?? 0,
              idleWh: base?.idleWh ?? 0,
              peakW: base?.peakW ?? 0,
              revision: base === undefined ? 0 : base.revision + 1,
              pvWh: base?.pvWh ?? 0,
              idleCo2G: base?.idleCo2G ?? 0,
            }
            // Output counts units, not energy: a late energy or power reading leaves it as it was.
            if (base?.outputUnits !== undefined) event.outputUnits = base.outputUnits
            if (base?.savedWh !== undefined) event.savedWh = base.savedWh
            if (base?.savedCo2G !== undefined) event.savedCo2G = base.savedCo2G
            round.set(key, event)
          }
          if (step === '1m') {
            // Exact, from the column.
            event.energyWh = now.energy / 1000
            event.co2G = co2Now
            event.co2MarketG = marketGNow
            event.idleWh = now.idle / 1000
            event.peakW = now.peak
            event.pvWh = pvNow
            event.idleCo2G = idleCo2Now
          } else {
            // The bucket as last sent plus what this minute changed: the other minutes are not read.
            event.energyWh += (now.energy - old.energy) / 1000
            event.co2G += co2Now - co2Old
            event.co2MarketG += marketGNow - marketGOld
            event.idleWh += (now.idle - old.idle) / 1000
            event.peakW = Math.max(event.peakW, now.peak)
            event.pvWh = (event.pvWh ?? 0) + pvNow - pvOld
            event.idleCo2G = (event.idleCo2G ?? 0) + idleCo2Now - idleCo2Old
          }
        }
      }
      // What was just revised is the base of the next change to this minute.
      b.loadColumn(1, b.column(0), site.equipmentAggregates)
    }
    for (const [key, event] of round) {
      if (this.sentCold.get(key)?.event === event) continue
      this.outbox.push({ event, generation: this.generation })
      this.sentCold.set(key, { event, released: undefined, generation: this.generation })
    }
  }

  /**
   * The checkpoint of snapshot `generation` is committed (columns and outbox on disk): returns the
   * cold revisions it held, to send on the bus and to the history store now, and forgets what is
   * surely stored (cold columns the checkpoint holds, revisions a later checkpoint's barrier saw
   * stored).
   */
  coldCommitted(generation: number): BucketEvent[] {
    const released: BucketEvent[] = []
    const kept: typeof this.outbox = []
    for (const entry of this.outbox) {
      if (entry.generation <= generation) released.push(entry.event)
      else kept.push(entry)
    }
    this.outbox = kept
    for (const [key, entry] of this.sentCold) {
      if (entry.released !== undefined && entry.released <= generation) this.sentCold.delete(key)
    }
    for (const event of released) {
      const entry = this.sentCold.get(`${event.scope} ${event.step} ${event.t / 60_000}`)
      if (entry?.event === event) entry.released = this.generation
    }
    for (const site of this.sites.values()) {
      for (const [minute, column] of site.cold) {
        if (column.generation <= generation && !site.coldDirty.has(minute) && !site.coldChanged.has(minute)) {
          site.cold.delete(minute)
        }
      }
    }
    return released
  }

  /** After a restore: the cold revisions of the restored outbox, to send again (the store drops repeats). */
  coldRestored(): BucketEvent[] {
    const events = this.outbox.map((entry) => entry.event)
    this.outbox = []
    for (const event of events) {
      this.sentCold.set(`${event.scope} ${event.step} ${event.t / 60_000}`, {
        event,
        released: this.generation,
        generation: this.generation,
      })
    }
    return events
  }

  /**
   * The history store holds bucket (`scope`, `step`, `tMs`) at `storedRevision` with other figures
   * than the ones just emitted: revisions counted from an older checkpoint are behind the store
   * (a journal replayed after a restore). The bucket is sent again, with its current figures and a
   * revision above the stored one, on the next takeBucketEvents(), so revisions only go up (§5).
   * False when the bucket is no longer in the 1-minute history: the caller re-sends what it has.
   */
  reviseAbove(scope: string, step: BucketStep, tMs: number, storedRevision: number): boolean {
    const ref = this.scopes.get(scope)
    if (ref === undefined || !Number.isSafeInteger(tMs / 60_000)) return false
    const site = ref.site
    const start = tMs / 60_000
    const end = site.calendar.bucketEnd(step, start)
    if (start < site.store.oldest() || end - 1 > site.emittedThrough) return false
    if ((site.revisions[step].get(start) ?? 0) < storedRevision) site.revisions[step].set(start, storedRevision)
    site.gate.bucket(step, start, end, finalAt(site, end), site.clock ?? Number.NEGATIVE_INFINITY).whole = true
    return true
  }

  /**
   * Whether a revision waits for the next takeBucketEvents(): a change to a sent minute not yet
   * looked at, a material difference (also one held for its second of the site clock), a last
   * revision that is due, a bucket to send whole. Differences under the threshold whose last
   * revision is not due yet do not count: the figures sent are within the threshold of the exact ones.
   */
  hasPendingRevisions(): boolean {
    for (const site of this.sites.values()) {
      if (site.dirty.size > 0) return true
      if (site.clock !== undefined && site.gate.pending(site.clock)) return true
    }
    return false
  }

  /**
   * Revisions of buckets already sent (CONTRACT.md §5 v1.1, revision-gate.ts): the changes logged
   * for sent minutes become each scope's unsent difference in the buckets holding them, then every
   * bucket with something unsent sends the scopes that moved materially (at most once a second of
   * the site clock), or all it holds unsent at its last revision, or when its first minute is
   * about to leave the ring (`evictBefore`: the ring moves to it next).
   */
  private emitRevisions(site: SiteState, events: BucketEvent[], evictBefore = Number.NEGATIVE_INFINITY): void {
    const clock = site.clock
    if (clock === undefined) return
    const oldest = site.store.oldest()
    const gate = site.gate
    if (site.dirty.size > 0) this.foldChanges(site, clock)
    else gate.changes.clear()
    for (const step of STEPS) {
      const map = gate.buckets[step]
      for (const [start, bucket] of map) {
        if (start < oldest) {
          // Its first minute left the ring (sent before, see wouldEvictUnsent): nothing exact to send.
          map.delete(start)
          continue
        }
        if (bucket.whole) this.sendScopes(site, bucket, 'all', events, clock)
        else if (bucket.unsent.size > 0) {
          const due = bucket.finalDue(clock)
          if (start < evictBefore || (due && bucket.mayRevise(clock))) {
            this.sendScopes(site, bucket, 'unsent', events, clock)
          } else if (bucket.candidates.size > 0 && bucket.mayRevise(clock)) {
            this.sendScopes(site, bucket, 'material', events, clock)
          }
        }
        if (bucket.unsent.size === 0 && bucket.finalDue(clock)) bucket.finalDone = true
        if (bucket.idle(clock)) map.delete(start)
      }
      // Revisions of buckets that left the history are no longer needed.
      for (const start of site.revisions[step].keys()) if (start < oldest - 1440) site.revisions[step].delete(start)
    }
  }

  /** Turns the changes logged for sent minutes into unsent differences of the buckets holding them. */
  private foldChanges(site: SiteState, clock: number): void {
    const minutes = [...site.dirty].sort((a, b) => a - b)
    site.dirty.clear()
    const oldest = site.store.oldest()
    const gate = site.gate
    /** Per bucket, per scope position, per minute: the scope's peak in that minute before it rose. */
    const peaks = new Map<BucketGate, Map<number, Map<number, number>>>()
    for (const m of minutes) {
      const change = gate.changes.get(m)
      const slot = site.store.slotOf(m)
      const deltas = change !== undefined && slot >= 0 ? this.minuteDeltas(site, m, slot, change) : undefined
      for (const step of STEPS) {
        const start = site.calendar.bucketStart(step, m)
        const end = site.calendar.bucketEnd(step, start)
        if (end - 1 > site.emittedThrough || start < oldest) continue
        const bucket = gate.bucket(step, start, end, finalAt(site, end), clock)
        // A minute marked without a log (a checkpoint from before the log): its buckets go whole.
        if (deltas === undefined) {
          bucket.whole = true
          continue
        }
        for (const [position, delta] of deltas.figures) bucket.add(position, delta)
        if (deltas.peaks.size === 0) continue
        let byScope = peaks.get(bucket)
        if (byScope === undefined) {
          byScope = new Map()
          peaks.set(bucket, byScope)
        }
        for (const [position, before] of deltas.peaks) {
          let byMinute = byScope.get(position)
          if (byMinute === undefined) {
            byMinute = new Map()
            byScope.set(position, byMinute)
          }
          if (!byMinute.has(m)) byMinute.set(m, before)
        }
      }
    }
    gate.changes.clear()
    // A bucket's peak is the highest of its minutes': it moved by (highest now) − (highest before).
    const delta = new Float64Array(FIGURE_COUNT)
    const f = this.newFigures()
    for (const [bucket, byScope] of peaks) {
      for (const [position, byMinute] of byScope) {
        const ref = site.refs[position]!
        let now = 0
        let before = 0
        for (let m = Math.max(bucket.start, oldest); m < bucket.end; m++) {
          const slot = site.store.slotOf(m)
          if (slot < 0) continue
          const peak = this.scopeMinute(ref, site.store, slot, f).peak
          now = Math.max(now, peak)
          before = Math.max(before, byMinute.get(m) ?? peak)
        }
        if (now === before) continue
        delta.fill(0)
        delta[PEAK] = now - before
        bucket.add(position, delta)
      }
    }
  }

  /**
   * Each scope's change of figures in minute `m` from the minute's log: the scopes holding the
   * equipment changed, and, when the minute's carbon factors moved (§7: CO2 is shared as energy ×
   * I/E), every scope with energy in it. `peaks`: the scope's peak in the minute before it rose.
   */
  private minuteDeltas(
    site: SiteState,
    m: number,
    slot: number,
    change: MinuteChange,
  ): { figures: Map<number, Float64Array>; peaks: Map<number, number> } {
    const store = site.store
    // Per scope: mWh of energy and idle, milli-units, peak W added.
    const touched = new Map<number, [number, number, number, number]>()
    let siteEnergy = 0
    for (const [eq, c] of change.equipment) {
      siteEnergy += c.energy
      const peakAdded =
        c.peakBefore < 0 ? 0 : PEAK_WATTS[store.eqPeak[slot * store.nEq + eq]!]! - PEAK_WATTS[c.peakBefore]!
      for (const position of site.scopesOf(eq)) {
        let t = touched.get(position)
        if (t === undefined) {
          t = [0, 0, 0, 0]
          touched.set(position, t)
        }
        t[0] += c.energy
        t[1] += c.idle
        t[2] += c.output
        t[3] += peakAdded
      }
    }
    const carbon = carbonAt(site.carbon, m)
    const grid = gridIntensity(carbon, site.calendar, m)
    const market = marketIntensity(carbon)
    const eNow = store.aggEnergy[slot * store.nAgg]!
    const now = minuteFactors(eNow, store.pv[slot]!, store.grid[slot]!, site.hasGridMeters, grid, market, this.factors)
    const [locNow, marketNow, pvNow] = [now.location, now.market, now.pvShare]
    const old = minuteFactors(
      eNow - siteEnergy,
      store.pv[slot]! - change.pv,
      store.grid[slot]! - change.grid,
      site.hasGridMeters,
      grid,
      market,
      this.factors,
    )
    const [locOld, marketOld, pvOld] = [old.location, old.market, old.pvShare]
    const figures = new Map<number, Float64Array>()
    const peaks = new Map<number, number>()
    const f = this.newFigures()
    const add = (position: number, energy: number, idle: number, t: [number, number, number, number] | undefined) => {
      const dEnergy = t?.[0] ?? 0
      const dIdle = t?.[1] ?? 0
      const eOld = energy - dEnergy
      const iOld = idle - dIdle
      const d = new Float64Array(FIGURE_COUNT)
      d[ENERGY] = dEnergy
      d[IDLE] = dIdle
      d[CO2] = (energy * locNow - eOld * locOld) / 1000
      d[CO2_MARKET] = (energy * marketNow - eOld * marketOld) / 1000
      d[PV] = (energy * pvNow - eOld * pvOld) / 1000
      d[IDLE_CO2] = (idle * locNow - iOld * locOld) / 1000
      d[OUTPUT] = t?.[2] ?? 0
      if (anyUnsent(d)) figures.set(position, d)
      if (t !== undefined && t[3] !== 0) {
        this.scopeMinute(site.refs[position]!, store, slot, f)
        peaks.set(position, f.peak - t[3])
      }
    }
    if (locNow === locOld && marketNow === marketOld && pvNow === pvOld) {
      // The factors stayed: only the scopes holding the equipment changed moved.
      for (const [position, t] of touched) {
        this.scopeMinute(site.refs[position]!, store, slot, f)
        add(position, f.energy, f.idle, t)
      }
    } else {
      // Every scope's CO2 and PV share moved with the factors: compute, and keep what is not zero.
      for (const ref of site.refs) {
        const t = touched.get(ref.position)
        this.scopeMinute(ref, store, slot, f)
        if (t === undefined && f.energy === 0 && f.idle === 0) continue
        add(ref.position, f.energy, f.idle, t)
      }
    }
    return { figures, peaks }
  }

  /**
   * Sends a bucket for some of its scopes with the next revision: `all` of them, those with an
   * `unsent` difference, or those whose difference is `material` (checked against the exact
   * figures). Their differences are cleared: what is sent is exact.
   */
  private sendScopes(
    site: SiteState,
    bucket: BucketGate,
    which: 'all' | 'unsent' | 'material',
    events: BucketEvent[],
    clock: number,
  ): void {
    const { step, start, end } = bucket
    const from = Math.max(start, site.store.oldest())
    const factors = this.minuteFactorsOf(site, from, end)
    const positions: Iterable<number> =
      which === 'all'
        ? site.refs.map((r) => r.position)
        : which === 'unsent'
          ? [...bucket.unsent.keys()]
          : [...bucket.candidates]
    const f = this.newFigures()
    const exact = new Float64Array(FIGURE_COUNT)
    const sameMonth = step === '15m' && site.calendar.monthKey(start) === site.monthKey
    let revision = -1
    for (const position of positions) {
      const ref = site.refs[position]!
      const unsent = bucket.unsent.get(position)
      if (which === 'unsent' && (unsent === undefined || !anyUnsent(unsent))) {
        bucket.unsent.delete(position)
        continue
      }
      this.figures(ref, from, end, factors, f)
      if (which === 'material') {
        exact[ENERGY] = f.energy
        exact[IDLE] = f.idle
        exact[CO2] = f.co2
        exact[CO2_MARKET] = f.co2Market
        exact[PV] = f.pv
        exact[IDLE_CO2] = f.idleCo2
        exact[OUTPUT] = f.output
        exact[PEAK] = f.peak
        if (unsent === undefined || !material(unsent, exact)) continue
      }
      if (revision < 0) {
        revision = (site.revisions[step].get(start) ?? 0) + 1
        site.revisions[step].set(start, revision)
      }
      events.push({ scope: ref.scope, step, revision, ...bucketRow(start * 60_000, f) })
      bucket.unsent.delete(position)
      if (sameMonth && f.energy > site.monthPeakWh[position]!) site.monthPeakWh[position] = f.energy
    }
    bucket.candidates.clear()
    if (which === 'all') {
      bucket.unsent.clear()
      bucket.whole = false
    }
    if (which !== 'material' && bucket.finalDue(clock)) bucket.finalDone = true
    if (revision >= 0) bucket.lastSentS = clock
  }

  private emitClosed(site: SiteState, events: BucketEvent[], through = Number.POSITIVE_INFINITY): void {
    const closed = Math.min(site.closedThrough(), site.store.newest, through)
    const from = Math.max(site.emittedThrough + 1, site.firstMinute, site.store.oldest())
    for (let m = from; m <= closed; m++) {
      for (const step of STEPS) {
        const start = site.calendar.bucketStart(step, m)
        const end = site.calendar.bucketEnd(step, start)
        if (end !== m + 1) continue
        this.emitBucket(site, step, start, end, site.revisions[step].get(start) ?? 0, events)
      }
    }
    if (closed > site.emittedThrough) site.emittedThrough = closed
  }

  private emitBucket(
    site: SiteState,
    step: BucketStep,
    start: number,
    end: number,
    revision: number,
    events: BucketEvent[],
  ): void {
    const from = Math.max(start, site.store.oldest())
    const factors = this.minuteFactorsOf(site, from, end)
    const f = this.newFigures()
    const isQuarter = step === '15m'
    if (isQuarter) {
      const key = site.calendar.monthKey(start)
      if (key > site.monthKey) {
        site.monthKey = key
        site.monthPeakWh.fill(0)
      }
    }
    const sameMonth = isQuarter && site.calendar.monthKey(start) === site.monthKey
    const t = start * 60_000
    for (const ref of site.refs) {
      this.figures(ref, from, end, factors, f)
      events.push({ scope: ref.scope, step, revision, ...bucketRow(t, f) })
      if (sameMonth && f.energy > site.monthPeakWh[ref.position]!) site.monthPeakWh[ref.position] = f.energy
    }
  }

  /**
   * Buckets of `step` with fromMs ≤ t < toMs that exist (§6 GET /api/v1/energy): those whose
   * minutes are all held in the 1-minute history (the last 25 h 16 min of the site clock by
   * default, so at least the last 24 h at every step, and the whole local day for 1d) and that
   * start no later than the site clock's minute; the open ones hold what has arrived so far.
   * Longer history is the history store's (InfluxDB) job.
   *
   * The rows are the exact figures (§7) unless `asSent`: then a closed bucket is answered with the
   * figures last sent for it (§5 v1.1: the history API answers exactly those), which differ from
   * the exact ones by less than the revision threshold while a small change waits for the
   * bucket's last revision (revision-gate.ts).
   */
  history(
    scope: string,
    step: BucketStep,
    fromMs: number,
    toMs: number,
    options: { asSent?: boolean } = {},
  ): BucketRow[] {
    const ref = this.scopes.get(scope)
    if (ref === undefined) return []
    const site = ref.site
    if (site.clock === undefined) return []
    const store = site.store
    const cal = site.calendar
    const oldest = store.oldest()
    const firstFrom = Math.max(Math.ceil(fromMs / 60_000), oldest)
    const rows: BucketRow[] = []
    const f = this.newFigures()
    let start = cal.bucketStart(step, firstFrom)
    if (start < firstFrom) start = cal.bucketEnd(step, start)
    for (; start <= store.newest && start * 60_000 < toMs; start = cal.bucketEnd(step, start)) {
      const end = cal.bucketEnd(step, start)
      if (end <= site.firstMinute) continue
      this.figures(ref, start, end, this.minuteFactorsOf(site, start, end), f)
      const row = bucketRow(start * 60_000, f)
      if (options.asSent) this.rowAsSent(ref, step, start, row)
      rows.push(row)
    }
    return rows
  }

  /**
   * §5 v1.1: the history answers the figures last sent. A closed bucket whose scope has a change
   * not sent yet (under the threshold, waiting for its last revision) is answered as sent.
   */
  private rowAsSent(ref: ScopeRef, step: BucketStep, start: number, row: BucketRow): void {
    const unsent = ref.site.gate.buckets[step].get(start)?.unsent.get(ref.position)
    if (unsent === undefined) return
    row.energyWh = asSent(row.energyWh, unsent, ENERGY)
    row.idleWh = asSent(row.idleWh, unsent, IDLE)
    row.co2G = asSent(row.co2G, unsent, CO2)
    row.co2MarketG = asSent(row.co2MarketG, unsent, CO2_MARKET)
    row.pvWh = asSent(row.pvWh ?? 0, unsent, PV)
    row.idleCo2G = asSent(row.idleCo2G ?? 0, unsent, IDLE_CO2)
    row.peakW = asSent(row.peakW, unsent, PEAK)
    const output = asSent(row.outputUnits ?? 0, unsent, OUTPUT)
    if (output !== 0) row.outputUnits = output
    else delete row.outputUnits
  }

  /**
   * What today's sums keep (today-sums.ts): scopes asked and the bytes of their sums, the bytes of
   * the sites' change logs, and the minutes summed so far (the cost of keeping them).
   */
  todayStats(): { scopes: number; bytes: number; siteBytes: number; minutesRead: number } {
    const { scopes, bytes } = this.today.stats()
    let siteBytes = 0
    for (const site of this.sites.values()) siteBytes += site.closedChanges.bytes()
    return { scopes, bytes, siteBytes, minutesRead: this.today.minutesRead }
  }

  /**
   * Live accounting figures of a scope (§5 `live` minus powerW and idle). `powerW`, the scope's
   * current power as the caller knows it, drives the demand forecast (see demand.ts); without it
   * the average power of the last complete minute stands in.
   */
  live(scope: string, powerW?: number): LiveAccounting | undefined {
    const ref = this.scopes.get(scope)
    if (ref === undefined) return undefined
    const site = ref.site
    if (site.clock === undefined) {
      return {
        scope,
        at: null,
        energyTodayWh: 0,
        co2TodayG: 0,
        co2MarketTodayG: 0,
        gridGPerKWh: gridIntensity(carbonAt(site.carbon, 0), site.calendar, 0),
        pvShare: 0,
        demand: null,
      }
    }
    const clock = site.clock
    const cal = site.calendar
    const store = site.store
    const minute = Math.floor(clock / 60)
    const f = this.newFigures()
    const dayStart = cal.dayStart(cal.dayNumber(minute))
    const dayFrom = Math.max(dayStart, store.oldest())
    const through = Math.min(site.emittedThrough, minute)
    const closed = this.today.closed(ref, site.closedChanges, dayStart, dayFrom, through, this.todayFigures)
    const openFrom = Math.max(dayFrom, through + 1)
    this.figures(ref, openFrom, minute + 1, this.minuteFactorsOf(site, openFrom, minute + 1), f)
    const today = {
      energy: closed.energy + f.energy,
      co2: closed.co2 + f.co2,
      co2Market: closed.co2Market + f.co2Market,
      pv: closed.pv + f.pv,
    }
    const quarter = cal.bucketStart('15m', minute)
    this.figures(ref, quarter, minute + 1, this.minuteFactorsOf(site, quarter, minute + 1), f)
    const soFarWh = f.energy
    this.figures(ref, minute - 1, minute, this.minuteFactorsOf(site, minute - 1, minute), f)
    const currentW = powerW ?? f.energy * 60
    // The month's highest completed interval: closed ones are kept at emission; the interval just
    // completed may not be closed yet (latenessS), so it is looked at here.
    let peakWh = cal.monthKey(quarter) === site.monthKey ? site.monthPeakWh[ref.position]! : 0
    const previous = quarter - 15
    if (cal.monthKey(previous) === cal.monthKey(quarter) && previous >= store.oldest()) {
      this.figures(ref, previous, quarter, this.minuteFactorsOf(site, previous, quarter), f)
      peakWh = Math.max(peakWh, f.energy)
    }
    const startS = quarter * 60
    return {
      scope,
      at: clock * 1000,
      energyTodayWh: today.energy,
      co2TodayG: today.co2,
      co2MarketTodayG: today.co2Market,
      gridGPerKWh: gridIntensity(carbonAt(site.carbon, minute), cal, minute),
      pvShare: today.energy > 0 ? today.pv / today.energy : 0,
      demand: {
        intervalStart: startS * 1000,
        kW: intervalKW(soFarWh, clock - startS),
        forecastKW: forecastKW(soFarWh, currentW, startS, clock),
        monthPeakKW: peakWh / 250,
      },
    }
  }

  // -------------------------------------------------------------------------------------------
  // Idle spans and energy between two times

  /**
   * Energy of an equipment within [x, y] into the scratch's energy (mWh per minute): exact under
   * the even-spreading model where its devices' readings are retained; before that, the minute's
   * bucket energy in proportion to the part of the minute inside (counted `approximated`).
   */
  private regionEnergy(site: SiteState, eq: number, x: number, y: number): void {
    const node = site.info.equipment[eq]!
    let exactFrom = Number.NEGATIVE_INFINITY
    let latest = Number.NEGATIVE_INFINITY
    const devices: DeviceEnergy[] = []
    for (const id of node.spec.devices) {
      const dev = this.devices.get(id)
      if (dev === undefined) continue
      devices.push(dev)
      exactFrom = Math.max(exactFrom, dev.exactFrom())
      latest = Math.max(latest, dev.energy.lastEver, dev.power.lastEver)
    }
    y = Math.min(y, latest)
    if (!(y > x)) return
    this.context.spans = undefined
    if (x < exactFrom) {
      this.counters.approximated++
      const store = site.store
      const to = Math.min(y, exactFrom)
      for (let m = Math.floor(x / 60); m * 60 < to; m++) {
        const slot = store.slotOf(m)
        if (slot < 0) continue
        const part = Math.min(to, (m + 1) * 60) - Math.max(x, m * 60)
        this.scratch.add(m, Math.round((store.eqEnergy[slot * store.nEq + eq]! * part) / 60), 0)
      }
      x = exactFrom
    }
    if (y > x) for (const dev of devices) this.context.energyOver(dev, x, y, 1)
  }

  /**
   * Opens, moves the end of, or closes an idle span of an equipment (§7 idle; the caller's idle
   * detection decides). The same start identifies the span; `endS` undefined means still idle.
   * Idle energy of every minute the change touches is corrected, emitted minutes are revised.
   */
  setIdleSpan(equipmentScope: string, startS: number, endS: number | undefined): void {
    const ref = this.scopes.get(equipmentScope)
    if (ref === undefined || ref.kind !== 'equipment') throw new RangeError(`${equipmentScope} is not an equipment`)
    const site = ref.site
    const eq = ref.index
    const spans = site.spans[eq] ?? []
    site.spans[eq] = spans
    const index = spans.findIndex((s) => s.start === startS)
    const oldEnd = index >= 0 ? spans[index]!.end : startS
    const newEnd = Math.max(startS, endS ?? Number.POSITIVE_INFINITY)
    if (newEnd === oldEnd) return
    if (index >= 0) {
      if (newEnd === startS) spans.splice(index, 1)
      else spans[index]!.end = newEnd
    } else {
      spans.push({ start: startS, end: newEnd })
      spans.sort((a, b) => a.start - b.start)
    }
    const sign = newEnd > oldEnd ? 1 : -1
    this.regionEnergy(site, eq, Math.min(oldEnd, newEnd), Math.max(oldEnd, newEnd))
    const out = this.scratch
    if (!out.empty) {
      for (let m = out.lo; m <= out.hi; m++) {
        out.idle[m - out.base] = sign * out.energy[m - out.base]!
        out.energy[m - out.base] = 0
      }
      this.flush(site, { kind: 'equipment', eq })
    }
    // Spans that ended before the history are no longer needed.
    const horizon = site.store.oldest() * 60
    site.spans[eq] = spans.filter((s) => s.end >= horizon)
  }

  /**
   * Energy an equipment drew within [fromS, toS] and its CO2 (§5 idle alert `wastedWh`,
   * `wastedCo2G`), per minute with each minute's carbon factors.
   *
   * Asked for once the minute holding toS is final (detection holds an idle clear until the
   * watermark is latenessS past that minute's end), the answer is a function of the readings only,
   * whatever order they arrived in (§7): the minutes wholly inside come from the closed buckets; the
   * partial last minute from the retained readings; the partial first minute from the retained
   * readings when it lies within `retentionS − 2 × latenessS − 60` of toS — then its readings are
   * retained however the arrivals interleaved (the site clock is about toS + 60 + 2 × latenessS at
   * that moment) — and, for a longer span, from its closed bucket in proportion to the part of the
   * minute inside. Deciding that by whether the readings happen to be retained now would make the
   * first minute exact or approximated depending on how far each device's latest reading had got.
   */
  energyBetween(equipmentScope: string, fromS: number, toS: number): EnergyFigures {
    const ref = this.scopes.get(equipmentScope)
    if (ref === undefined || ref.kind !== 'equipment') throw new RangeError(`${equipmentScope} is not an equipment`)
    const site = ref.site
    const eq = ref.index
    const result = { energyWh: 0, co2G: 0, co2MarketG: 0 }
    if (!(toS > fromS)) return result
    const out = this.scratch
    const store = site.store
    const first = Math.floor(fromS / 60)
    const last = Math.floor(toS / 60)
    const headEnd = Math.min(toS, (first + 1) * 60)
    const exactSpanS = Math.max(0, site.retentionS - 2 * site.info.latenessS - 60)
    if (fromS >= toS - exactSpanS) this.regionEnergy(site, eq, fromS, headEnd)
    else {
      const slot = store.slotOf(first)
      if (slot >= 0) out.add(first, Math.round((store.eqEnergy[slot * store.nEq + eq]! * (headEnd - fromS)) / 60), 0)
    }
    for (let m = first + 1; m < last; m++) {
      const slot = store.slotOf(m)
      if (slot >= 0) out.add(m, store.eqEnergy[slot * store.nEq + eq]!, 0)
    }
    if (last > first && toS > last * 60) this.regionEnergy(site, eq, last * 60, toS)
    if (out.empty) return result
    const factors = this.minuteFactorsOf(site, out.lo, out.hi + 1)
    for (let m = out.lo; m <= out.hi; m++) {
      const wh = out.energy[m - out.base]! / 1000
      result.energyWh += wh
      result.co2G += wh * factors[(m - out.lo) * 3]!
      result.co2MarketG += wh * factors[(m - out.lo) * 3 + 1]!
    }
    out.clear()
    return result
  }

  /**
   * Replaces a site's carbon figures (§6 PUT /api/v1/sites/{site}/carbon) for the minutes after
   * the site clock's; buckets up to the clock's minute keep the figures they had.
   */
  setCarbon(siteId: string, carbon: SiteCarbon): void {
    const site = this.sites.get(siteId)
    if (site === undefined) throw new RangeError(`unknown site ${siteId}`)
    const fromMinute = site.clock === undefined ? Number.NEGATIVE_INFINITY : Math.floor(site.clock / 60) + 1
    const last = site.carbon[site.carbon.length - 1]!
    const version = { fromMinute, carbon: structuredClone(carbon) }
    if (last.fromMinute === fromMinute) site.carbon[site.carbon.length - 1] = version
    else site.carbon.push(version)
  }

  /**
   * Per site, the first minute whose column the state store keeps (CONTRACT.md §7: a reading may
   * revise buckets up to maxAgeS behind the site clock): maxAgeS or the ring, whichever reaches
   * further back, and a day's margin. Sites without a reading yet keep everything.
   */
  columnFloors(marginMinutes = COLUMN_MARGIN_MINUTES): Map<string, number> {
    const floors = new Map<string, number>()
    for (const [id, site] of this.sites) {
      if (site.clock === undefined) continue
      const maxAge = Math.floor((site.clock - site.info.maxAgeS) / 60)
      floors.set(id, Math.min(maxAge, site.store.oldest()) - marginMinutes)
    }
    return floors
  }

  /** Bytes of the 1-minute bucket history of every site. */
  historyBytes(): number {
    let bytes = 0
    for (const site of this.sites.values()) bytes += site.store.bytes()
    return bytes
  }

  // -------------------------------------------------------------------------------------------
  // Checkpoint

  /** The whole state as one Buffer (checkpoint.ts); restore() with the same plant carries on exactly. */
  checkpoint(): Buffer {
    const state: CheckpointState = {
      counters: { ...this.counters },
      sites: [...this.sites.entries()].map(([id, site]) => {
        const store: Record<string, Float64Array | Int32Array | Uint16Array | number> = { newest: site.store.newest }
        for (const key of STORE_ARRAYS) store[key] = (site.store as unknown as Record<string, Float64Array>)[key]!
        return {
          id,
          ...saveSite(site),
          store,
        }
      }),
      devices: [...this.devices.entries()].map(([id, dev]) => [
        id,
        [
          ['energy', dev.energy.toJSON()] as [string, SeriesState],
          ['power', dev.power.toJSON()] as [string, SeriesState],
          ...[...dev.others].map(([name, s]) => [name, s.toJSON()] as [string, SeriesState]),
        ],
      ]),
      output: [...this.outputs].map(([id, minutes]) => [id, minutes.toJSON()] as [string, OutputMinutesState]),
    }
    return encodeCheckpoint(state)
  }

  /**
   * The incremental checkpoint (issue 13): the state without the 1-minute ring, plus the columns of
   * the minutes that changed since the previous snapshot (every held minute when `full`: the first
   * snapshot into an empty store, or after a write that failed). Cheap: the columns are copies of a
   * few KB each, the readings are packed into one array. restoreFrom() with the same plant and the
   * columns written so far carries on exactly.
   */
  snapshot(full = false): AccountingSnapshot {
    const generation = this.generation++
    const columns: ColumnWrite[] = []
    const sites: AccountingState['sites'] = []
    for (const [id, site] of this.sites) {
      const store = site.store
      for (const [minute, bytes] of store.takeColumns(full)) columns.push({ site: id, minute, bytes })
      for (const [minute, column] of site.cold) {
        if (full || site.coldChanged.has(minute)) columns.push({ site: id, minute, bytes: column.buckets.column(0) })
      }
      site.coldChanged.clear()
      sites.push({
        id,
        length: store.length,
        nEq: store.nEq,
        nAgg: store.nAgg,
        newest: store.newest,
        ...saveSite(site),
      })
    }
    const readings = this.readingLog.take(this.loggedSeries(), full)
    const output = snapshotOutputs(this.outputs, full)
    return {
      state: {
        format: 'plantwatt-accounting-state',
        version: 1,
        counters: { ...this.counters },
        sites,
        devices: readings.state,
        outbox: this.outbox.map((entry) => ({ ...entry.event })),
        outputHeads: output.heads,
      },
      columns,
      generation,
      readings: readings.write,
      outputColumns: output.columns,
    }
  }

  private loggedSeries(): LoggedSeries[] {
    const all: LoggedSeries[] = []
    for (const [device, dev] of this.devices) {
      all.push({ device, name: 'energy', series: dev.energy }, { device, name: 'power', series: dev.power })
      for (const [name, series] of dev.others) all.push({ device, name, series })
    }
    return all
  }

  /** Every device's retained readings packed (states before the reading log; tests). */
  packSeries(): PackedSeries {
    const device: string[] = []
    const name: string[] = []
    let values = 0
    const all: ReadingSeries[] = []
    for (const [id, dev] of this.devices) {
      const add = (n: string, s: ReadingSeries) => {
        device.push(id)
        name.push(n)
        all.push(s)
        values += s.len * (s.v ? 2 : 1)
      }
      add('energy', dev.energy)
      add('power', dev.power)
      for (const [n, s] of dev.others) add(n, s)
    }
    const len = new Uint32Array(all.length)
    const flags = new Uint8Array(all.length)
    const ever = new Float64Array(all.length * 2)
    const data = new Float64Array(values)
    let at = 0
    for (let k = 0; k < all.length; k++) {
      const s = all[k]!
      len[k] = s.len
      flags[k] = (s.v ? 1 : 0) | (s.evicted ? 2 : 0)
      ever[2 * k] = s.firstEver
      ever[2 * k + 1] = s.lastEver
      data.set(s.t.subarray(s.head, s.head + s.len), at)
      at += s.len
      if (s.v) {
        data.set(s.v.subarray(s.head, s.head + s.len), at)
        at += s.len
      }
    }
    return { device, name, len, flags, ever, data }
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
    outputColumn: (site: string, minute: number) => Uint8Array | undefined = () => undefined,
  ): Accounting {
    if (state?.format !== 'plantwatt-accounting-state' || state.version !== 1) {
      throw new TypeError('not a plantwatt accounting state of version 1')
    }
    const engine = new Accounting(plant, options)
    Object.assign(engine.counters, state.counters)
    for (const saved of state.sites) {
      const site = engine.sites.get(saved.id)
      if (site === undefined) throw new RangeError(`checkpoint has site ${saved.id}, the plant has not`)
      const store = site.store
      if (saved.length !== store.length || saved.nEq !== store.nEq || saved.nAgg !== store.nAgg) {
        throw new RangeError(`checkpoint of site ${saved.id} does not fit this plant model and history length`)
      }
      if (saved.newest > Number.NEGATIVE_INFINITY) {
        store.advanceTo(saved.newest)
        for (let m = store.oldest(); m <= store.newest; m++) {
          const bytes = column(saved.id, m)
          if (bytes !== undefined) store.loadColumn(store.slot(m), bytes, site.equipmentAggregates)
        }
      }
      store.changed.clear()
      applySavedSite(site, saved)
    }
    engine.outbox = (state.outbox ?? []).map((event) => ({ event, generation: 0 }))
    for (const [id, saved] of state.output ?? []) {
      const site = engine.sites.get(id)
      if (site !== undefined) engine.outputs.set(id, OutputMinutes.from(saved, site.store.length, site.store.nAgg))
    }
    restoreOutputs(engine.outputs, state.outputHeads ?? [], (id) => engine.sites.get(id)?.store, outputColumn)
    if ('keys' in state.devices) {
      const { mismatched } = engine.readingLog.restore(state.devices, readings(), (id, name, withValues) => {
        const info = plant.device(id)
        if (info === undefined) return undefined
        const dev = engine.deviceOf(info)
        if (name === 'energy') return dev.energy
        if (name === 'power') return dev.power
        const series = new ReadingSeries(withValues)
        dev.others.set(name, series)
        return series
      })
      engine.restoreMismatches = mismatched.length
      return engine
    }
    const packed = state.devices
    let at = 0
    for (let k = 0; k < packed.device.length; k++) {
      const n = packed.len[k]!
      const withValues = (packed.flags[k]! & 1) === 1
      const t = packed.data.subarray(at, at + n)
      at += n
      const v = withValues ? packed.data.subarray(at, at + n) : undefined
      if (withValues) at += n
      const info = plant.device(packed.device[k]!)
      if (info === undefined) continue
      const restored = ReadingSeries.from({
        t,
        v,
        evicted: (packed.flags[k]! & 2) === 2,
        firstEver: packed.ever[2 * k]!,
        lastEver: packed.ever[2 * k + 1]!,
      })
      const dev = engine.deviceOf(info)
      const name = packed.name[k]!
      if (name === 'energy') Object.assign(dev.energy, restored)
      else if (name === 'power') Object.assign(dev.power, restored)
      else dev.others.set(name, restored)
    }
    return engine
  }

  /** A new engine for the same plant model from a checkpoint(). */
  static restore(plant: PlantIndex, checkpoint: Uint8Array, options: AccountingOptions = {}): Accounting {
    const state = decodeCheckpoint<CheckpointState>(checkpoint)
    const engine = new Accounting(plant, options)
    Object.assign(engine.counters, state.counters)
    for (const saved of state.sites) {
      const site = engine.sites.get(saved.id)
      if (site === undefined) throw new RangeError(`checkpoint has site ${saved.id}, the plant has not`)
      const store = site.store as unknown as Record<string, Float64Array>
      for (const key of STORE_ARRAYS) {
        const array = saved.store[key] as Float64Array
        if (array.length !== store[key]!.length) {
          throw new RangeError(`checkpoint of site ${saved.id} does not fit this plant model and history length`)
        }
        store[key]!.set(array)
      }
      site.store.newest = saved.store.newest as number
      applySavedSite(site, saved)
    }
    for (const [id, saved] of state.output ?? []) {
      const site = engine.sites.get(id)
      if (site !== undefined) engine.outputs.set(id, OutputMinutes.from(saved, site.store.length, site.store.nAgg))
    }
    for (const [id, series] of state.devices) {
      const info = plant.device(id)
      if (info === undefined) continue
      const dev = engine.deviceOf(info)
      for (const [name, s] of series) {
        const restored = ReadingSeries.from(s)
        if (name === 'energy') Object.assign(dev.energy, restored)
        else if (name === 'power') Object.assign(dev.power, restored)
        // An `output` series of a checkpoint from before outputUnits has no values: it starts anew.
        else if (name !== 'output' || restored.v !== undefined) dev.others.set(name, restored)
      }
    }
    return engine
  }
}
