// The engine's state saved and restored: the whole of it as one Buffer (checkpoint(), restore()), or
// the incremental checkpoint (snapshot(), restoreFrom()): the state without the 1-minute ring, the
// ring's columns changed since the previous snapshot and the reading log's chunk (reading-log.ts).

import type { SiteCarbon } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'
import type { AccountingCore } from './accounting-core.ts'
import type { AccountingCounters, BucketEvent } from './accounting-types.ts'
import { finalAt } from './bucket-revisions.ts'
import { STEPS } from './calendar.ts'
import { encodeCheckpoint } from './checkpoint.ts'
import type { ColdRevisions } from './cold-revisions.ts'
import {
  type OutputColumnWrite,
  OutputMinutes,
  type OutputMinutesHead,
  type OutputMinutesState,
  restoreOutputs,
  snapshotOutputs,
} from './output-minutes.ts'
import {
  type LoggedSeries,
  ReadingLog,
  type ReadingLogCapture,
  type ReadingLogWrite,
  type SeriesLogState,
} from './reading-log.ts'
import { MinuteChange, type SavedGate } from './revision-gate.ts'
import { ReadingSeries, type SeriesState } from './series.ts'
import type { SiteState } from './site-state.ts'
import type { Span } from './spread.ts'

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
  for (const [minute, change] of saved.gate?.changes ?? []) site.gate.changes.set(minute, MinuteChange.from(change))
  // The unsent differences were not saved: those buckets go out whole, exact, above the revisions sent.
  for (const [step, start, finalDone] of saved.gate?.buckets ?? []) {
    const end = site.calendar.bucketEnd(step, start)
    const gate = site.gate.bucket(step, start, end, finalAt(site, end), site.clock ?? Number.NEGATIVE_INFINITY)
    gate.whole = true
    gate.finalDone = finalDone
  }
}

export interface CheckpointState {
  counters: AccountingCounters
  sites: (SavedSite & {
    id: string
    store: Record<string, Float64Array | Int32Array | Uint16Array | number>
  })[]
  devices: [string, [string, SeriesState][]][]
  /** Units produced per minute, per site that has output counters (output-minutes.ts). */
  output?: [string, OutputMinutesState][]
}

