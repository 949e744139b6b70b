// The processor's checkpoint encodings.
//
// Since issue 13 the checkpoint lives in the processor's state store (state-store.ts): the
// changed minutes of accounting's 1-minute ring as columns, and everything else the pipeline must
// carry over a restart (counter baselines, the retained readings' per-series state, open idle
// episodes and alerts, learned thresholds, the alert log, the tuners, the newest readings per
// device) as one node:v8 blob with the last journal record it covers (`encodeState`), and the
// retained readings as a log of what each checkpoint added (the reading log's chunks).
//
// `CheckpointFile` reads the file of older versions (`processor/checkpoint.v8`: the same, with the
// whole ring inside, hundreds of MB at 10,000 devices), so that a data directory written by one is
// restored once and then superseded by the state store.

import { readFile } from 'node:fs/promises'
import { deserialize, serialize } from 'node:v8'
import type { SeriesLogState } from '@plantwatt/accounting'
import { decodeSlicedCheckpoint } from '@plantwatt/detection'
import {
  decodeDeviceCounters,
  deviceCountersIndex,
  type PipelineCheckpoint,
  type PipelineState,
} from '@plantwatt/pipeline'
import { writeFileAtomic } from '@plantwatt/runtime'
import type { TuningCheckpoint } from './tuning-loop.ts'

export interface ProcessorCheckpoint {
  /** The last ingest-journal record applied (0 without a journal). */
  journalSeq: number
  /**
   * Per journal slot (one per worker of `up --workers N`), the last record applied; slot 0 is
   * `journalSeq`. Absent in checkpoints written before slots.
   */
  journalSeqs?: Record<number, number>
  /** Wall clock of the write, ms (for the log). */
  savedAt: number
  pipeline: PipelineCheckpoint
  /** The tuners and their event log (issue 15); absent in checkpoints written before them. */
  tuning?: TuningCheckpoint
}

const FORMAT = 'plantwatt-processor-checkpoint'
const VERSION = 1

export class CheckpointFile {
  constructor(readonly path: string) {}

  async write(checkpoint: ProcessorCheckpoint): Promise<void> {
    await writeFileAtomic(this.path, serialize({ format: FORMAT, version: VERSION, ...checkpoint }))
  }

