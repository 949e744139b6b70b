import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { HistoryStore, type StoredBucket } from '../src/index.ts'
import { bucket, DAY, MINUTE, T0, tempDir } from './helpers.ts'

// The embedded history store on real files in a temp dir (issue 13): revisions only go up, ranges
// in time order with a limit, retention pruning, and the same rows after a reopen.

const MAX_AGE_S = 7 * 86_400
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function openStore(path?: string): { store: HistoryStore; path: string } {
  let dir = path
  if (dir === undefined) {
    const temp = tempDir()
    cleanups.push(temp.remove)
    dir = temp.path
  }
  const store = new HistoryStore({ path: dir, maxAgeS: MAX_AGE_S })
  cleanups.push(() => store.close())
  return { store, path: dir }
}

describe('history store: revisions only go up', () => {
  it('keeps the stored bucket against a lower or equal revision, replaces it with a higher one', async () => {
    const { store } = openStore()
    const scope = 'yibin/electrode/coating-1'
    expect(await store.write([bucket(scope, '15m', T0, 2, 100)])).toMatchObject({ written: 1, stale: 0 })
    // A replayed journal brings the older figures back: they must not win.
    expect(await store.write([bucket(scope, '15m', T0, 1, 50), bucket(scope, '15m', T0, 2, 60)])).toMatchObject({
      written: 0,
      stale: 2,
    })
    expect((await store.range(scope, '15m', T0, T0 + DAY, 10)).map((r) => [r.revision, r.energyWh])).toEqual([[2, 100]])
    await store.write([bucket(scope, '15m', T0, 3, 120)])
    expect((await store.range(scope, '15m', T0, T0 + DAY, 10)).map((r) => [r.revision, r.energyWh])).toEqual([[3, 120]])
  })

  it('names the rows refused whose figures differ from the stored ones (a replay that must re-send)', async () => {
    // After a restore the processor's revision counters restart from its checkpoint, behind the
    // store: a bucket it re-emits with other figures at a revision the store already holds must be
    // sent again above the stored revision, or the newest figures would never reach the store.
    const { store } = openStore()
    await store.write([bucket('s', '15m', T0, 2, 100), bucket('s', '15m', T0 + 15 * MINUTE, 0, 5)])
    const result = await store.write([
      bucket('s', '15m', T0, 2, 100), // the same bucket again: nothing to do
      bucket('s', '15m', T0, 1, 100), // older revision, same figures: nothing to do
      bucket('s', '15m', T0, 2, 101), // same revision, other figures: conflict
      bucket('s', '15m', T0 + 15 * MINUTE, 0, 6), // conflict with revision 0
    ])
    expect(result.written).toBe(0)
    expect(result.conflicts).toEqual([
      { scope: 's', step: '15m', t: T0, storedRevision: 2 },
      { scope: 's', step: '15m', t: T0 + 15 * MINUTE, storedRevision: 0 },
    ])
    expect((await store.write([bucket('s', '15m', T0, 3, 101)])).conflicts).toEqual([])
  })

  it('within one batch the highest revision wins, in any order', async () => {
    const { store } = openStore()
    await store.write([bucket('s', '1m', T0, 4, 40), bucket('s', '1m', T0, 6, 60), bucket('s', '1m', T0, 5, 50)])
    const [row] = await store.range('s', '1m', T0, T0 + MINUTE, 10)
    expect(row).toMatchObject({ revision: 6, energyWh: 60 })
  })

  it('a revision that lost stays lost after a reopen (the compare reads the stored rows)', async () => {
    const { store, path } = openStore()
    await store.write([bucket('s', '1h', T0, 7, 70)])
    await store.close()
    const again = openStore(path).store
    expect(await again.write([bucket('s', '1h', T0, 0, 1)])).toMatchObject({ written: 0, stale: 1 })
    expect((await again.range('s', '1h', T0, T0 + DAY, 10))[0]).toMatchObject({ revision: 7, energyWh: 70 })
  })
})

