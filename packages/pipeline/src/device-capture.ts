// The per-device counters of a checkpoint taken over several turns (issue 13: writing a checkpoint
// never holds the event loop more than a few milliseconds).
//
// node:v8 of every device's counters (accepted, duplicates, rejections, the newest reading of each
// measurement and the counted names) held the snapshot's turn about 6 ms at 2,000 devices, 30 ms at
// 10,000. Here the snapshot's turn only notes how many devices there are; later turns encode them
// in the devices' order, a slice's worth per chunk (node:v8 of the live objects, in the same turn),
// and a device about to change before its turn (a message from it, its names forgotten) is copied
// just before that change. Devices first seen after the snapshot are not part of it. So the
// chunks are the counters at the snapshot, as `[...devices]` encoded then would have been.

import { deserialize, serialize } from 'node:v8'
import type { DeviceCounters } from './pipeline.ts'

const FORMAT = 'plantwatt-device-counters'
const VERSION = 1
/** Devices per chunk: about 0.1 ms of node:v8 each (a few µs per device). */
const BATCH = 32

/** A device's counters, copied (the newest readings' [t, v] pairs are replaced, never changed, so shared). */
function copyCounters(counters: DeviceCounters): DeviceCounters {
  const copy: DeviceCounters = {
    lastSeenMs: counters.lastSeenMs,
    accepted: counters.accepted,
    duplicates: counters.duplicates,
    rejected: { ...counters.rejected },
  }
  if (counters.last !== undefined) copy.last = new Map(counters.last)
  if (counters.names !== undefined) copy.names = new Map(counters.names)
  return copy
}

export class DeviceCountersCapture {
  /** node:v8 chunks, each a list of [id, counters]; complete once `slice` returned true. */
  readonly chunks: Uint8Array[] = []
  /** Devices copied before a change, and devices first seen after the snapshot (null: not in it). */
  private readonly early = new Map<string, DeviceCounters | null>()
  private readonly iterator: Iterator<[string, DeviceCounters]>
  private left: number
  private closed = false

  /** `devices`: the live map; its first `size` entries (insertion order, none removed) are the snapshot's. */
  constructor(devices: ReadonlyMap<string, DeviceCounters>) {
    this.iterator = devices.entries()
    this.left = devices.size
  }

  /** Whether it is still running (not complete, not closed). */
  get open(): boolean {
    return !this.closed
  }

  /** `counters` of `deviceId` (in the map) are about to change: copied if the capture needs them still. */
  beforeChange(deviceId: string, counters: DeviceCounters): void {
    if (!this.early.has(deviceId)) this.early.set(deviceId, copyCounters(counters))
  }

  /** A device is first seen (not in the snapshot): left out. */
  added(deviceId: string): void {
    this.early.set(deviceId, null)
  }

  /**
   * Encodes devices in order, a batch per chunk, while `more()` says so (at least one device); true
   * once every device of the snapshot is encoded.
   */
  slice(more: () => boolean): boolean {
    if (this.closed) throw new Error('device counters capture is closed')
    // A chunk per batch: taking a device is cheap, encoding it is the cost the clock must see. The
    // first batch of a turn is one device (at least one per turn), then they double up to BATCH.
    let batch = 1
    do {
      const list: [string, DeviceCounters][] = []
      while (this.left > 0 && list.length < batch) {
        const next = this.iterator.next()
        if (next.done) break
        const [id, live] = next.value
        const early = this.early.get(id)
        if (early === null) continue
        this.left--
        // Taken now: not copied again if it changes before the capture ends.
        this.early.set(id, null)
        list.push([id, early ?? live])
      }
      if (list.length > 0) this.chunks.push(serialize(list))
      batch = Math.min(2 * batch, BATCH)
    } while (this.left > 0 && more())
    if (this.left > 0) return false
    this.close()
    return true
  }

  /** Stops (complete, or a checkpoint given up). Safe to call twice. */
  close(): void {
    this.closed = true
    this.early.clear()
  }
}

/** The index of a capture's chunks (stored beside them), checked when they are read back. */
export function deviceCountersIndex(chunks: readonly Uint8Array[]): Uint8Array {
  return serialize({ format: FORMAT, version: VERSION, chunks: chunks.length })
}

/** Every [id, counters] of a capture, from its index and `chunk(k)` (undefined when missing). */
export function decodeDeviceCounters(
  index: Uint8Array,
  chunk: (k: number) => Uint8Array | undefined,
): [string, DeviceCounters][] {
  const header = deserialize(index) as { format?: string; version?: number; chunks?: number }
  if (header?.format !== FORMAT || header.version !== VERSION || !Number.isInteger(header.chunks)) {
    throw new Error(`not device counters of version ${VERSION}`)
  }
  const out: [string, DeviceCounters][] = []
  for (let k = 0; k < header.chunks!; k++) {
    const bytes = chunk(k)
    if (bytes === undefined) throw new Error(`device counters without chunk ${k} of ${header.chunks}`)
    for (const entry of deserialize(bytes) as [string, DeviceCounters][]) out.push(entry)
  }
  return out
}
