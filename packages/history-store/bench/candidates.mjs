// Candidate embedded stores on bucket data (issue 13): LMDB (lmdb), LevelDB (classic-level) and
// DuckDB (@duckdb/node-api), each written as the processor writes buckets: one batch a minute of
// SCOPES 1-minute rows, plus 15m/1h rows at their boundaries, 1 % of them revised later. Then the two
// queries of issue 13 (a month of 15m for one scope, a year of 1d for one scope) with the table
// holding HOURS of minutes, and read latency while a batch is being written.
//
// Not part of the workspace: run it where the three candidates are installed, e.g.
//   mkdir /tmp/c && cd /tmp/c && npm init -y && npm i lmdb@3.5.6 classic-level@3.0.0 @duckdb/node-api@1.5.6-r.1
//   cp <repo>/packages/history-store/bench/candidates.mjs . && node candidates.mjs [hours]
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'

const SCOPES = 27_636
const HOURS = Number(process.argv[2] ?? 2)
const WHICH = (process.argv[3] ?? 'lmdb,level,duckdb').split(',')
const DIR = '/tmp/hs-cand/data'
const T0 = Math.floor(Date.UTC(2026, 0, 1) / 60_000) // minutes

function key(scope, step, minute) {
  const k = Buffer.allocUnsafe(9)
  k.writeUInt32BE(scope, 0)
  k.writeUInt8(step, 4)
  k.writeUInt32BE(minute, 5)
  return k
}
function value(rev, e) {
  const v = Buffer.allocUnsafe(4 + 6 * 8)
  v.writeUInt32LE(rev, 0)
  for (let i = 0; i < 6; i++) v.writeDoubleLE(e * (i + 1), 4 + i * 8)
  return v
}
function du(path) {
  let s = 0
  const st = statSync(path)
  if (!st.isDirectory()) return st.blocks * 512
  for (const f of readdirSync(path)) s += du(join(path, f))
  return s
}
function pct(a, p) {
  const s = [...a].sort((x, y) => x - y)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}
/** The batches a processor would write: every minute, plus the 15m/1h/1d rows at their ends. */
function* batches() {
  for (let m = T0; m < T0 + HOURS * 60; m++) {
    const rows = []
    for (let s = 0; s < SCOPES; s++) rows.push([s, 0, m, 0, (s % 997) + m])
    if ((m + 1) % 15 === 0) for (let s = 0; s < SCOPES; s++) rows.push([s, 1, m - 14, 0, s + m])
    if ((m + 1) % 60 === 0) for (let s = 0; s < SCOPES; s++) rows.push([s, 2, m - 59, 0, s + m])
    // 1 % revisions of the minute before
    for (let s = 0; s < SCOPES; s += 100) rows.push([s, 0, m - 1, 1, s + m + 0.5])
    yield rows
  }
}
/** A year of 15m and 1d for scope 7 (the queried ones), written once before the queries. */
function* yearOf(scope) {
  const rows = []
  for (let q = 0; q < 365 * 96; q++) rows.push([scope, 1, T0 - 365 * 1440 + q * 15, 0, q])
  for (let d = 0; d < 365; d++) rows.push([scope, 3, T0 - 365 * 1440 + d * 1440, 0, d])
  yield rows
}

let usedBytes
const eld = monitorEventLoopDelay({ resolution: 1 })