describe('history store: ranges', () => {
  it('answers from ≤ t < to of one scope and step, ordered by t, at most limit rows', async () => {
    const { store } = openStore()
    const rows: StoredBucket[] = []
    // Written out of order, with a neighbouring scope whose name extends this one and other steps.
    for (let i = 59; i >= 0; i--) rows.push(bucket('yibin/a/l1', '1m', T0 + i * MINUTE, 0, i))
    for (let i = 0; i < 60; i++) rows.push(bucket('yibin/a/l10', '1m', T0 + i * MINUTE, 0, 1000 + i))
    rows.push(bucket('yibin/a/l1', '15m', T0, 0, 999))
    await store.write(rows)
    const all = await store.range('yibin/a/l1', '1m', T0, T0 + 60 * MINUTE, 1000)
    expect(all.map((r) => r.energyWh)).toEqual([...Array(60).keys()])
    expect(all.map((r) => r.t)).toEqual([...Array(60).keys()].map((i) => T0 + i * MINUTE))
    const part = await store.range('yibin/a/l1', '1m', T0 + 10 * MINUTE, T0 + 20 * MINUTE, 1000)
    expect(part.map((r) => r.energyWh)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
    // `from` inside a minute starts at the next bucket start; `to` is exclusive.
    const inside = await store.range('yibin/a/l1', '1m', T0 + 10 * MINUTE + 1, T0 + 12 * MINUTE + 1, 1000)
    expect(inside.map((r) => r.energyWh)).toEqual([11, 12])
    expect(await store.range('yibin/a/l1', '1m', T0, T0 + 60 * MINUTE, 7)).toHaveLength(7)
    expect(await store.range('yibin/a/unknown', '1m', T0, T0 + 60 * MINUTE, 7)).toEqual([])
  })

  it('answers the open-ended range the gateway asks without from and to (0 to 2^53)', async () => {
    const { store } = openStore()
    await store.write([
      bucket('s', '15m', T0, 0, 1),
      bucket('s', '15m', T0 + 15 * MINUTE, 0, 2),
      bucket('s', '1h', T0, 0, 9),
      bucket('s', '1m', T0, 0, 3),
      bucket('s', '1m', T0 + 5 * MINUTE, 0, 4),
      bucket('t', '1m', T0 + 6 * MINUTE, 0, 5),
    ])
    const all = (step: '1m' | '15m') => store.range('s', step, 0, Number.MAX_SAFE_INTEGER, 100_001)
    expect((await all('15m')).map((r) => r.energyWh)).toEqual([1, 2])
    expect((await all('1m')).map((r) => r.energyWh)).toEqual([3, 4])
  })

  it('reads a range larger than one read slice whole and in order', async () => {
    const { store } = openStore()
    const rows: StoredBucket[] = []
    for (let i = 0; i < 12_345; i++) rows.push(bucket('s', '1m', T0 + i * MINUTE, 0, i))
    await store.write(rows)
    const back = await store.range('s', '1m', T0, T0 + 20_000 * MINUTE, 100_001)
    expect(back).toHaveLength(12_345)
    expect(back.every((r, i) => r.energyWh === i)).toBe(true)
    expect(await store.range('s', '1m', T0, T0 + 20_000 * MINUTE, 10_000)).toHaveLength(10_000)
  })

  it('keeps 15-minute demand apart from the buckets and finds its peak', async () => {
    const { store } = openStore()
    await store.writeDemand([
      { scope: 'yibin', t: T0, kW: 1490.2, revision: 0 },
      { scope: 'yibin', t: T0 + 15 * MINUTE, kW: 1710.5, revision: 0 },
      { scope: 'yibin', t: T0 + 30 * MINUTE, kW: 1600, revision: 0 },
    ])
    await store.writeDemand([{ scope: 'yibin', t: T0 + 15 * MINUTE, kW: 1, revision: 0 }])
    expect((await store.demand('yibin', T0, T0 + DAY, 10)).map((r) => r.kW)).toEqual([1490.2, 1710.5, 1600])
    expect(await store.peakDemand('yibin', T0, T0 + DAY)).toEqual({ t: T0 + 15 * MINUTE, kW: 1710.5, revision: 0 })
    expect(await store.range('yibin', '15m', T0, T0 + DAY, 10)).toEqual([])
  })
})

describe('history store: bad rows', () => {
  it('refuses and counts bad rows without throwing, and stores the good ones of the batch', async () => {
    const { store } = openStore()
    const bad = [
      { ...bucket('', '1m', T0, 0) },
      { ...bucket('s', '2m' as never, T0, 0) },
      { ...bucket('s', '1m', T0 + 1, 0) },
      { ...bucket('s', '1m', -MINUTE, 0) },
      { ...bucket('s', '1m', T0, -1) },
      { ...bucket('s', '1m', T0, 0.5) },
      { ...bucket('s', '1m', T0, 0), co2G: Number.NaN },
      { ...bucket('s', '1m', T0, 0), pvWh: Number.POSITIVE_INFINITY },
      bucket('s', '1m', T0, 0, 42),
    ]
    const result = await store.write(bad)
    expect(result).toEqual({
      written: 1,
      stale: 0,
      rejected: { bad_scope: 1, bad_step: 1, bad_time: 2, bad_revision: 2, bad_figure: 2 },
      conflicts: [],
    })
    expect(store.counters.rejected.bad_time).toBe(2)
    expect((await store.range('s', '1m', T0, T0 + MINUTE, 10)).map((r) => r.energyWh)).toEqual([42])
  })

  it('refuses a 1-minute retention shorter than maxAgeS at open', () => {
    const temp = tempDir()
    cleanups.push(temp.remove)
    expect(() => new HistoryStore({ path: temp.path, maxAgeS: 10 * 86_400, retention: { '1m': 8 * 86_400 } })).toThrow(
      /1m.*maxAgeS/,
    )
  })
})

describe('history store: retention', () => {
  it('prunes each tier behind the site clock and refuses what it pruned, even after a reopen', async () => {
    const { store, path } = openStore()
    const rows: StoredBucket[] = []
    for (let d = 0; d < 10; d++) {
      rows.push(bucket('s', '1m', T0 + d * DAY, 0, d))
      rows.push(bucket('s', '15m', T0 + d * DAY, 0, d))
    }
    rows.push(bucket('s', '1h', T0 - 500 * DAY, 0, -500))
    rows.push(bucket('s', '1d', T0 - 5000 * DAY, 0, -5000))
    await store.write(rows)
    await store.writeDemand([{ scope: 's', t: T0 - 500 * DAY, kW: 1, revision: 0 }])
    // Over one read slice of 1-minute rows to prune: the pruning pass reads them a slice at a time.
    for (let i = 1; i <= 1_400; i++) rows.push(bucket('s', '1m', T0 + 2 * DAY + i * MINUTE, 0, 2))
    await store.write(rows)
    const now = T0 + 10 * DAY
    // 1m keeps 7 days: days 0-2 go, 3-9 stay. 15m keeps 400 days: all stay. 1h and demand at
    // -500 days go; 1d stays for good.
    expect(await store.prune(now)).toBe(3 + 1_400 + 1 + 1)
    expect((await store.range('s', '1m', 0, now, 100)).map((r) => r.energyWh)).toEqual([3, 4, 5, 6, 7, 8, 9])
    expect(await store.range('s', '15m', 0, now, 100)).toHaveLength(10)
    expect(await store.range('s', '1h', 0, now, 100)).toEqual([])
    expect(await store.demand('s', 0, now, 100)).toEqual([])
    expect(await store.range('s', '1d', 0, now, 100)).toHaveLength(1)
    // A replayed journal must not bring pruned rows back.
    expect((await store.write([bucket('s', '1m', T0, 5, 1)])).rejected).toEqual({ expired: 1 })
    await store.close()
    const again = openStore(path).store
    expect((await again.write([bucket('s', '1m', T0 + DAY, 9, 1)])).rejected).toEqual({ expired: 1 })
    expect((await again.write([bucket('s', '1m', T0 + 4 * DAY, 9, 1)])).written).toBe(1)
  })
})

describe('history store: files', () => {
  it('creates its directory, with data.mdb and lock.mdb inside', async () => {
    const temp = tempDir()
    cleanups.push(temp.remove)
    const path = join(temp.path, 'data-dir', 'history')
    const store = new HistoryStore({ path, maxAgeS: MAX_AGE_S })
    await store.write([bucket('s', '1d', T0, 0)])
    await store.close()
    expect(readdirSync(path).sort()).toEqual(['data.mdb', 'lock.mdb'])
  })
})

describe('history store: reopen', () => {
  it('gives back the same rows, figures and optional fields after close and open', async () => {
    const { store, path } = openStore()
    const rows: StoredBucket[] = []
    for (const scope of ['yibin', 'yibin/electrode', 'yibin/electrode/coating-1', 'yibin/electrode/coating-1/oven']) {
      for (let i = 0; i < 96; i++) {
        rows.push({
          ...bucket(scope, '15m', T0 + i * 15 * MINUTE, i % 3, i / 7),
          outputUnits: i,
          pvWh: i * 0.001,
          savedCo2G: 1 / (i + 1),
        })
      }
    }
    await store.write(rows)
    const before = await store.range('yibin/electrode/coating-1', '15m', T0, T0 + DAY, 1000)
    await store.close()
    const again = openStore(path).store
    for (const scope of ['yibin', 'yibin/electrode', 'yibin/electrode/coating-1', 'yibin/electrode/coating-1/oven']) {
      const expected = rows.filter((r) => r.scope === scope).map(({ scope: _s, step: _st, ...rest }) => rest)
      expect(await again.range(scope, '15m', T0, T0 + DAY, 1000)).toEqual(expected)
    }
    expect(await again.range('yibin/electrode/coating-1', '15m', T0, T0 + DAY, 1000)).toEqual(before)
    expect(again.stats()).toMatchObject({ entries: 4 * 96, scopes: 4 })
  })
})

describe('history store: event loop', () => {
  it('yields to the event loop while writing a minute of a large plant', async () => {
    const { store } = openStore()
    const rows: StoredBucket[] = []
    for (let s = 0; s < 30_000; s++) rows.push(bucket(`site/a/l/e${s}`, '1m', T0, 0, s))
    let turns = 0
    let counting = true
    const tick = () => {
      turns++
      if (counting) setImmediate(tick)
    }
    setImmediate(tick)
    await store.write(rows)
    counting = false
    // 30,000 rows in slices of 1,000: the loop ran between slices, not once at the end.
    expect(turns).toBeGreaterThanOrEqual(20)
  })

  it('yields while it checks and sorts a batch too, before it stores any row', async () => {
    // Checking a 30,000-row batch (names, times, figures, duplicates) takes tens of milliseconds:
    // the turns that run before the first row is stored show that this part yields as well.
    const { store } = openStore()
    const rows: StoredBucket[] = []
    for (let s = 0; s < 30_000; s++) rows.push(bucket(`site/a/l/e${s}`, '1m', T0, 0, s))
    let turnsBeforeFirstRow = 0
    let counting = true
    const tick = () => {
      if (store.counters.written === 0) turnsBeforeFirstRow++
      if (counting) setImmediate(tick)
    }
    setImmediate(tick)
    await store.write(rows)
    counting = false
    expect(turnsBeforeFirstRow).toBeGreaterThanOrEqual(20)
  })
})
