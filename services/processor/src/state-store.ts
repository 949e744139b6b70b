// The processor's checkpoint store (issue 13): an LMDB environment of its own in the data directory
// (`<data-dir>/processor/state`, docs/state-ownership.md), holding
// - `columns`: one value per (site, minute), accounting's 1-minute column of that minute (its
//   equipment's energy, idle and peak, the site's PV and grid; bucket-store.ts), written only when
//   it changed since the previous checkpoint and kept for maxAgeS and a margin, so a late reading
//   can still revise a minute the in-memory ring no longer holds;
// - `output`: one value per (site, minute), the units produced in that minute per equipment that
//   counts output (@plantwatt/accounting output-minutes.ts), written, kept and pruned as `columns`;
// - `readingParts`: the retained readings as a log, one chunk per checkpoint of the readings
//   inserted since the one before, in parts (one per turn that built it), keyed by (the chunk's
//   generation, part); pruned from the oldest, whose still retained readings the chunk written with
//   the pruning carries forward (@plantwatt/accounting reading-log.ts). `readings` holds the chunks
//   of states written before parts, one value per generation: read, and pruned, as before;
// - `state`: the rest of the processor's state as one node:v8 blob (counters, sites' metadata,
//   the retained readings' per-series state, detection, tuning, the newest readings per device)
//   and the journal position it covers.
//
// Why one environment and one transaction: the columns, the log's chunks and the blob that claims a
// journal position must never disagree after a crash. Were they two writes, a crash between them would leave newer
// columns under an older journal position, and the replayed journal would add its readings to them
// a second time. lmdb-js puts every write issued in one event turn into one transaction
// (`eventTurnBatching`, on by default), committed and flushed on its own thread: `write` issues all
// of a checkpoint's puts and removals synchronously, so they commit together or not at all, and the
// event loop only hands over buffers. LZ4 compression of columns runs on that thread as well.

import { type Database, open, type RootDatabase } from 'lmdb'

export interface ColumnPut {
  site: string
  minute: number
  bytes: Uint8Array
}

export interface StateWrite {
  /** The state blob (checkpoint-file.ts encodeState). */
  state: Uint8Array
  /** Changed columns; an empty value stands for a minute of zeros. */
  columns: readonly ColumnPut[]
  /** Changed output minutes' columns (output-minutes.ts), by (site, minute). */
  outputColumns?: readonly ColumnPut[]
  /** Per site: columns and output columns of minutes before this one are deleted (retention). */
  pruneBefore?: ReadonlyMap<string, number>
  /**
   * Large arrays of the state kept out of the blob (the retained readings), by name: lmdb-js hands
   * a Uint8Array's memory to its write thread as it is, so they cost the event loop nothing.
   */
  arrays?: Readonly<Record<string, Uint8Array>>
  /** Reading log chunks to put, by generation, in parts (lmdb-js hands their memory over as it is). */
  readings?: readonly { gen: number; parts: readonly Uint8Array[] }[]
  /** Reading log chunks of generations below this one are deleted. */
  readingsPruneBelow?: number
}

const STATE_KEY = 'checkpoint'

export class ProcessorStateStore {
  private readonly root: RootDatabase
  private readonly columns: Database<Buffer, [string, number]>
  private readonly state: Database<Buffer, string>
  /** Chunks of states written before parts (one value per generation). */
  private readonly readings: Database<Buffer, number>
  private readonly readingParts: Database<Buffer, [number, number]>
  private readonly output: Database<Buffer, [string, number]>
  /** The array of states before the reading log is deleted with the first write (once). */
  private legacySeries = true
  /** Per site, the first minute whose column may still be held (raised by pruning). */
  private readonly prunedTo = new Map<string, number>()
  /** The same for output columns. */
  private readonly outputPrunedTo = new Map<string, number>()
  private closed = false

  constructor(readonly path: string) {
    this.root = open({ path, maxDbs: 8, compression: false, cache: false })
    this.columns = this.root.openDB<Buffer, [string, number]>({
      name: 'columns',
      keyEncoding: 'ordered-binary',
      encoding: 'binary',
      // Equipment columns are mostly zeros (idle energy, quiet equipment): LZ4, off the main thread.
      compression: true,
    })
    this.state = this.root.openDB<Buffer, string>({ name: 'state', encoding: 'binary' })
    this.readings = this.root.openDB<Buffer, number>({
      name: 'readings',
      keyEncoding: 'ordered-binary',
      encoding: 'binary',
    })
    this.readingParts = this.root.openDB<Buffer, [number, number]>({
      name: 'readingParts',
      keyEncoding: 'ordered-binary',
      encoding: 'binary',
    })
    this.output = this.root.openDB<Buffer, [string, number]>({
      name: 'output',
      keyEncoding: 'ordered-binary',
      encoding: 'binary',
      compression: true,
    })
  }

  /** A minute's output column as written (a copy), undefined when none is held. */
  outputColumn(site: string, minute: number): Uint8Array | undefined {
    return this.output.getBinary([site, minute])
  }

