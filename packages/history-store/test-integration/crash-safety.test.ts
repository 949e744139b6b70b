import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { HistoryStore } from '../src/index.ts'
import { MINUTE, T0, tempDir, waitFor } from './helpers.ts'

// Issue 13: "a SIGKILL mid-write loses nothing that was acknowledged". A child process writes
// batches to a store in a temp dir and prints each acknowledged batch; it is killed with SIGKILL
// while writing, and the store, reopened here, must hold every acknowledged row, at its revision.

const SCOPES = 1_000
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Runs the writer child; `dieAfter` makes it SIGKILL itself right after acknowledging that batch. */
async function writeUntilKilled(path: string, dieAfter?: number): Promise<number> {
  const args = ['--import', 'tsx', join(import.meta.dirname, 'fixtures/writer-child.ts'), path]
  if (dieAfter !== undefined) args.push(String(dieAfter))
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let acked = -1
  let buffered = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    for (const line of lines) acked = Math.max(acked, JSON.parse(line).acked)
  })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)))
  if (dieAfter === undefined) {
    await waitFor(() => acked >= 15 || child.exitCode !== null, 60_000)
    // The child is writing batch acked+1 (or later) right now: kill it there.
    child.kill('SIGKILL')
  }
  expect(await exited).toBe('SIGKILL')
  expect(stderr).toBe('')
  return acked
}

async function expectAcknowledgedRows(path: string, ackedAtKill: number): Promise<void> {
  const store = new HistoryStore({ path, maxAgeS: 7 * 86_400 })
  cleanups.push(() => store.close())
  for (let j = 0; j < SCOPES; j++) {
    const rows = await store.range(`site/a/l/e${j}`, '1m', T0, T0 + 10_000 * MINUTE, 10_000)
    expect(rows.length).toBeGreaterThanOrEqual(ackedAtKill + 1)
    for (let k = 0; k <= ackedAtKill; k++) {
      const row = rows[k]!
      expect(row.t).toBe(T0 + k * MINUTE)
      // Minute k was revised to 1 by batch k+1: acknowledged when k+1 ≤ ackedAtKill.
      const revised = k + 1 <= ackedAtKill
      if (revised) expect(row).toMatchObject({ revision: 1, energyWh: k * 1000 + j + 0.5 })
      else expect(row.revision === 0 ? row.energyWh : row.energyWh - 0.5).toBe(k * 1000 + j)
    }
  }
  // The store takes writes again and its revisions still only go up.
  expect(
    await store.write([
      {
        scope: 'site/a/l/e0',
        step: '1m',
        t: T0,
        revision: 0,
        energyWh: 0,
        co2G: 0,
        co2MarketG: 0,
        idleWh: 0,
        peakW: 0,
      },
    ]),
  ).toMatchObject({ written: 0, stale: 1 })
}

describe('history store: kill -9 mid-write', () => {
  it('keeps every row acknowledged before a SIGKILL sent while batches are being written', async () => {
    const temp = tempDir()
    cleanups.push(temp.remove)
    const acked = await writeUntilKilled(temp.path)
    expect(acked).toBeGreaterThanOrEqual(15)
    await expectAcknowledgedRows(temp.path, acked)
  }, 90_000)

  // Each child starts tsx (seconds on a busy 2-core machine), hence the longer timeouts; the three
  // children run side by side.
  it('keeps the batch acknowledged in the very turn the process SIGKILLs itself mid-write', async () => {
    await Promise.all(
      [0, 3, 8].map(async (dieAfter) => {
        const temp = tempDir()
        cleanups.push(temp.remove)
        expect(await writeUntilKilled(temp.path, dieAfter)).toBe(dieAfter)
        await expectAcknowledgedRows(temp.path, dieAfter)
      }),
    )
  }, 90_000)
})
