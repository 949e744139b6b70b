import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { loopDelayMarkFile, requestLoopDelayMark } from '../src/loop-delay.ts'

// A benchmark's child process loaded with packages/runtime/bench/loop-delay-preload.ts answers
// the parent's marks with its own event-loop delay: the stall it makes between two marks is in
// the second mark's window and in the run since the first.

const PRELOAD = resolve(import.meta.dirname, '../bench/loop-delay-preload.ts')
const CHILD = `
process.stdout.write('ready\\n')
process.stdin.on('data', () => {
  const until = Date.now() + 120
  while (Date.now() < until) {}
  process.stdout.write('held\\n')
})
process.stdin.on('end', () => process.exit(0))
`
const dirs: string[] = []
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
})

describe('loop-delay marks', () => {
  it('reports a 120 ms stall of the child between two marks', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plantwatt-loop-marks-'))
    dirs.push(dir)
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--import', PRELOAD, '--input-type=module', '-e', CHILD],
      {
        env: { ...process.env, PLANTWATT_LOOP_DELAY_DIR: dir },
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    )
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
    try {
      expect((await lines.next()).value).toBe('ready')
      const file = loopDelayMarkFile(dir, child.pid!)
      const first = await requestLoopDelayMark(child.pid!, file, 1)
      expect(first).toMatchObject({ pid: child.pid, mark: 1 })
      child.stdin!.write('stall\n')
      expect((await lines.next()).value).toBe('held')
      const second = await requestLoopDelayMark(child.pid!, file, 2)
      expect(second.mark).toBe(2)
      expect(second.window.maxMs).toBeGreaterThanOrEqual(120)
      expect(second.run.maxMs).toBeGreaterThanOrEqual(120)
      expect(second.run.samples).toBeGreaterThan(0)
      expect(second.run.p50Ms).toBeLessThan(120)
    } finally {
      child.stdin!.end()
      await once(child, 'exit')
    }
  })
})
