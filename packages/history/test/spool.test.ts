import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { CURSOR_FILE, SEGMENT_HEADER } from '../src/segment-file.ts'
import { Spool } from '../src/spool.ts'
import { silentLogger, tempDir } from './helpers.ts'

const lines = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `m v=${from + i} ${from + i}`)

describe('Spool: the durable queue', () => {
  let dir: ReturnType<typeof tempDir>
  const open = (overrides: Partial<ConstructorParameters<typeof Spool>[0]> = {}) =>
    new Spool({
      directory: dir.path,
      segmentMaxPoints: 4,
      maxDiskBytes: 1 << 20,
      logger: silentLogger,
      now: Date.now,
      ...overrides,
    })

  afterEach(() => dir?.remove())

  /** Takes everything from the spool, acknowledging batch by batch. */
  async function drainAll(spool: Spool, batchLines = 3): Promise<string[]> {
    const out: string[] = []
    for (;;) {
      const batch = await spool.peek(batchLines, 1 << 20)
      if (!batch) return out
      out.push(...batch.lines)
      spool.settle(batch, batch.lines.length)
    }
  }

  it('keeps one order across memory and disk segments', async () => {
    dir = tempDir()
    const spool = open()
    await spool.restore()
    spool.appendMemory(lines(0, 6), 0, 6)
    spool.appendDisk(lines(6, 11), 0, 5)
    spool.appendMemory(lines(11, 13), 0, 2)
    expect(spool.memoryPoints).toBe(8)
    expect(spool.diskPoints).toBe(5)
    expect(await drainAll(spool)).toEqual(lines(0, 13))
    expect(spool.isEmpty()).toBe(true)
    expect(readdirSync(dir.path).filter((f) => f.endsWith('.seg'))).toEqual([])
    spool.close()
  })

  it('spills memory segments in place and a new spool reads them back in order after a restart', async () => {
    dir = tempDir()
    const first = open()
    await first.restore()
    first.appendMemory(lines(0, 5), 0, 5)
    // One batch of the head acknowledged before the outage: it must not come back.
    const batch = (await first.peek(2, 1 << 20))!
    first.settle(batch, 2)
    first.appendDisk(lines(5, 7), 0, 2)
    first.appendMemory(lines(7, 9), 0, 2)
    first.close() // spills memory, seals the open file, releases the lock
    first.close()
    const files = readdirSync(dir.path)
      .filter((f) => f.endsWith('.seg'))
      .sort()
    expect(files.length).toBe(4)
    const second = open()
    const report = await second.restore()
    expect(report.points).toBe(7)
    expect(await drainAll(second)).toEqual(lines(2, 9))
    second.close()
  })

  it('after a kill -9, resumes inside a segment file from the cursor (lock taken over)', async () => {
    dir = tempDir()
    const child = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'fixtures/crash-spool.ts'), dir.path],
      {
        encoding: 'utf8',
      },
    )
    expect(child.signal).toBe('SIGKILL')
    expect(JSON.parse(readFileSync(join(dir.path, CURSOR_FILE), 'utf8'))).toEqual({ segment: 1, line: 3 })
    expect(existsSync(join(dir.path, 'lock'))).toBe(true)
    const spool = open({ segmentMaxPoints: 10 })
    expect((await spool.restore()).points).toBe(19)
    expect(await drainAll(spool, 4)).toEqual(lines(3, 22))
    spool.close()
  }, 20_000) // a child process with a TypeScript loader: seconds on a loaded machine

  it('deletes a file the cursor has passed (crash between the cursor write and the unlink)', async () => {
    dir = tempDir()
    const first = open({ segmentMaxPoints: 10 })
    await first.restore()
    first.appendDisk(lines(0, 3), 0, 3)
    first.close()
    const [name] = readdirSync(dir.path).filter((f) => f.endsWith('.seg'))
    writeFileSync(join(dir.path, CURSOR_FILE), JSON.stringify({ segment: Number(name!.slice(0, 16)), line: 3 }))
    const second = open()
    expect((await second.restore()).points).toBe(0)
    expect(existsSync(join(dir.path, name!))).toBe(false)
    second.appendDisk(lines(0, 1), 0, 1)
    second.close()
    expect(readdirSync(dir.path).filter((f) => f.endsWith('.seg'))).toEqual(['0000000000000002.seg'])
  })

  it('skips a torn record left by a crash while the segment was open', async () => {
    dir = tempDir()
    const spool = open({ segmentMaxPoints: 100 })
    await spool.restore()
    spool.appendDisk(lines(0, 3), 0, 3)
    spool.close()
    const [name] = readdirSync(dir.path).filter((f) => f.endsWith('.seg'))
    const path = join(dir.path, name!)
    writeFileSync(path, `${readFileSync(path, 'utf8')}0badf00d m v=99 9`)
    const again = open()
    const report = await again.restore()
    expect(report).toMatchObject({ points: 3, tornBytes: 17 })
    expect(await drainAll(again)).toEqual(lines(0, 3))
    again.close()
  })

  it('sets aside a file of another format instead of deleting it', async () => {
    dir = tempDir()
    writeFileSync(join(dir.path, '0000000000000007.seg'), 'not a segment\n')
    const spool = open()
    await spool.restore()
    expect(spool.isEmpty()).toBe(true)
    expect(existsSync(join(dir.path, '0000000000000007.seg.unreadable'))).toBe(true)
    // New ids continue after it, so nothing ever collides with the set-aside file.
    spool.appendDisk(lines(0, 1), 0, 1)
    spool.close()
    expect(readdirSync(dir.path)).toContain('0000000000000008.seg')
  })

  it('refuses at maxDiskBytes and tells how much was appended', async () => {
    dir = tempDir()
    const spool = open({ segmentMaxPoints: 1000, maxDiskBytes: SEGMENT_HEADER.length + 100 })
    await spool.restore()
    const result = spool.appendDisk(lines(0, 3), 0, 3)
    expect(result).toEqual({ appended: 3, failure: null })
    const full = spool.appendDisk(lines(3, 10), 0, 7)
    expect(full.failure).toBe('queue_full')
    expect(full.appended).toBe(0)
    spool.close()
  })

  it('allows one spool per directory', async () => {
    dir = tempDir()
    const a = open()
    await a.restore()
    await expect(open().restore()).rejects.toThrow(/already open/)
    a.close()
    const b = open()
    await b.restore()
    b.close()
  })
})