  /** The checkpoint, or undefined when there is none yet. A file that is not one is an error. */
  async read(): Promise<ProcessorCheckpoint | undefined> {
    let bytes: Buffer
    try {
      bytes = await readFile(this.path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw error
    }
    const value = deserialize(bytes) as { format?: string; version?: number } & ProcessorCheckpoint
    if (value?.format !== FORMAT || value.version !== VERSION) {
      throw new Error(`${this.path} is not a plantwatt processor checkpoint (version ${VERSION})`)
    }
    return {
      journalSeq: value.journalSeq,
      journalSeqs: value.journalSeqs,
      savedAt: value.savedAt,
      pipeline: value.pipeline,
      tuning: value.tuning,
    }
  }
}

/** The state store's blob: the pipeline's state without the ring's columns. */
export interface ProcessorState {
  /** Slot 0's position (see ProcessorCheckpoint). */
  journalSeq: number
  /** Each journal slot's position (issue 16: one ingest journal per broker worker). */
  journalSeqs?: Record<number, number>
  savedAt: number
  pipeline: PipelineState
  tuning?: TuningCheckpoint
}

const STATE_FORMAT = 'plantwatt-processor-state'
const STATE_VERSION = 1

/** The state's blob and the large arrays stored beside it (state-store.ts StateWrite.arrays). */
export interface EncodedState {
  blob: Buffer
  arrays: Record<string, Uint8Array>
}

/**
 * Serialised at once (synchronously): the blob is the state of one moment, whatever runs after.
 * The retained readings are not in it: the reading log's chunks are written beside it
 * (@plantwatt/accounting reading-log.ts), and the blob keeps their per-series state only.
 */
export function encodeState(state: ProcessorState): EncodedState {
  // Detection's state is serialised on its own, beside the blob: its bytes are a part of their own
  // (plantwatt_checkpoint_bytes{part="detection"}).
  const detection = serialize(state.pipeline.detection)
  const blob = serialize({
    format: STATE_FORMAT,
    version: STATE_VERSION,
    ...state,
    pipeline: { ...state.pipeline, detection: null },
  })
  return { blob, arrays: { detection } }
}

/** The state's blob without detection (written beside it: detectionArrays). Synchronous, as encodeState. */
export function encodeStateBlob(
  state: Omit<ProcessorState, 'pipeline'> & { pipeline: Omit<PipelineState, 'detection'> },
): Buffer {
  return serialize({
    format: STATE_FORMAT,
    version: STATE_VERSION,
    ...state,
    pipeline: { ...state.pipeline, detection: null },
  })
}

/**
 * The array holding the retained readings' per-series state (@plantwatt/accounting reading-log.ts),
 * taken over later turns than the blob's: in the blob, `accounting.devices` is then null.
 */
export const READINGS_STATE = 'readings.state'

/** The reading log's per-series state for the array READINGS_STATE. */
export function encodeReadingsState(state: SeriesLogState): Buffer {
  return serialize(state)
}

/**
 * The per-device counters as a capture's chunks (@plantwatt/pipeline device-capture.ts): `devices`
 * is their index, `devices.0`… hold them; in the blob, `pipeline.devices` is then null.
 */
export function deviceArrays(chunks: readonly Uint8Array[]): Record<string, Uint8Array> {
  const arrays: Record<string, Uint8Array> = { devices: deviceCountersIndex(chunks) }
  chunks.forEach((chunk, k) => {
    arrays[`devices.${k}`] = chunk
  })
  return arrays
}

const DETECTION_CHUNKS = 'plantwatt-detection-chunks'

/**
 * Detection's state as a capture's chunks (@plantwatt/detection capture.ts): `detection` names
 * how many, `detection.0`… hold them.
 */
export function detectionArrays(chunks: readonly Uint8Array[]): Record<string, Uint8Array> {
  const arrays: Record<string, Uint8Array> = {
    detection: serialize({ format: DETECTION_CHUNKS, chunks: chunks.length }),
  }
  chunks.forEach((chunk, k) => {
    arrays[`detection.${k}`] = chunk
  })
  return arrays
}

function decodeDetection(bytes: Uint8Array, array: (name: string) => Uint8Array | undefined) {
  const value = deserialize(bytes) as { format?: string; chunks?: number }
  if (value?.format !== DETECTION_CHUNKS) return value
  const chunks: Uint8Array[] = []
  for (let k = 0; k < value.chunks!; k++) {
    const chunk = array(`detection.${k}`)
    if (chunk === undefined) throw new Error(`processor state without detection chunk ${k} of ${value.chunks}`)
    chunks.push(chunk)
  }
  return decodeSlicedCheckpoint(chunks)
}

/**
 * The state from its blob and the arrays stored beside it (`array(name)`, undefined when absent):
 * states written before the reading log keep every retained reading packed in the array `series`.
 */
export function decodeState(bytes: Uint8Array, array: (name: string) => Uint8Array | undefined): ProcessorState {
  const value = deserialize(bytes) as { format?: string; version?: number } & ProcessorState
  if (value?.format !== STATE_FORMAT || value.version !== STATE_VERSION) {
    throw new Error(`not a plantwatt processor state (version ${STATE_VERSION})`)
  }
  if (value.pipeline.detection === null) {
    const detection = array('detection')
    if (detection === undefined) throw new Error('processor state without its detection array')
    value.pipeline.detection = decodeDetection(detection, array) as PipelineState['detection']
  }
  if (value.pipeline.devices === null) {
    const index = array('devices')
    if (index === undefined) throw new Error('processor state without its device counters')
    value.pipeline.devices = decodeDeviceCounters(index, (k) => array(`devices.${k}`))
  }
  if (value.pipeline.accounting.devices === null) {
    const stored = array(READINGS_STATE)
    if (stored === undefined) throw new Error("processor state without its retained readings' state")
    value.pipeline.accounting.devices = deserialize(stored) as SeriesLogState
  }
  const devices = value.pipeline.accounting.devices
  if ('data' in devices) {
    const stored = array('series') ?? new Uint8Array(0)
    // Copied into an array of its own: a stored value need not be aligned for a Float64Array view.
    const series = new Float64Array(stored.byteLength / 8)
    new Uint8Array(series.buffer).set(stored)
    devices.data = series
  }
  return {
    journalSeq: value.journalSeq,
    journalSeqs: value.journalSeqs,
    savedAt: value.savedAt,
    pipeline: value.pipeline,
    tuning: value.tuning,
  }
}