  /**
   * The reading log's chunks held, by generation, oldest first, each in its parts (copies): those
   * of states before parts first (their generations are all older: a generation only goes up).
   */
  *readingChunks(): Generator<[number, Uint8Array]> {
    for (const { key, value } of this.readings.getRange({})) yield [key, value]
    for (const { key, value } of this.readingParts.getRange({})) yield [key[0], value]
  }

  /** The last state blob written, undefined when none was. */
  readState(): Buffer | undefined {
    return this.state.getBinary(STATE_KEY)
  }

  /** A large array written with the state (StateWrite.arrays), undefined when none was. */
  readArray(name: string): Buffer | undefined {
    return this.state.getBinary(`array:${name}`)
  }

  /**
   * A minute's column as written (a copy: getBinaryFast's view of a compressed value is the whole
   * decompression buffer), undefined when none is held (never written, or pruned).
   */
  column(site: string, minute: number): Uint8Array | undefined {
    return this.columns.getBinary([site, minute])
  }

  /** Whether any column is held for a site (a state without columns is a fresh store). */
  hasColumns(site: string): boolean {
    for (const _ of this.columns.getKeys({
      start: [site, Number.NEGATIVE_INFINITY],
      end: [site, Number.POSITIVE_INFINITY],
      limit: 1,
    }))
      return true
    return false
  }

  /**
   * Writes the columns, the pruning and the state blob in one transaction (see the header); resolves
   * once it is committed and flushed to disk.
   */
  async write(write: StateWrite): Promise<void> {
    if (this.closed) throw new Error('processor state store is closed')
    const removals = this.prunable(this.columns, this.prunedTo, write.pruneBefore)
    const outputRemovals = this.prunable(this.output, this.outputPrunedTo, write.pruneBefore)
    const oldChunks: number[] = []
    const oldParts: [number, number][] = []
    if (write.readingsPruneBelow !== undefined) {
      for (const key of this.readings.getKeys({ end: write.readingsPruneBelow })) oldChunks.push(key)
      for (const key of this.readingParts.getKeys({})) {
        if (key[0] >= write.readingsPruneBelow) break
        oldParts.push(key)
      }
    }
    // Numbered arrays (`detection.0`, … : a list of chunks) of an earlier write beyond this one's.
    const staleArrays: string[] = []
    if (write.arrays !== undefined) {
      for (const key of this.state.getKeys({ start: 'array:', end: 'array;' })) {
        const name = String(key).slice('array:'.length)
        if (/\.\d+$/.test(name) && !(name in write.arrays)) staleArrays.push(String(key))
      }
    }
    // From here to the state's put: no await, so everything is one event turn, one transaction.
    for (const key of removals) void this.columns.remove(key)
    for (const key of outputRemovals) void this.output.remove(key)
    for (const column of write.outputColumns ?? [])
      void this.output.put([column.site, column.minute], column.bytes as Buffer)
    for (const key of oldChunks) void this.readings.remove(key)
    for (const key of oldParts) void this.readingParts.remove(key)
    for (const chunk of write.readings ?? [])
      chunk.parts.forEach((part, p) => void this.readingParts.put([chunk.gen, p], part as Buffer))
    if (this.legacySeries && write.readings !== undefined) {
      void this.state.remove('array:series')
      this.legacySeries = false
    }
    for (const column of write.columns) void this.columns.put([column.site, column.minute], column.bytes as Buffer)
    for (const key of staleArrays) void this.state.remove(key)
    for (const [name, bytes] of Object.entries(write.arrays ?? {}))
      void this.state.put(`array:${name}`, bytes as Buffer)
    const last = this.state.put(STATE_KEY, write.state as Buffer)
    await last
    await this.root.flushed
  }

  /** Keys of `db` below each site's floor not yet pruned (and the floors then recorded as pruned). */
  private prunable(
    db: Database<Buffer, [string, number]>,
    prunedTo: Map<string, number>,
    floors: ReadonlyMap<string, number> | undefined,
  ): [string, number][] {
    const removals: [string, number][] = []
    for (const [site, before] of floors ?? []) {
      const from = prunedTo.get(site) ?? Number.NEGATIVE_INFINITY
      if (before <= from) continue
      for (const key of db.getKeys({ start: [site, from], end: [site, before] })) removals.push(key as [string, number])
      prunedTo.set(site, before)
    }
    return removals
  }

  /** Bytes of the environment's data file and of its pages in use. */
  stats(): { fileBytes: number; usedBytes: number; columns: number; readingChunks: number } {
    const s = this.root.getStats() as { pageSize: number; lastPageNumber: number }
    let used = 0
    let columns = 0
    let readingChunks = 0
    for (const db of [this.columns, this.state, this.readings, this.readingParts, this.output] as {
      getStats(): unknown
    }[]) {
      const d = db.getStats() as {
        treeBranchPageCount: number
        treeLeafPageCount: number
        overflowPages: number
        entryCount: number
      }
      used += d.treeBranchPageCount + d.treeLeafPageCount + d.overflowPages
      if (db === this.columns) columns = d.entryCount
      if (db === this.readings || db === this.readingParts) readingChunks += d.entryCount
    }
    return { fileBytes: (s.lastPageNumber + 1) * s.pageSize, usedBytes: used * s.pageSize, columns, readingChunks }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.root.close()
  }
}
