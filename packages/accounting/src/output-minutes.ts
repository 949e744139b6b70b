// Units produced per 1-minute bucket of one site (CONTRACT.md §2 `output`, §5 optional
// `outputUnits`): the increments of each equipment's `output` counter, spread over the time between
// two readings and split across minutes in proportion, as the energy counter is (spread.ts: whole
// milli-units, so sums are exact in any arrival order).
//
// Kept apart from SiteBuckets on purpose: only equipment that report output get a column (most
// equipment of a plant count nothing), and the ring of energy buckets can change its layout or its
// checkpoint without touching this. The ring uses the same slot of a minute as SiteBuckets (the
// caller passes it), with its own record of which minute a slot holds, so it needs no hook into
// SiteBuckets.advanceTo: a slot is cleared when first written for a newer minute, and reads of a
// minute the slot no longer holds are 0.

/**
 * The whole ring: the legacy checkpoint form (Accounting.checkpoint(), and the state store's states
 * written before output columns).
 */
export interface OutputMinutesState {
  slotMinute: Float64Array
  /** Equipment index of each column, in column order. */
  equipment: number[]
  columns: Int32Array[]
  aggregates: Float64Array
}

/**
 * The incremental checkpoint form (issue 13): the minute each slot holds and the equipment with a
 * column, kept in the state; the minutes' values are columns of their own (OutputMinutes.column),
 * written only for minutes that changed since the previous checkpoint.
 */
export interface OutputMinutesHead {
  slotMinute: Float64Array
  equipment: number[]
}

/** A changed minute's column to persist with the checkpoint. */
export interface OutputColumnWrite {
  site: string
  minute: number
  bytes: Uint8Array
}

export class OutputMinutes {
  private readonly slotMinute: Float64Array
  /** Minutes written to since the last takeColumns(), with their slot. */
  private readonly changed = new Map<number, number>()
  /** Equipment index → column. */
  private readonly columnOf = new Map<number, number>()
  private readonly equipment: number[] = []
  /** Per column: milli-units per slot (±2^31 per minute: 2 million units a minute). */
  private readonly columns: Int32Array[] = []
  /** Areas and the site, slot-major like SiteBuckets' aggregates. */
  private readonly aggregates: Float64Array

  constructor(
    readonly length: number,
    readonly nAgg: number,
  ) {
    this.slotMinute = new Float64Array(length).fill(-1)
    this.aggregates = new Float64Array(length * nAgg)
  }

  /** Whether equipment `eq` ever reported output (its buckets then carry outputUnits). */
  reports(eq: number): boolean {
    return this.columnOf.has(eq)
  }

  /** Equipment that ever reported output, in the order they first did. */
  reporting(): readonly number[] {
    return this.equipment
  }

  /** Adds `milliUnits` of equipment `eq` (and its aggregates `aggs`) to `minute`, held in `slot`. */
  add(minute: number, slot: number, eq: number, aggs: readonly number[], milliUnits: number): void {
    if (this.slotMinute[slot] !== minute) this.clearSlot(slot, minute)
    this.changed.set(minute, slot)
    const column = this.columnFor(eq)
    this.columns[column]![slot]! += milliUnits
    const base = slot * this.nAgg
    for (let k = 0; k < aggs.length; k++) this.aggregates[base + aggs[k]!]! += milliUnits
  }

  /** Milli-units of equipment `eq` in `minute` (held in `slot`). */
  ofEquipment(minute: number, slot: number, eq: number): number {
    if (this.slotMinute[slot] !== minute) return 0
    const column = this.columnOf.get(eq)
    return column === undefined ? 0 : this.columns[column]![slot]!
  }

  /** Milli-units of several equipment (a line) in `minute`. */
  ofEquipmentList(minute: number, slot: number, eqs: Int32Array): number {
    if (this.slotMinute[slot] !== minute) return 0
    let sum = 0
    for (let k = 0; k < eqs.length; k++) {
      const column = this.columnOf.get(eqs[k]!)
      if (column !== undefined) sum += this.columns[column]![slot]!
    }
    return sum
  }

  /** Milli-units of an aggregate (area, site) in `minute`. */
  ofAggregate(minute: number, slot: number, agg: number): number {
    if (this.slotMinute[slot] !== minute) return 0
    return this.aggregates[slot * this.nAgg + agg]!
  }

  toJSON(): OutputMinutesState {
    return {
      slotMinute: this.slotMinute,
      equipment: [...this.equipment],
      columns: this.columns,
      aggregates: this.aggregates,
    }
  }

  /** The incremental checkpoint's head (copies: the state is encoded later than it is taken). */
  head(): OutputMinutesHead {
    return { slotMinute: this.slotMinute.slice(), equipment: [...this.equipment] }
  }

  /**
   * The columns of the minutes changed since the previous call (every held minute when `full`),
   * as [minute, bytes]. A minute's column: the aggregates (Float64, nAgg), then the count of
   * equipment with units in it and (equipment index, milli-units) pairs (Int32): most equipment
   * count nothing in most minutes, and a minute written since is written again, whole.
   */
  takeColumns(full: boolean): [number, Uint8Array][] {
    const out: [number, Uint8Array][] = []
    if (full) {
      for (let slot = 0; slot < this.length; slot++) {
        const minute = this.slotMinute[slot]!
        if (minute >= 0) out.push([minute, this.column(slot)])
      }
    } else {
      for (const [minute, slot] of this.changed) {
        // A minute whose slot has since moved on to a newer one keeps the column it last wrote.
        if (this.slotMinute[slot] === minute) out.push([minute, this.column(slot)])
      }
    }
    this.changed.clear()
    return out
  }