async function run(name, store) {
  rmSync(DIR, { recursive: true, force: true })
  mkdirSync(DIR, { recursive: true })
  await store.open(join(DIR, name))
  for (const rows of yearOf(7)) await store.write(rows)
  eld.reset()
  eld.enable()
  let n = 0
  const started = performance.now()
  const batchMs = []
  for (const rows of batches()) {
    const t = performance.now()
    await store.write(rows)
    batchMs.push(performance.now() - t)
    n += rows.length
  }
  const writeS = (performance.now() - started) / 1000
  eld.disable()
  const writeEld = eld.percentile(99) / 1e6
  const month = []
  const year = []
  const monthFrom = T0 - 40 * 1440
  for (let i = 0; i < 200; i++) {
    let t = performance.now()
    const a = await store.range(7, 1, monthFrom, monthFrom + 30 * 1440)
    month.push(performance.now() - t)
    if (a.length !== 2880) throw new Error(`${name}: month gave ${a.length}`)
    t = performance.now()
    const b = await store.range(7, 3, T0 - 365 * 1440, T0)
    year.push(performance.now() - t)
    if (b.length !== 365) throw new Error(`${name}: year gave ${b.length}`)
  }
  // The 1-minute rows of one scope over the whole write phase: written one per batch, spread over
  // HOURS × 60 batches as real bucket rows arrive (the year above was written in one batch, so a
  // columnar store finds it clustered; these rows it does not).
  const spread = []
  for (let i = 0; i < 50; i++) {
    const t = performance.now()
    const c = await store.range(7, 0, T0, T0 + HOURS * 60)
    spread.push(performance.now() - t)
    if (c.length !== HOURS * 60) throw new Error(`${name}: spread gave ${c.length}`)
  }
  // Read while a batch is being written.
  const during = []
  const rows = batches()
    .next()
    .value.map((r) => [r[0], r[1], r[2], 5, r[4]])
  const w = store.write(rows)
  for (let i = 0; i < 20; i++) {
    const t = performance.now()
    await store.range(7, 1, monthFrom, monthFrom + 30 * 1440)
    during.push(performance.now() - t)
  }
  await w
  await store.close()
  const bytes = usedBytes ?? du(DIR)
  usedBytes = undefined
  const total = n + 365 * 97
  console.log(
    JSON.stringify({
      store: name,
      rows: total,
      rowsPerS: Math.round(n / writeS),
      batchP50Ms: +pct(batchMs, 50).toFixed(1),
      batchP99Ms: +pct(batchMs, 99).toFixed(1),
      eventLoopP99DuringWritesMs: +writeEld.toFixed(1),
      monthQ15mP50Ms: +pct(month, 50).toFixed(3),
      monthQ15mP99Ms: +pct(month, 99).toFixed(3),
      yearQ1dP50Ms: +pct(year, 50).toFixed(3),
      yearQ1dP99Ms: +pct(year, 99).toFixed(3),
      monthQDuringWriteP50Ms: +pct(during, 50).toFixed(3),
      spread1mP50Ms: +pct(spread, 50).toFixed(3),
      spread1mP99Ms: +pct(spread, 99).toFixed(3),
      bytesPerRow: +(bytes / total).toFixed(1),
    }),
  )
}

