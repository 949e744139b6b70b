import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import type { Bus } from '@plantwatt/bus'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openBusAndDir } from './support/bus-and-dir.ts'
import { feed, held, simulatedMessages, startProcessor } from './support/crash-plant.ts'

// Issue 13: a processor killed with SIGKILL after eight checkpoints (the reading log's chunks,
// detection, columns) and more acknowledged readings, while it is still appending, restarts with
// every journaled reading applied once: retained readings, detection, counters and 1-minute
// buckets equal those of a processor that took the same records without a crash.

describe('SIGKILL between checkpoints', () => {
  let dir: string
  let bus: Bus
  let close: (() => Promise<void>) | undefined

  beforeAll(async () => {
    ;({ dir, bus, close } = await openBusAndDir('plantwatt-sigkill-'))
  })

  afterAll(() => close?.())

  it('loses nothing acknowledged and applies nothing twice', async () => {
    const crashed = join(dir, 'crashed')
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'support', 'crash-child.ts'), crashed],
      {
        cwd: join(import.meta.dirname, '..', '..', '..'),
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    let out = ''
    const acked = await new Promise<number>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        const match = /acked (\d+)/.exec(out)
        if (match) resolve(Number(match[1]))
      })
      child.once('exit', (code) => reject(new Error(`child exited (${code}) before acknowledging`)))
    })
    child.kill('SIGKILL')
    await once(child, 'exit')

    const messages = simulatedMessages()
    const clock = { ms: 0 }
    const restarted = await startProcessor(crashed, bus, clock)
    // Every record the journal holds was applied: the acknowledged ones and maybe some after them.
    const applied = restarted.processor.journalPositions().get(0) ?? 0
    expect(applied).toBeGreaterThanOrEqual(acked)
    expect(restarted.processor.state.accounting.restoreMismatches).toBe(0)
    const after = held(restarted.processor)
    await restarted.processor.stop()
    await restarted.journal.close()

    // The same records, never crashed.
    const reference = await startProcessor(join(dir, 'reference'), bus, clock)
    await feed(reference.journal, clock, messages.slice(0, applied))
    expect(after).toEqual(held(reference.processor))
    await reference.processor.stop()
    await reference.journal.close()
  }, 240_000)
})