  private column(slot: number): Uint8Array {
    let k = 0
    for (const column of this.columns) if (column[slot] !== 0) k++
    const bytes = new Uint8Array(8 * this.nAgg + 4 * (1 + 2 * k))
    new Float64Array(bytes.buffer, 0, this.nAgg).set(this.aggregates.subarray(slot * this.nAgg, (slot + 1) * this.nAgg))
    const pairs = new Int32Array(bytes.buffer, 8 * this.nAgg)
    pairs[0] = k
    let at = 1
    for (let c = 0; c < this.columns.length; c++) {
      const value = this.columns[c]![slot]!
      if (value === 0) continue
      pairs[at++] = this.equipment[c]!
      pairs[at++] = value
    }
    return bytes
  }

  /**
   * The ring from an incremental checkpoint's head and the columns written so far (`column(minute)`,
   * undefined when none is held: that slot then holds no minute, and reads 0).
   */
  static fromColumns(
    head: OutputMinutesHead,
    length: number,
    nAgg: number,
    column: (minute: number) => Uint8Array | undefined,
  ): OutputMinutes {
    if (head.slotMinute.length !== length) {
      throw new RangeError('output checkpoint does not fit this plant model and history length')
    }
    const out = new OutputMinutes(length, nAgg)
    for (const eq of head.equipment) out.columnFor(eq)
    for (let slot = 0; slot < length; slot++) {
      const minute = head.slotMinute[slot]!
      if (!(minute >= 0)) continue
      const stored = column(minute)
      if (stored === undefined) continue
      // Copied: a stored value need not be aligned for typed-array views.
      const bytes = new Uint8Array(stored.byteLength)
      bytes.set(stored)
      if (bytes.byteLength < 8 * nAgg + 4) throw new RangeError(`output column of minute ${minute} is truncated`)
      out.slotMinute[slot] = minute
      out.aggregates.set(new Float64Array(bytes.buffer, 0, nAgg), slot * nAgg)
      const pairs = new Int32Array(bytes.buffer, 8 * nAgg)
      for (let k = 0; k < pairs[0]!; k++) {
        out.columns[out.columnFor(pairs[1 + 2 * k]!)]![slot] = pairs[2 + 2 * k]!
      }
    }
    return out
  }

  static from(state: OutputMinutesState, length: number, nAgg: number): OutputMinutes {
    if (state.slotMinute.length !== length || state.aggregates.length !== length * nAgg) {
      throw new RangeError('output checkpoint does not fit this plant model and history length')
    }
    const out = new OutputMinutes(length, nAgg)
    out.slotMinute.set(state.slotMinute)
    out.aggregates.set(state.aggregates)
    state.equipment.forEach((eq, k) => {
      out.columnFor(eq)
      out.columns[k]!.set(state.columns[k]!)
    })
    return out
  }

  /** Gives equipment `eq` a column (it reports output from now on). */
  track(eq: number): void {
    this.columnFor(eq)
  }

  private columnFor(eq: number): number {
    let column = this.columnOf.get(eq)
    if (column === undefined) {
      column = this.columns.length
      this.columns.push(new Int32Array(this.length))
      this.equipment.push(eq)
      this.columnOf.set(eq, column)
    }
    return column
  }

  private clearSlot(slot: number, minute: number): void {
    this.slotMinute[slot] = minute
    for (const column of this.columns) column[slot] = 0
    this.aggregates.fill(0, slot * this.nAgg, (slot + 1) * this.nAgg)
  }
}

/**
 * Accounting's incremental snapshot of every site's ring: the heads for the state and the columns
 * of the minutes changed since the previous snapshot (all held ones when `full`).
 */
export function snapshotOutputs(
  outputs: ReadonlyMap<string, OutputMinutes>,
  full: boolean,
): { heads: [string, OutputMinutesHead][]; columns: OutputColumnWrite[] } {
  const heads: [string, OutputMinutesHead][] = []
  const columns: OutputColumnWrite[] = []
  for (const [site, minutes] of outputs) {
    heads.push([site, minutes.head()])
    for (const [minute, bytes] of minutes.takeColumns(full)) columns.push({ site, minute, bytes })
  }
  return { heads, columns }
}

/**
 * Every site's ring from the heads of an incremental snapshot and the columns persisted with it and
 * before it (`column(site, minute)`); `ring(site)` is the site's ring shape, undefined for a site
 * the plant no longer has (skipped).
 */
export function restoreOutputs(
  outputs: Map<string, OutputMinutes>,
  heads: readonly [string, OutputMinutesHead][],
  ring: (site: string) => { length: number; nAgg: number } | undefined,
  column: (site: string, minute: number) => Uint8Array | undefined,
): void {
  for (const [site, head] of heads) {
    const shape = ring(site)
    if (shape === undefined) continue
    outputs.set(
      site,
      OutputMinutes.fromColumns(head, shape.length, shape.nAgg, (minute) => column(site, minute)),
    )
  }
}
