import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { HistoryWriterOptions } from '../src/options.ts'
import type { HistoryPoint } from '../src/point.ts'
import { alertPoint, bucketPoint } from '../src/points.ts'
import { HistoryWriter } from '../src/writer.ts'
import { silentLogger, tempDir, waitFor } from '../test/helpers.ts'
import { sinkSuite } from '../test/sink-suite.ts'
import { countSamples, freePort, RecordingProxy, Victoria } from './servers.ts'

/**
 * Against a real VictoriaMetrics (Debian `victoria-metrics`), which takes the InfluxDB v2 write API
 * and keeps duplicate samples (dedup is off by default), so exporting raw samples shows any point
 * written twice. A recording proxy between writer and server shows what was acknowledged, in order.
 */

describe('HistoryWriter → VictoriaMetrics', () => {
  let data: ReturnType<typeof tempDir>
  let vm: Victoria
  let proxy: RecordingProxy | null = null
  let writer: HistoryWriter | null = null
  let spill: ReturnType<typeof tempDir> | null = null

  beforeAll(async () => {
    data = tempDir('plantwatt-vm-')
    vm = new Victoria(await freePort(), data.path)
    await vm.start()
  })
  afterAll(async () => {
    await vm?.kill()
    data?.remove()
  })
  afterEach(async () => {
    await writer?.stop()
    writer = null
    await proxy?.stop()
    proxy = null
    spill?.remove()
    spill = null
    // A test that killed the server leaves it running again for the next one.
    if (!(await vm.healthy())) await vm.start()
  })

  async function open(options: Partial<HistoryWriterOptions> = {}, via: 'proxy' | 'direct' = 'proxy') {
    if (via === 'proxy' && !proxy) {
      proxy = new RecordingProxy(vm.port)
      await proxy.start()
    }
    spill ??= tempDir()
    const w = new HistoryWriter({
      url: via === 'proxy' ? proxy!.url : vm.url,
      org: 'plantwatt',
      bucket: 'history',
      directory: spill.path,
      logger: silentLogger,
      minRetryDelayMs: 20,
      maxRetryDelayMs: 200,
      ...options,
    })
    await w.start()
    return w
  }

  it('(1) buckets and alerts arrive with the right tags and values', async () => {
    const t = Date.now() - 600_000
    writer = await open({}, 'direct')
    writer.write([
      bucketPoint({
        scope: 'yibin/electrode/coating-1/coater-1-oven',
        step: '1m',
        t,
        energyWh: 4166.5,
        co2G: 2020,
        co2MarketG: 1600,
        idleWh: 12.25,
        peakW: 251000,
        revision: 0,
      }),
      bucketPoint({
        scope: 'yibin',
        step: '15m',
        t,
        energyWh: 372550,
        co2G: 175100,
        co2MarketG: 138300,
        idleWh: 9100,
        peakW: 1530000,
        revision: 2,
      }),
      alertPoint({
        id: 'idle-7',
        kind: 'idle',
        state: 'raised',
        severity: 'warning',
        scope: 'yibin/electrode/coating-1/coater-1-oven',
        at: t + 1,
        since: t - 300_000,
        message: 'Coater oven idle, "fan on"',
        data: { powerW: 41000 },
        seq: 121,
      }),
    ])
    expect(await writer.drain(10_000)).toBe(true)
    const energy = await vm.export('{__name__="bucket_energyWh"}')
    const byScope = Object.fromEntries(energy.map((s) => [s.metric.equipment ?? s.metric.site, s]))
    expect(byScope['coater-1-oven']).toEqual({
      metric: {
        __name__: 'bucket_energyWh',
        site: 'yibin',
        area: 'electrode',
        line: 'coating-1',
        equipment: 'coater-1-oven',
        step: '1m',
      },
      values: [4166.5],
      timestamps: [t],
    })
    expect(byScope.yibin).toEqual({
      metric: { __name__: 'bucket_energyWh', site: 'yibin', step: '15m' },
      values: [372550],
      timestamps: [t],
    })
    const revision = await vm.export('{__name__="bucket_revision",step="15m"}')
    expect(revision[0]!.values).toEqual([2])
    expect((await vm.export('{__name__="bucket_idleWh",step="1m"}'))[0]!.values).toEqual([12.25])
    const seq = await vm.export('{__name__="alert_seq"}')
    expect(seq).toEqual([
      {
        metric: {
          __name__: 'alert_seq',
          site: 'yibin',
          area: 'electrode',
          line: 'coating-1',
          equipment: 'coater-1-oven',
          kind: 'idle',
          state: 'raised',
          severity: 'warning',
          id: 'idle-7',
        },
        values: [121],
        timestamps: [t + 1],
      },
    ])
    expect((await vm.export('{__name__="alert_powerW"}'))[0]!.values).toEqual([41000])
  })

  it('(2) SIGKILL of the server mid-run at a steady rate: every point acknowledged once, in order, none stored twice', async () => {
    writer = await open({ batchSize: 1000, segmentMaxPoints: 2000 })
    const w = writer
    const base = Date.now() - 3_600_000
    const total = 15_000
    const perTick = 30 // every 10 ms: 3,000 points/s for 5 s
    const point = (i: number): HistoryPoint => ({
      measurement: 'kill',
      tags: { site: 's', line: `l${i % 5}` },
      fields: { v: i },
      timeMs: base + i,
    })
    const lines: string[] = []
    let produced = 0
    const producing = new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const batch: HistoryPoint[] = []
        for (let k = 0; k < perTick && produced < total; k++) batch.push(point(produced++))
        w.write(batch)
        if (produced >= total) {
          clearInterval(timer)
          resolve()
        }
      }, 10)
    })

    await waitFor(() => w.stats().written >= 3000, 10_000, '3,000 points written')
    await vm.kill('SIGKILL')
    // Taken once the process is gone, not before the signal: an answer can still come back in the
    // moment between deciding to kill and the signal landing, and the server may lose it too.
    const killedAt = Date.now()
    await waitFor(() => !w.stats().healthy, 10_000, 'the writer to notice')
    await waitFor(() => w.stats().queuedDisk > 0, 10_000, 'points spilled')
    const producedWhileDown = produced
    await vm.start()
    await producing
    expect(producedWhileDown).toBeLessThan(total) // the outage was mid-run
    expect(await w.drain(30_000)).toBe(true)

    for (let i = 0; i < total; i++) {
      const p = point(i)
      lines.push(`kill,line=${p.tags.line},site=s v=${i} ${base + i}`)
    }
    // The writer's side: every point acknowledged exactly once, in production order.
    expect(proxy!.acknowledged()).toEqual(lines)
    expect(w.stats()).toMatchObject({ accepted: total, written: total, queuedDisk: 0, queuedMemory: 0, healthy: true })
    expect(w.stats().retries).toBeGreaterThan(0)

    // The server's side: no sample twice. VictoriaMetrics buffers acknowledged samples in memory for
    // a few seconds before they reach its files, and documents that kill -9 loses them; so a missing
    // sample is allowed only if the server acknowledged it (2xx) before it was killed.
    const counts = countSamples(await vm.export('{__name__="kill_v"}'))
    const twice = [...counts].filter(([, n]) => n > 1)
    expect(twice).toEqual([])
    const ackedBeforeKill = new Set<number>()
    for (const r of proxy!.requests) {
      if (r.status === 204 && r.at <= killedAt)
        for (const l of r.lines) ackedBeforeKill.add(Number(l.split(' ')[2]) - base)
    }
    const missing: number[] = []
    for (let i = 0; i < total; i++) {
      if (counts.get(`__name__=kill_v,line=l${i % 5},site=s@${base + i}`) !== 1) missing.push(i)
    }
    const notExplained = missing.filter((i) => !ackedBeforeKill.has(i))
    expect(notExplained).toEqual([])
    if (missing.length > 0) {
      console.info(
        `VictoriaMetrics lost ${missing.length} of ${ackedBeforeKill.size} samples it had acknowledged before SIGKILL (its in-memory buffer); all ${total - ackedBeforeKill.size} later points arrived exactly once`,
      )
    }
  }, 60_000)

  it('(3) writer restart while the server is down: spilled points arrive exactly once and in order', async () => {
    const base = Date.now() - 7_200_000
    const point = (i: number): HistoryPoint => ({
      measurement: 'restart',
      tags: { site: 's' },
      fields: { v: i },
      timeMs: base + i,
    })
    const lineOf = (i: number) => `restart,site=s v=${i} ${base + i}`
    const first = await open({ batchSize: 500, segmentMaxPoints: 1000 })
    writer = first
    first.write(Array.from({ length: 100 }, (_, i) => point(i)))
    expect(await first.drain(10_000)).toBe(true)
    // An orderly server stop, so that the server keeps what it acknowledged: this test is about the writer.
    await vm.kill('SIGTERM')
    for (let i = 100; i < 5100; i += 100) first.write(Array.from({ length: 100 }, (_, k) => point(i + k)))
    await waitFor(() => !first.stats().healthy, 10_000, 'the writer to notice')
    await first.stop()
    expect(first.stats()).toMatchObject({ written: 100, queuedMemory: 0, queuedDisk: 5000 })

    const second = await open({ batchSize: 500, segmentMaxPoints: 1000 })
    writer = second
    expect(second.stats().queuedDisk).toBe(5000)
    second.write(Array.from({ length: 500 }, (_, k) => point(5100 + k)))
    await vm.start()
    expect(await second.drain(30_000)).toBe(true)

    const expected = Array.from({ length: 5600 }, (_, i) => lineOf(i))
    expect(proxy!.acknowledged()).toEqual(expected)
    const counts = countSamples(await vm.export('{__name__="restart_v"}'))
    expect(counts.size).toBe(5600)
    expect([...counts.values()].every((n) => n === 1)).toBe(true)
  }, 60_000)
})

describe('shared suite on VictoriaMetrics', () => {
  let data: ReturnType<typeof tempDir>
  let vm: Victoria
  beforeAll(async () => {
    data = tempDir('plantwatt-vm-')
    vm = new Victoria(await freePort(), data.path)
    await vm.start()
  })
  afterAll(async () => {
    await vm?.kill()
    data?.remove()
  })

  sinkSuite('HistoryWriter → recording proxy → VictoriaMetrics', async () => {
    const dir = tempDir()
    const proxy = new RecordingProxy(vm.port)
    await proxy.start()
    const sink = new HistoryWriter({
      url: proxy.url,
      org: 'o',
      bucket: 'b',
      directory: dir.path,
      logger: silentLogger,
      batchSize: 64,
    })
    return {
      sink,
      received: async () => proxy.acknowledged(),
      close: async () => {
        await proxy.stop()
        dir.remove()
      },
    }
  })
})
