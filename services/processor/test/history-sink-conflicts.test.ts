import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BucketEvent } from '@plantwatt/accounting'
import { HistoryStore } from '@plantwatt/history-store'
import pino from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { HistoryStoreSink } from '../src/history-sink.ts'

// After a restore, the processor may send a bucket at a revision counted from its checkpoint,
// at or below the one the store already holds, with other figures (a replay that sent a bucket
// before the late readings that revised it were replayed). The store keeps its row; the sink
// counts the conflict and has the bucket sent again above the stored revision: from accounting's
// figures when it still holds the whole bucket, else the stored figures, so that every subscriber
// ends on what the store holds (CONTRACT.md §5: revisions only go up). A real LMDB store.

const T = Date.UTC(2025, 0, 1, 16)

function bucket(revision: number, energyWh: number): BucketEvent {
  return {
    scope: 'yibin/electrode',
    step: '15m',
    t: T,
    energyWh,
    co2G: energyWh / 2,
    co2MarketG: energyWh / 3,
    idleWh: 0,
    peakW: 1000,
    revision,
    pvWh: 0,
    idleCo2G: 0,
  }
}

describe('history store sink: conflicts after a restore', () => {
  let dir: string
  let store: HistoryStore

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-sink-conflicts-'))
    store = new HistoryStore({ path: join(dir, 'history'), maxAgeS: 7 * 86_400 })
    await store.write([bucket(2, 500)])
  })

  afterEach(async () => {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('asks accounting to send the bucket again above the stored revision', async () => {
    const asked: [number, number][] = []
    const sink = new HistoryStoreSink({
      store,
      logger: pino({ level: 'silent' }),
      reviseAbove: (event, storedRevision) => {
        asked.push([event.energyWh, storedRevision])
        return true
      },
      publish: () => {},
    })
    sink.write([bucket(1, 480)])
    await sink.written()
    expect(sink.counters.conflicts).toBe(1)
    expect(asked).toEqual([[480, 2]])
    // The store kept its row.
    expect(store.get('yibin/electrode', '15m', T)).toMatchObject({ energyWh: 500, revision: 2 })
  })

  it('sends the stored figures one revision up when accounting no longer holds the bucket', async () => {
    const published: BucketEvent[] = []
    const sink = new HistoryStoreSink({
      store,
      logger: pino({ level: 'silent' }),
      reviseAbove: () => false,
      publish: (events) => published.push(...events),
    })
    sink.write([bucket(0, 480)])
    await sink.written()
    expect(sink.counters.conflicts).toBe(1)
    expect(published).toEqual([{ ...bucket(3, 500) }])
    expect(store.get('yibin/electrode', '15m', T)).toMatchObject({ energyWh: 500, revision: 3 })
  })

  it('takes the same figures at or below the stored revision as stale, not as a conflict', async () => {
    const sink = new HistoryStoreSink({
      store,
      logger: pino({ level: 'silent' }),
      reviseAbove: () => {
        throw new Error('no conflict expected')
      },
      publish: () => {},
    })
    sink.write([bucket(1, 500)])
    await sink.written()
    // (Its 15-minute demand interval is new to the store, and written.)
    expect(sink.counters).toMatchObject({ conflicts: 0, stale: 1 })
    expect(store.get('yibin/electrode', '15m', T)).toMatchObject({ energyWh: 500, revision: 2 })
  })
})
