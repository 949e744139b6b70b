import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DEAD_LETTER_FILE } from '../src/dead-letter.ts'
import type { HistoryWriterOptions } from '../src/options.ts'
import type { HistoryPoint } from '../src/point.ts'
import { HistoryWriter } from '../src/writer.ts'
import { FakeSender, silentLogger, tempDir, waitFor } from './helpers.ts'

const point = (i: number, extra: Record<string, number> = {}): HistoryPoint => ({
  measurement: 'bucket',
  tags: { site: 's', step: '1m' },
  fields: { energyWh: i, ...extra },
  timeMs: 1_700_000_000_000 + i,
})
const lineOf = (i: number) => `bucket,site=s,step=1m energyWh=${i} ${1_700_000_000_000 + i}`
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i)

describe('HistoryWriter batching, splitting and retries (in-process sender)', () => {
  let dir: ReturnType<typeof tempDir>
  const writers: HistoryWriter[] = []
  afterEach(async () => {
    for (const w of writers.splice(0)) await w.stop()
    dir?.remove()
  })

  function open(sender: FakeSender, options: Partial<HistoryWriterOptions> = {}) {
    const writer = new HistoryWriter(
      {
        url: 'http://127.0.0.1:1',
        org: 'o',
        bucket: 'b',
        directory: dir.path,
        logger: silentLogger,
        batchSize: 100,
        minRetryDelayMs: 5,
        maxRetryDelayMs: 20,
        random: () => 0.5,
        ...options,
      },
      sender,
    )
    writers.push(writer)
    return writer
  }

  it('sends batches of at most batchSize lines, in order', async () => {
    dir = tempDir()
    const sender = new FakeSender()
    const writer = open(sender, { batchSize: 40 })
    await writer.start()
    writer.write(range(0, 250).map((i) => point(i)))
    expect(await writer.drain(5000)).toBe(true)
    expect(sender.received).toEqual(range(0, 250).map(lineOf))
    expect(Math.max(...sender.requests.map((r) => r.lines.length))).toBe(40)
  })

  it('isolates a bad line by bisection on 400, writes the rest and dead-letters it', async () => {
    dir = tempDir()
    const sender = new FakeSender()
    const bad = lineOf(37)
    sender.answer = (lines) => (lines.includes(bad) ? 400 : 204)
    const writer = open(sender)
    await writer.start()
    writer.write(range(0, 100).map((i) => point(i)))
    expect(await writer.drain(5000)).toBe(true)
    expect(sender.received).toEqual(
      range(0, 100)
        .filter((i) => i !== 37)
        .map(lineOf),
    )
    const stats = writer.stats()
    expect(stats.refused.bad_request).toBe(1)
    expect(stats.written).toBe(99)
    expect(stats.healthy).toBe(true)
    // Bisection, then growing again: far fewer requests than one per line.
    expect(sender.requests.length).toBeLessThan(30)
    const dead = readFileSync(join(dir.path, DEAD_LETTER_FILE), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(dead).toEqual([expect.objectContaining({ status: 400, reason: 'bad_request', line: bad })])
  })

  it('treats 422 like 400 and counts it as unprocessable', async () => {
    dir = tempDir()
    const sender = new FakeSender()
    sender.answer = (lines) => (lines.includes(lineOf(3)) || lines.includes(lineOf(8)) ? 422 : 204)
    const writer = open(sender)
    await writer.start()
    writer.write(range(0, 10).map((i) => point(i)))
    expect(await writer.drain(5000)).toBe(true)
    expect(writer.stats().refused.unprocessable).toBe(2)
    expect(sender.received).toEqual([0, 1, 2, 4, 5, 6, 7, 9].map(lineOf))
  })

  it('halves the batch on 413 until it fits, and keeps the smaller size', async () => {
    dir = tempDir()
    const sender = new FakeSender()
    sender.answer = (lines) => (lines.length > 30 ? 413 : 204)
    const writer = open(sender, { batchSize: 100 })
    await writer.start()
    writer.write(range(0, 200).map((i) => point(i)))
    expect(await writer.drain(5000)).toBe(true)
    expect(sender.received).toEqual(range(0, 200).map(lineOf))
    expect(sender.requests.filter((r) => r.status === 413).map((r) => r.lines.length)).toEqual([100, 50])
    expect(writer.stats().refused.too_large).toBe(0)
  })

  it('keeps data through 5xx, network-like and 401 failures, spilling it to disk, and reports unhealthy', async () => {
    dir = tempDir()
    const sender = new FakeSender()
    let status = 401
    sender.answer = () => status
    const writer = open(sender)
    await writer.start()
    writer.write(range(0, 50).map((i) => point(i)))
    await waitFor(() => writer.stats().retries >= 2, 5000, 'retries')
    let stats = writer.stats()
    expect(stats.healthy).toBe(false)
    expect(stats.unhealthyReason).toMatch(/configuration.*401/)
    expect(stats.queuedMemory).toBe(0)
    expect(stats.queuedDisk).toBe(50)
    expect(readdirSync(dir.path).some((f) => f.endsWith('.seg'))).toBe(true)
    // While unhealthy, new points go straight to disk.
    writer.write(range(50, 60).map((i) => point(i)))
    expect(writer.stats().queuedDisk).toBe(60)
    status = 503
    await waitFor(() => writer.stats().lastError?.startsWith('503') === true, 5000, '503')
    status = 204
    expect(await writer.drain(5000)).toBe(true)
    stats = writer.stats()
    expect(stats).toMatchObject({ written: 60, healthy: true, unhealthyReason: null, queuedDisk: 0, diskBytes: 0 })
    expect(sender.received).toEqual(range(0, 60).map(lineOf))
    expect(readdirSync(dir.path).filter((f) => f.endsWith('.seg'))).toEqual([])
  })

  it('spills beyond maxMemoryPoints and still delivers in order', async () => {
    dir = tempDir()
    const sender = new FakeSender()
    const writer = open(sender, { maxMemoryPoints: 30, segmentMaxPoints: 20, batchSize: 25 })
    await writer.start()
    // No await between writes: the sender cannot run, so the memory bound is reached.
    for (let i = 0; i < 100; i += 10) writer.write(range(i, i + 10).map((k) => point(k)))
    const stats = writer.stats()
    expect(stats.queuedMemory).toBe(30)
    expect(stats.queuedDisk).toBe(70)
    expect(await writer.drain(5000)).toBe(true)
    expect(sender.received).toEqual(range(0, 100).map(lineOf))
  })

  it('stops with the server down: everything queued is on disk and a new writer sends it first, once, in order', async () => {
    dir = tempDir()
    const down = new FakeSender()
    down.answer = () => 503
    const first = open(down)
    await first.start()
    first.write(range(0, 30).map((i) => point(i)))
    await waitFor(() => first.stats().retries >= 1, 5000, 'a failure')
    first.write(range(30, 40).map((i) => point(i)))
    await first.stop()
    await first.stop()
    expect(existsSync(join(dir.path, 'lock'))).toBe(false)
    const up = new FakeSender()
    const second = open(up)
    await second.start()
    expect(second.stats().queuedDisk).toBe(40)
    second.write(range(40, 45).map((i) => point(i)))
    expect(await second.drain(5000)).toBe(true)
    expect(up.received).toEqual(range(0, 45).map(lineOf))
  })

  it('waits what Retry-After says (seconds) on 429', async () => {
    dir = tempDir()
    const sender = new FakeSender()
    let calls = 0
    sender.answer = () => (++calls === 1 ? { status: 429, retryAfter: '1' } : 204)
    const writer = open(sender, { random: () => 0 })
    await writer.start()
    const started = Date.now()
    writer.write([point(1)])
    expect(await writer.drain(5000)).toBe(true)
    const waited = Date.now() - started
    expect(waited).toBeGreaterThanOrEqual(990)
    expect(waited).toBeLessThan(2000)
  })

  it('stops dead-lettering when the server refuses every line, and keeps the data', async () => {
    dir = tempDir()
    const sender = new FakeSender()
    sender.answer = () => 400
    const writer = open(sender, { batchSize: 1 })
    await writer.start()
    writer.write(range(0, 150).map((i) => point(i)))
    await waitFor(() => writer.stats().retries >= 2, 5000, 'held')
    const stats = writer.stats()
    expect(stats.refused.bad_request).toBe(100)
    expect(stats.healthy).toBe(false)
    expect(stats.unhealthyReason).toMatch(/refuses every line/)
    expect(stats.queuedDisk + stats.queuedMemory).toBe(50)
  })

  it('refuses queue_full beyond maxDiskBytes and counts it', async () => {
    dir = tempDir()
    const sender = new FakeSender()
    sender.answer = () => 503
    const writer = open(sender, { maxDiskBytes: 65_536, segmentMaxPoints: 100 })
    await writer.start()
    writer.write([point(0)])
    await waitFor(() => !writer.stats().healthy, 5000, 'unhealthy')
    for (let i = 1; i < 3000; i += 100) writer.write(range(i, i + 100).map((k) => point(k)))
    const stats = writer.stats()
    expect(stats.refused.queue_full).toBeGreaterThan(0)
    expect(stats.accepted + stats.refused.queue_full).toBe(3001)
    expect(stats.diskBytes).toBeLessThanOrEqual(65_536)
  })
})