/** Throws unless `state` is a snapshot()'s state this version restores. */
export function checkAccountingState(state: AccountingState): void {
  if (state?.format !== 'plantwatt-accounting-state' || state.version !== 1) {
    throw new TypeError('not a plantwatt accounting state of version 1')
  }
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
   * (reading-log.ts); in states written before it, all of them packed. Null where the state was
   * taken over several turns (snapshotSliced()): the series' state is stored beside it and put
   * back here before restoreFrom().
   */
  devices: SeriesLogState | PackedSeries | null
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

/**
 * An AccountingSnapshot whose reading log chunk and series' state are taken over later turns by
 * `readings` (ReadingLogCapture.slice; `state.devices` is null: the capture's state goes beside it).
 */
export interface SlicedAccountingSnapshot extends Omit<AccountingSnapshot, 'readings'> {
  readings: ReadingLogCapture
}

const STORE_ARRAYS = ['slotMinute', 'eqEnergy', 'eqIdle', 'eqPeak', 'aggEnergy', 'aggIdle', 'aggPeak', 'pv', 'grid']

export class AccountingCheckpoint {
  /** The retained readings' log for the checkpoint (snapshot()). */
  private readonly readingLog = new ReadingLog()

  constructor(
    private readonly core: AccountingCore,
    private readonly coldRevisions: ColdRevisions,
  ) {}

  /** The whole state as one Buffer (checkpoint.ts); restore() with the same plant carries on exactly. */
  checkpoint(): Buffer {
    const state: CheckpointState = {
      counters: { ...this.core.counters },
      sites: [...this.core.sites.entries()].map(([id, site]) => {
        const store: Record<string, Float64Array | Int32Array | Uint16Array | number> = { newest: site.store.newest }
        for (const key of STORE_ARRAYS) store[key] = (site.store as unknown as Record<string, Float64Array>)[key]!
        return {
          id,
          ...saveSite(site),
          store,
        }
      }),
      devices: [...this.core.devices.entries()].map(([id, dev]) => [
        id,
        [
          ['energy', dev.energy.toJSON()] as [string, SeriesState],
          ['power', dev.power.toJSON()] as [string, SeriesState],
          ...[...dev.others].map(([name, s]) => [name, s.toJSON()] as [string, SeriesState]),
        ],
      ]),
      output: [...this.core.outputs].map(([id, minutes]) => [id, minutes.toJSON()] as [string, OutputMinutesState]),
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
    const sliced = this.snapshotSliced(full)
    sliced.readings.slice(() => true)
    return {
      ...sliced,
      state: { ...sliced.state, devices: sliced.readings.state },
      readings: sliced.readings.write(),
    }
  }

  /**
   * The same as snapshot() at this moment, with the reading log's chunk and the series' state
   * taken over later turns (issue 13: the event loop is held a few ms at a time): the caller runs
   * `readings.slice` until it returns true, or closes it (the next snapshot must then be full).
   */
  snapshotSliced(full = false): SlicedAccountingSnapshot {
    const generation = this.core.generation++
    const columns: ColumnWrite[] = []
    const sites: AccountingState['sites'] = []
    for (const [id, site] of this.core.sites) {
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
    const readings = this.readingLog.begin(this.loggedSeries(), full)
    const output = snapshotOutputs(this.core.outputs, full)
    return {
      state: {
        format: 'plantwatt-accounting-state',
        version: 1,
        counters: { ...this.core.counters },
        sites,
        devices: null,
        outbox: this.coldRevisions.outbox.map((entry) => ({ ...entry.event })),
        outputHeads: output.heads,
      },
      columns,
      generation,
      readings,
      outputColumns: output.columns,
    }
  }

  /** Every series, in the devices' order, each with its key (made once: no object per series per snapshot). */
  private loggedSeries(): LoggedSeries[] {
    const all: LoggedSeries[] = []
    const add = (device: string, name: string, s: ReadingSeries) => {
      s.logKey ??= `${device} ${name}`
      all.push(s as LoggedSeries)
    }
    for (const [device, dev] of this.core.devices) {
      add(device, 'energy', dev.energy)
      add(device, 'power', dev.power)
      for (const [name, series] of dev.others) add(device, name, series)
    }
    return all
  }

  /** Every device's retained readings packed (states before the reading log; tests). */
  packSeries(): PackedSeries {
    const device: string[] = []
    const name: string[] = []
    let values = 0
    const all: ReadingSeries[] = []
    for (const [id, dev] of this.core.devices) {
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
   * Restores a snapshot()'s state into this new engine, with the columns persisted with it and
   * before it: `column(site, minute)` gives a minute's bytes, undefined for none (zeros);
   * `readings`, the reading log's chunks held, by generation in ascending order. Returns the
   * number of series whose restored readings did not add up (Accounting.restoreMismatches).
   * `outputColumn`: a minute's output column (snapshot().outputColumns).
   */
  restoreFrom(
    plant: PlantIndex,
    state: AccountingState,
    column: (site: string, minute: number) => Uint8Array | undefined,
    readings: () => Iterable<[number, Uint8Array]>,
    outputColumn: (site: string, minute: number) => Uint8Array | undefined = () => undefined,
  ): number {
    Object.assign(this.core.counters, state.counters)
    for (const saved of state.sites) {
      const site = this.core.sites.get(saved.id)
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
    this.coldRevisions.outbox = (state.outbox ?? []).map((event) => ({ event, generation: 0 }))
    for (const [id, saved] of state.output ?? []) {
      const site = this.core.sites.get(id)
      if (site !== undefined) this.core.outputs.set(id, OutputMinutes.from(saved, site.store.length, site.store.nAgg))
    }
    restoreOutputs(this.core.outputs, state.outputHeads ?? [], (id) => this.core.sites.get(id)?.store, outputColumn)
    if (state.devices === null) throw new TypeError("accounting state without its series' state")
    if ('keys' in state.devices) {
      const { mismatched } = this.readingLog.restore(state.devices, readings(), (id, name, withValues) => {
        const info = plant.device(id)
        if (info === undefined) return undefined
        const dev = this.core.deviceOf(info)
        if (name === 'energy') return dev.energy
        if (name === 'power') return dev.power
        const series = new ReadingSeries(withValues)
        dev.others.set(name, series)
        return series
      })
      return mismatched.length
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
      const dev = this.core.deviceOf(info)
      const name = packed.name[k]!
      if (name === 'energy') Object.assign(dev.energy, restored)
      else if (name === 'power') Object.assign(dev.power, restored)
      else dev.others.set(name, restored)
    }
    return 0
  }

  /** Restores a checkpoint()'s decoded state into this new engine. */
  restore(plant: PlantIndex, state: CheckpointState): void {
    Object.assign(this.core.counters, state.counters)
    for (const saved of state.sites) {
      const site = this.core.sites.get(saved.id)
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
      const site = this.core.sites.get(id)
      if (site !== undefined) this.core.outputs.set(id, OutputMinutes.from(saved, site.store.length, site.store.nAgg))
    }
    for (const [id, series] of state.devices) {
      const info = plant.device(id)
      if (info === undefined) continue
      const dev = this.core.deviceOf(info)
      for (const [name, s] of series) {
        const restored = ReadingSeries.from(s)
        if (name === 'energy') Object.assign(dev.energy, restored)
        else if (name === 'power') Object.assign(dev.power, restored)
        // An `output` series of a checkpoint from before outputUnits has no values: it starts anew.
        else if (name !== 'output' || restored.v !== undefined) dev.others.set(name, restored)
      }
    }
  }
}
