// Issue 12 finding 17: a recording's header must not decide how many processes `replay` forks.
// Real recording files (gzip NDJSON) through the real `replay` function (which forks its workers):
// a header whose `devices` or `sites` is absurd is refused before anything is forked, and the
// workers never outnumber the cores, whatever the header claims or --workers asks.

import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openRecording } from '../src/recording/files.ts'
import { RECORDING_FORMAT, RecordingFormatError } from '../src/recording/format.ts'
import { replay } from '../src/run/index.ts'

const START_S = 1_732_250_000

function line(t: number, deviceId: string): string {
  return JSON.stringify({ t, s: 'site-a', d: deviceId, k: 'up', p: `[{"n":"power","u":"W","v":${t % 100}}]` })
}

/** A recording whose header says `header` and whose lines come from `deviceCount` devices. */
async function writeRecording(dir: string, name: string, header: Record<string, unknown>, deviceCount: number) {
  const path = join(dir, name)
  const lines = [
    JSON.stringify({
      format: RECORDING_FORMAT,
      version: 1,
      createdAt: '2026-12-06T00:00:00Z',
      startS: START_S,
      ...header,
    }),
  ]
  for (let k = 0; k < deviceCount; k++) lines.push(line(START_S + k, `dev-${k}`))
  await writeFile(path, gzipSync(`${lines.join('\n')}\n`))
  return path
}

describe('replay: the recording header is validated and workers are capped at the cores', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-replay-limits-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('refuses headers whose devices or sites are out of bounds or of the wrong type, naming line 1', async () => {
    const bad: Record<string, unknown>[] = [
      { devices: 10_000_000 },
      { devices: -1 },
      { devices: 2.5 },
      { devices: '20' },
      { devices: 2, sites: { 'site-a': 'dev-0' } },
      { devices: 2, sites: ['dev-0'] },
      { devices: 2, sites: { 'site-a': [1, 2] } },
      { devices: 2, sites: { 'site-a': ['not a device id!'] } },
      { devices: 2, sites: { 'site-a': ['dev-0', 'dev-1', 'dev-2'] } },
    ]
    for (const [k, header] of bad.entries()) {
      const path = await writeRecording(dir, `bad-${k}.ndjson.gz`, header, 2)
      const error = await openRecording(path).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(error, JSON.stringify(header)).toBeInstanceOf(RecordingFormatError)
      expect((error as Error).message).toMatch(/^recording line 1: /)
      // replay refuses it too, before forking anything.
      await expect(replay({ file: path, speed: 'max', connection: null })).rejects.toThrow(RecordingFormatError)
    }
  })

  it('counts the devices of a recording without sites from its lines, not from the header', async () => {
    // 2 devices, a header claiming 90,000: the old plan forked ceil(90,000 / 10,000) = 9 workers.
    const path = await writeRecording(dir, 'claims-many.ndjson.gz', { devices: 90_000 }, 2)
    const summary = await replay({ file: path, speed: 'max', connection: null })
    expect(summary.workers).toBe(1)
  })

  it('never forks more workers than there are cores, even when --workers asks for more', async () => {
    const cores = availableParallelism()
    const path = await writeRecording(dir, 'many-devices.ndjson.gz', { devices: 40 }, 40)
    const summary = await replay({ file: path, speed: 'max', connection: null, workers: cores + 1 })
    expect(summary.workers).toBeLessThanOrEqual(cores)
    expect(summary.workers).toBeGreaterThanOrEqual(1)
  })
})
