// The processor's checkpoint in the data directory: everything the pipeline must carry over a
// restart (counter baselines, retained readings, open buckets and their history, open idle
// episodes and alerts, learned thresholds, the alert log) and the last journal record it covers.
// Serialised with node:v8, which keeps typed arrays as they are (a large plant's bucket history
// is hundreds of MB: more than a JavaScript string may hold). Written atomically.

import { readFile } from 'node:fs/promises'
import { deserialize, serialize } from 'node:v8'
import { writeFileAtomic } from '@plantwatt/runtime'
import type { PipelineCheckpoint } from './pipeline.ts'
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
