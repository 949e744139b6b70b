import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { IngestJournal, JournalSkip, Logger } from '@plantwatt/runtime'
import { Counter, collectDefaultMetrics, Registry } from 'prom-client'

// Where a broker keeps its state in the data directory, and the journal's health on /metrics:
// shared by every layout of `up` and the roles, and by a broker worker of `up --workers N`, which
// loads this rather than roles.ts (no processor, gateway or history store in a worker).

export function sessionsDir(dataDir: string): string {
  return join(dataDir, 'broker-sessions')
}

/** The ingest journal: uplinks made durable before the broker acknowledges them. */
export function journalDir(dataDir: string): string {
  return join(dataDir, 'ingest-journal')
}

/**
 * The ingest journal of worker slot `slot` of `up --workers N` (issue 16): slot 0 is the single
 * process's journal, so switching between one and several workers keeps it; slot k > 0 is
 * `ingest-journal.worker-<k>`, reused by every worker started for that slot.
 */
export function slotJournalDir(dataDir: string, slot: number): string {
  return slot === 0 ? journalDir(dataDir) : `${journalDir(dataDir)}.worker-${slot}`
}

/** A worker slot's broker session store (LevelDB locks its directory per process); slot 0's is the single process's. */
export function slotSessionsDir(dataDir: string, slot: number): string {
  return slot === 0 ? sessionsDir(dataDir) : `${sessionsDir(dataDir)}.worker-${slot}`
}

/**
 * Journal slots at or above `fromSlot` left by an earlier start with more workers: whoever starts
 * now replays and releases them (nothing appends to them any more), so a start with fewer workers
 * loses nothing that was acknowledged.
 */
export async function leftoverJournalSlots(dataDir: string, fromSlot: number): Promise<number[]> {
  const prefix = 'ingest-journal.worker-'
  const names = await readdir(dataDir).catch(() => [] as string[])
  return names
    .filter((name) => name.startsWith(prefix))
    .map((name) => Number(name.slice(prefix.length)))
    .filter((slot) => Number.isSafeInteger(slot) && slot >= fromSlot)
    .sort((a, b) => a - b)
}

export function metricsRegistry(): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  return registry
}

/** Logs a damaged stretch of the ingest journal that was skipped (issue 12 finding 12). */
export function logJournalSkip(logger: Logger, skip: JournalSkip): void {
  logger.error(
    { ...skip },
    skip.lostRecords > 0
      ? 'ingest journal: damaged records skipped; acknowledged readings were lost'
      : 'ingest journal: damaged bytes skipped (remains of a failed write, no record lost)',
  )
}

/** The ingest journal's health on /metrics: failed writes, records lost to damage, torn tails. */
export function registerJournalMetrics(
  registry: Registry,
  journal: { stats: Pick<IngestJournal['stats'], 'skippedRecords' | 'skippedBytes' | 'failures'> },
): void {
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset()
        this.inc(read())
      },
    })
  counter(
    'plantwatt_journal_records_skipped_total',
    'Journal records lost to damage and skipped at open or replay (each also logged)',
    () => journal.stats.skippedRecords,
  )
  counter(
    'plantwatt_journal_bytes_skipped_total',
    'Damaged journal bytes skipped at open or replay',
    () => journal.stats.skippedBytes,
  )
  counter(
    'plantwatt_journal_write_failures_total',
    'Journal writes that failed (their uplinks were refused, not acknowledged)',
    () => journal.stats.failures,
  )
}