const stores = {
  lmdb: async () => {
    const { open } = await import('lmdb')
    let db
    return {
      async open(path) {
        db = open({ path, keyEncoding: 'binary', encoding: 'binary', compression: false })
      },
      async write(rows) {
        // Revisions only go up: compare with a synchronous read from the memory map (µs), then
        // queue puts that the write thread commits as one transaction; yield every 2,000 rows so
        // that the event loop is never held long.
        let last
        for (let i = 0; i < rows.length; i++) {
          const [s, st, m, rev, e] = rows[i]
          const k = key(s, st, m)
          const old = db.getBinaryFast(k)
          if (old !== undefined && old.readUInt32LE(0) >= rev) continue
          last = db.put(k, value(rev, e))
          if (i % 2000 === 1999) await new Promise((r) => setImmediate(r))
        }
        await last
      },
      async range(s, st, from, to) {
        const out = []
        for (const { value: v } of db.getRange({ start: key(s, st, from), end: key(s, st, to) }))
          out.push(v.readDoubleLE(4))
        return out
      },
      async close() {
        const st = db.getStats()
        usedBytes = (st.treeBranchPageCount + st.treeLeafPageCount + st.overflowPages) * st.pageSize
        await db.close()
      },
    }
  },
  // LMDB with the 1-minute tier time-major: key (minute, scope), so a minute's batch appends to
  // the end of the tree instead of touching one page per scope; the 15m/1h/1d keys stay
  // scope-major for range reads.
  'lmdb-tm': async () => {
    const { open } = await import('lmdb')
    let root
    let db
    let minutes
    const mkey = (s, m) => {
      const k = Buffer.allocUnsafe(8)
      k.writeUInt32BE(m, 0)
      k.writeUInt32BE(s, 4)
      return k
    }
    return {
      async open(path) {
        root = open({ path, maxDbs: 2, compression: false })
        db = root.openDB({ name: 'rows', keyEncoding: 'binary', encoding: 'binary' })
        minutes = root.openDB({ name: 'minutes', keyEncoding: 'binary', encoding: 'binary' })
      },
      async write(rows) {
        let last
        for (let i = 0; i < rows.length; i++) {
          const [s, st, m, rev, e] = rows[i]
          const target = st === 0 ? minutes : db
          const k = st === 0 ? mkey(s, m) : key(s, st, m)
          const old = target.getBinaryFast(k)
          if (old !== undefined && old.readUInt32LE(0) >= rev) continue
          last = target.put(k, value(rev, e))
          if (i % 1000 === 999) await new Promise((r) => setImmediate(r))
        }
        await last
      },
      async range(s, st, from, to) {
        const out = []
        if (st === 0) {
          for (let m = from; m < to; m++) {
            const v = minutes.getBinaryFast(mkey(s, m))
            if (v !== undefined) out.push(v.readDoubleLE(4))
          }
          return out
        }
        for (const { value: v } of db.getRange({ start: key(s, st, from), end: key(s, st, to) }))
          out.push(v.readDoubleLE(4))
        return out
      },
      async close() {
        let pages = 0
        let ps = 4096
        for (const d of [db, minutes]) {
          const st = d.getStats()
          pages += st.treeBranchPageCount + st.treeLeafPageCount + st.overflowPages
          ps = st.pageSize
        }
        usedBytes = pages * ps
        await root.close()
      },
    }
  },
  level: async () => {
    const { ClassicLevel } = await import('classic-level')
    let db
    return {
      async open(path) {
        db = new ClassicLevel(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
        await db.open()
      },
      async write(rows) {
        // LevelDB has no compare-and-set: the revision check reads first (getMany), then writes.
        const keys = rows.map(([s, st, m]) => key(s, st, m))
        const old = await db.getMany(keys)
        const ops = []
        for (let i = 0; i < rows.length; i++) {
          const [, , , rev, e] = rows[i]
          if (old[i] !== undefined && old[i].readUInt32LE(0) >= rev) continue
          ops.push({ type: 'put', key: keys[i], value: value(rev, e) })
        }
        await db.batch(ops)
      },
      async range(s, st, from, to) {
        const out = []
        for await (const v of db.values({ gte: key(s, st, from), lt: key(s, st, to) })) out.push(v.readDoubleLE(4))
        return out
      },
      async close() {
        await db.close()
      },
    }
  },
  duckdb: async () => {
    const { DuckDBInstance } = await import('@duckdb/node-api')
    let inst
    let con
    return {
      async open(path) {
        inst = await DuckDBInstance.create(`${path}.duckdb`)
        con = await inst.connect()
        await con.run(`create table b (scope integer, step tinyint, t integer, revision integer,
          e double, c double, cm double, i double, p double, x double, primary key (scope, step, t))`)
        await con.run(
          'create table s (scope integer, step tinyint, t integer, revision integer, e double, c double, cm double, i double, p double, x double)',
        )
      },
      async write(rows) {
        const app = await con.createAppender('s')
        for (const [s, st, m, rev, e] of rows) {
          app.appendInteger(s)
          app.appendTinyInt(st)
          app.appendInteger(m)
          app.appendInteger(rev)
          for (let i = 0; i < 6; i++) app.appendDouble(e * (i + 1))
          app.endRow()
        }
        app.closeSync()
        await con.run(`insert into b select * from s where true on conflict do update set revision = excluded.revision,
          e = excluded.e, c = excluded.c, cm = excluded.cm, i = excluded.i, p = excluded.p, x = excluded.x
          where excluded.revision > b.revision`)
        await con.run('delete from s')
      },
      async range(s, st, from, to) {
        const r = await con.runAndReadAll(
          `select t, e from b where scope = ${s} and step = ${st} and t >= ${from} and t < ${to} order by t`,
        )
        return r.getRows()
      },
      async close() {
        con.closeSync()
        inst.closeSync()
      },
    }
  },
}

for (const name of WHICH) await run(name, await stores[name]())
