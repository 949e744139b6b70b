import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DEAD_LETTER_FILE } from '../src/dead-letter.ts'
import type { HistoryWriterOptions } from '../src/options.ts'
import type { HistoryPoint } from '../src/point.ts'
import { HistoryWriter } from '../src/writer.ts'
import { silentLogger, tempDir, waitFor } from '../test/helpers.ts'
import { sinkSuite } from '../test/sink-suite.ts'
import { StubServer } from './servers.ts'

/**
 * Status-code behaviour through the real HTTP path (the client's transport, gzip, headers) against
 * a node:http stub, since VictoriaMetrics cannot be made to answer 400/401/413/429.
 */

const point = (i: number): HistoryPoint => ({
  measurement: 'bucket',
  tags: { site: 'stub', step: '1m' },
  fields: { energyWh: i },
  timeMs: 1_700_000_000_000 + i,
})
const lineOf = (i: number) => `bucket,site=stub,step=1m energyWh=${i} ${1_700_000_000_000 + i}`
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i)

sinkSuite('HistoryWriter over HTTP (node:http stub)', async () => {
  const dir = tempDir()
  const stub = new StubServer()
  await stub.start()
  const sink = new HistoryWriter({
    url: stub.url,
    org: 'o',
    bucket: 'b',
    directory: dir.path,
    logger: silentLogger,
    batchSize: 64,
  })
  return {
    sink,
    received: async () => stub.received,
    close: async () => {
      await stub.stop()
      dir.remove()
    },
  }
})

describe('HistoryWriter answers to status codes (node:http stub)', () => {
  let dir: ReturnType<typeof tempDir>
  let stub: StubServer
  let writer: HistoryWriter | null = null

  afterEach(async () => {
    await writer?.stop()
    writer = null
    await stub?.stop()
    dir?.remove()
  })

  async function open(options: Partial<HistoryWriterOptions> = {}) {
    dir = tempDir()
    stub = new StubServer()
    await stub.start()
    writer = new HistoryWriter({
      url: stub.url,
      token: 'secret-token',
      org: 'plant org',
      bucket: 'history',
      directory: dir.path,
      logger: silentLogger,
      batchSize: 200,
      minRetryDelayMs: 10,
      maxRetryDelayMs: 50,
      ...options,
    })
    await writer.start()
    return writer
  }

  it('posts to /api/v2/write with org, bucket, ms precision, the token, and gzip for large bodies', async () => {
    const w = await open({ gzipThreshold: 100 })
    w.write(range(0, 50).map(point))
    expect(await w.drain(5000)).toBe(true)
    const [first] = stub.requests
    expect(first!.url).toBe('/api/v2/write?org=plant+org&bucket=history&precision=ms')
    expect(first!.headers.authorization).toBe('Token secret-token')
    expect(first!.headers['content-encoding']).toBe('gzip')
    expect(stub.received).toEqual(range(0, 50).map(lineOf))
  })

  it('400: splits the batch, writes the rest, dead-letters the bad line with the server reason', async () => {
    const w = await open()
    stub.answer = (lines) =>
      lines.includes(lineOf(123))
        ? { status: 400, body: JSON.stringify({ code: 'invalid', message: 'unable to parse line 124' }) }
        : 204
    w.write(range(0, 200).map(point))
    expect(await w.drain(5000)).toBe(true)
    expect(stub.received).toEqual(
      range(0, 200)
        .filter((i) => i !== 123)
        .map(lineOf),
    )
    expect(w.stats().refused.bad_request).toBe(1)
    const [dead] = readFileSync(join(dir.path, DEAD_LETTER_FILE), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(dead).toMatchObject({
      status: 400,
      reason: 'bad_request',
      line: lineOf(123),
      message: 'unable to parse line 124',
    })
  })

  it('413: halves the batch until the server takes it', async () => {
    const w = await open({ batchSize: 400 })
    stub.answer = (lines) => (lines.length > 120 ? 413 : 204)
    w.write(range(0, 1000).map(point))
    expect(await w.drain(5000)).toBe(true)
    expect(stub.received).toEqual(range(0, 1000).map(lineOf))
    expect(stub.requests.filter((r) => r.status === 413).map((r) => r.lines.length)).toEqual([400, 200])
    expect(Math.max(...stub.requests.filter((r) => r.status === 204).map((r) => r.lines.length))).toBe(100)
  })

  it('429 with Retry-After: 2 waits about 2 s (seconds, not milliseconds)', async () => {
    const w = await open({ random: () => 0 })
    let calls = 0
    stub.answer = () => (++calls === 1 ? { status: 429, headers: { 'retry-after': '2' } } : 204)
    w.write([point(1)])
    await waitFor(() => stub.requests.length === 2, 10_000, 'the retry')
    const gap = stub.requests[1]!.at - stub.requests[0]!.at
    expect(gap).toBeGreaterThanOrEqual(1950)
    expect(gap).toBeLessThan(3000)
    // The stub has the retry before the writer has its answer: wait for the writer to take it.
    await waitFor(() => w.stats().written === 1, 10_000, 'the answer to the retry')
    expect(w.stats()).toMatchObject({ written: 1, retries: 1, healthy: true })
  })

  it('503 with an HTTP-date Retry-After waits until that date', async () => {
    const w = await open({ random: () => 0 })
    let calls = 0
    stub.answer = () =>
      ++calls === 1 ? { status: 503, headers: { 'retry-after': new Date(Date.now() + 2000).toUTCString() } } : 204
    w.write([point(1)])
    await waitFor(() => stub.requests.length === 2, 10_000, 'the retry')
    // HTTP-dates have whole seconds: the wait is between 1 and 2 s.
    const gap = stub.requests[1]!.at - stub.requests[0]!.at
    expect(gap).toBeGreaterThanOrEqual(900)
    expect(gap).toBeLessThan(2500)
  })

  it('401: keeps the data on disk, reports unhealthy with the reason, and delivers once the token works', async () => {
    const w = await open()
    let status = 401
    stub.answer = () => status
    w.write(range(0, 300).map(point))
    await waitFor(() => w.stats().retries >= 3, 5000, 'retries')
    const stats = w.stats()
    expect(stats).toMatchObject({ healthy: false, written: 0, queuedMemory: 0, queuedDisk: 300 })
    expect(stats.unhealthyReason).toContain('401')
    expect(stats.lastError).toMatch(/^401/)
    status = 204
    expect(await w.drain(5000)).toBe(true)
    expect(stub.received).toEqual(range(0, 300).map(lineOf))
    expect(w.stats()).toMatchObject({ healthy: true, written: 300, unhealthyReason: null })
  })

  it('a server that never answers: the request is aborted after requestTimeoutMs and retried', async () => {
    const w = await open({ requestTimeoutMs: 300 })
    let calls = 0
    stub.answer = () => (++calls === 1 ? 'hang' : 204)
    w.write([point(7)])
    expect(await w.drain(5000)).toBe(true)
    expect(w.stats().retries).toBe(1)
    expect(w.stats().lastError).toMatch(/Abort|timed out/i)
  })
})
