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

/** The checkpoint form (v8-serialised with the rest of accounting's state). */
export interface OutputMinutesState {
  slotMinute: Float64Array
  /** Equipment index of each column, in column order. */
  equipment: number[]
  columns: Int32Array[]
  aggregates: Float64Array
}

export class OutputMinutes {
  private readonly slotMinute: Float64Array
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
