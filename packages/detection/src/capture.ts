// Detection's checkpoint taken over several turns of the event loop (issue 13: writing a
// checkpoint never holds the loop more than a few milliseconds).
//
// Copying every equipment's state (a dozen small objects and arrays each) and node:v8 of the
// copies held the loop about 100 ms at 2,000 devices, all in the turn of the snapshot. Here the
// snapshot's turn copies only the sites' state (clocks, the reorder buffers' typed arrays, offline
// tracks, held events, the alert book) and arms each equipment: the equipment is copied in later
// turns, a few at a time (`slice`), or, when a reading is about to change it first, just before
// that change (EquipmentDetector.capture). Either way each equipment's copy is its state at
// the snapshot, so the whole is the state of one moment (the journal position the processor pairs
// with it), exactly as a synchronous checkpoint() would have been.
//
// The encoding is a list of chunks: the header (node:v8: sites without their equipment, and how many
// equipment each has), each site's reorder buffer as its typed array's bytes (ReorderBuffer.pack:
// copied in the snapshot's turn, a memcpy, and stored as they are, no node:v8: 27 MB at 10,000
// devices), then the equipment in plant order (node:v8), a slice's worth per chunk.
// decodeSlicedCheckpoint() puts them back into a DetectionCheckpoint; it also reads version 1,
// whose buffers were one node:v8 chunk.

import { deserialize, serialize } from 'node:v8'
import type { DetectionCheckpoint } from './detection.ts'
import type { EquipmentDetector, EquipmentJson } from './equipment.ts'
import { type BufferCapture, type BufferJson, unpack } from './reorder-buffer.ts'

const FORMAT = 'plantwatt-detection-sliced'
/** Positions of a reorder buffer copied between two looks at the caller's clock (about 0.1 ms). */
const BUFFER_STEP = 16_384
const VERSION = 2

interface Header {
  format: typeof FORMAT
  /** 1: the buffers are one node:v8 chunk (BufferJson[]); 2: one chunk per site, ReorderBuffer.pack()'s bytes. */
  version: 1 | 2
  /** The checkpoint without the sites' buffers and equipment. */
  checkpoint: DetectionCheckpoint
  /** Equipment per site, in the checkpoint's site order. */
  counts: number[]
}

export class DetectionCapture {
  /** Encoded chunks so far (complete once `slice` returned true). */
  readonly chunks: Uint8Array[]
  private readonly taken: (EquipmentJson | undefined)[]
  private next = 0
  private nextBuffer = 0
  private closed = false

  /**
   * `checkpoint`: the sites' state at the snapshot, copies, each site's `equipment` empty and its
   * `buffer` taken out into `buffers` (ReorderBuffer.beginCapture(), one per site in order, copied
   * in later turns); `detectors`: every equipment in site order.
   */
  constructor(
    checkpoint: DetectionCheckpoint,
    private readonly buffers: readonly BufferCapture[],
    counts: number[],
    private readonly detectors: readonly EquipmentDetector[],
  ) {
    const header: Header = { format: FORMAT, version: VERSION, checkpoint, counts }
    // Serialised now: the offline tracks and the alert book are the live objects' own arrays.
    this.chunks = [serialize(header)]
    this.taken = new Array(detectors.length)
    for (let i = 0; i < detectors.length; i++) {
      const eq = detectors[i]!
      eq.capture = this
      eq.captureIndex = i
    }
  }

  /** Equipment `i` is about to change (EquipmentDetector): copied now, as it stands at the snapshot. */
  beforeChange(i: number): void {
    this.taken[i] = this.detectors[i]!.toJSON()
  }

  /** Whether it is still running (not complete, not closed). */
  get open(): boolean {
    return !this.closed
  }

  /** Equipment copied and encoded so far, of all. */
  get progress(): { done: number; of: number } {
    return { done: this.next, of: this.detectors.length }
  }

  /**
   * Copies equipment, in plant order, while `more()` says so (at least one), and encodes the copies;
   * true once every one is encoded (the chunks are then complete, no equipment armed any more).
   * `more` is the caller's clock (this package reads none): encoding takes about as long as copying.
   */
  slice(more: () => boolean): boolean {
    if (this.closed) throw new Error('detection capture is closed')
    // The reorder buffers first, in site order, a step of positions at a time.
    while (this.nextBuffer < this.buffers.length) {
      const buffer = this.buffers[this.nextBuffer]!
      if (buffer.step(BUFFER_STEP)) {
        const { packed } = buffer
        this.chunks.push(new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength))
        this.nextBuffer++
      }
      if (!more()) return false
    }
    const list: EquipmentJson[] = []
    while (this.next < this.detectors.length) {
      const i = this.next++
      const eq = this.detectors[i]!
      let json = this.taken[i]
      if (json === undefined) {
        eq.capture = undefined
        json = eq.toJSON()
      }
      this.taken[i] = undefined
      list.push(json)
      if (!more()) break
    }
    if (list.length > 0) this.chunks.push(serialize(list))
    if (this.next < this.detectors.length) return false
    this.close()
    return true
  }

  /** Disarms the equipment not copied yet (a checkpoint given up). Safe to call twice. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const buffer of this.buffers) buffer.close()
    for (let i = this.next; i < this.detectors.length; i++) {
      const eq = this.detectors[i]!
      if (eq.capture === this) eq.capture = undefined
    }
  }
}

/** Whether `value` (node:v8 decoded) is the header of a sliced checkpoint. */
export function isSlicedHeader(value: unknown): boolean {
  return (value as { format?: unknown } | null)?.format === FORMAT
}

/** A DetectionCheckpoint from a DetectionCapture's chunks. */
export function decodeSlicedCheckpoint(chunks: readonly Uint8Array[]): DetectionCheckpoint {
  const header = deserialize(chunks[0]!) as Header
  if (header?.format !== FORMAT || (header.version !== 1 && header.version !== VERSION)) {
    throw new Error('not a sliced detection checkpoint of version 1 or 2')
  }
  const sites = header.checkpoint.sites.length
  let buffers: BufferJson[]
  let first: number
  if (header.version === 1) {
    buffers = deserialize(chunks[1]!) as BufferJson[]
    first = 2
  } else {
    if (chunks.length < 1 + sites) throw new Error('sliced detection checkpoint without its reorder buffers')
    buffers = chunks.slice(1, 1 + sites).map((bytes) => {
      // Copied into an array of its own: a stored value need not be aligned for a Float64Array view.
      const packed = new Float64Array(bytes.byteLength / 8)
      new Uint8Array(packed.buffer).set(bytes)
      return unpack(packed)
    })
    first = 1 + sites
  }
  const equipment: EquipmentJson[] = []
  for (let k = first; k < chunks.length; k++)
    for (const json of deserialize(chunks[k]!) as EquipmentJson[]) equipment.push(json)
  const expected = header.counts.reduce((n, c) => n + c, 0)
  if (equipment.length !== expected || buffers.length !== sites) {
    throw new Error(`sliced detection checkpoint incomplete: ${equipment.length} of ${expected} equipment`)
  }
  let at = 0
  header.checkpoint.sites.forEach((site, s) => {
    site.buffer = buffers[s]!
    site.equipment = equipment.slice(at, at + header.counts[s]!)
    at += header.counts[s]!
  })
  return header.checkpoint
}
