import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

// The load command of issue 13 (`pnpm bench:up-load`) in its --quick mode: a generated plant on a
// real `plantwatt up` child, devices as real MQTT sessions in generator child processes, a live
// WebSocket client, and the nothing-lost check after the buckets close. Timing figures depend on
// the machine and are not asserted; the result's shape and the counts are.

const ROOT = resolve(import.meta.dirname, '../../..')
const BENCH = join(ROOT, 'services/cli/bench/up-load.ts')
const dirs: string[] = []
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
})

const summaryShape = {
  p50Ms: expect.any(Number),
  p99Ms: expect.any(Number),
  maxMs: expect.any(Number),
}

describe('pnpm bench:up-load --quick', () => {
  it('drives a 500-device plant through plantwatt up for 60 s and accounts for every acknowledged reading', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plantwatt-up-load-'))
    dirs.push(dir)
    const out = join(dir, 'result.json')
    const child = spawn(process.execPath, ['--import', 'tsx', BENCH, '--quick', '--out', out], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout!.on('data', (chunk) => {
      output += chunk
    })
    child.stderr!.on('data', (chunk) => {
      output += chunk
    })
    const [code] = (await once(child, 'exit')) as [number | null]
    expect(code, output).toBe(0)

    const result = JSON.parse(await readFile(out, 'utf8'))
    expect(result.settings).toMatchObject({ devices: 500, intervalS: 10, durationS: 60 })
    expect(result.machine).toMatchObject({ cpus: expect.any(Number), node: process.version })
    expect(result.generator.workers).toBeGreaterThanOrEqual(2)
    expect(result.generator.connected).toBe(500)
    // Every device published each interval of the minute (the first turn may fall just after it).
    expect(result.generator.packsSent).toBeGreaterThanOrEqual(500 * 5)
    expect(result.generator.packsAcked).toBe(result.generator.packsSent)
    expect(result.generator.readingsAcked).toBe(result.generator.packsAcked * result.generator.readingsPerPack)
    expect(result.generator.puback).toMatchObject({ count: result.generator.packsAcked, ...summaryShape })

    // Nothing lost: after the buckets closed, the processor accepted every acknowledged reading.
    expect(result.bucketsClosed).toBe(true)
    expect(result.processor.readingsAccepted).toBe(result.generator.readingsAcked + result.finalPack.readings)
    expect(result.processor.readingsRejected).toBe(0)
    expect(result.lost).toEqual({ readings: 0, packs: 0 })
    expect(result.ok).toBe(true)

    expect(result.live.frames).toBeGreaterThan(0)
    expect(result.live.scopes.length).toBeGreaterThanOrEqual(2)
    expect(result.live.ageMs).toMatchObject(summaryShape)
    expect(result.up.loopDelay).toMatchObject({ samples: expect.any(Number), ...summaryShape })
    expect(result.up.loopDelay.samples).toBeGreaterThan(0)
    expect(result.up).toMatchObject({
      cpuSeconds: expect.any(Number),
      rssMaxMB: expect.any(Number),
      pssMB: expect.any(Number),
    })
    // The processor checkpoints every minute: at least once in the run, read from its metrics
    // (plantwatt_checkpoint_duration_seconds, plantwatt_checkpoint_bytes{part}).
    expect(result.checkpoint.count).toBeGreaterThanOrEqual(1)
    expect(result.checkpoint.writes.length).toBeGreaterThanOrEqual(1)
    expect(result.checkpoint.writes[0]).toMatchObject({
      count: expect.any(Number),
      durationMs: expect.any(Number),
      parts: expect.objectContaining({ columns: expect.any(Number), detection: expect.any(Number) }),
    })
    expect(result.checkpoint.bytesMax).toBeGreaterThan(0)
    expect(result.checkpoint.durationMsMax).toBeGreaterThan(0)
    expect(result.segments.length).toBeGreaterThan(0)
  }, 300_000)
})
