import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { DEAD_LETTER_FILE, DEAD_LETTER_OLD_FILE, DeadLetter } from '../src/dead-letter.ts'
import { CURSOR_FILE } from '../src/segment-file.ts'
import { Spool } from '../src/spool.ts'
import { silentLogger, tempDir } from './helpers.ts'

// Issue 12, finding 19: the history spool holds the plant's figures while InfluxDB is away. Its
// directory is 0700 and every file in it (segments, cursor, lock, dead letters) 0600, whatever
// the process's umask: real files, made with the usual umask 022 under which a file opened
// without a mode comes out 0644.

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8).padStart(4, '0')
const lines = (n: number) => Array.from({ length: n }, (_, i) => `m v=${i} ${i}`)

describe('history spool: file modes', () => {
  let dir: ReturnType<typeof tempDir>
  let previousUmask: number
  beforeAll(() => {
    previousUmask = process.umask(0o022)
  })
  afterAll(() => {
    process.umask(previousUmask)
  })
  afterEach(() => dir?.remove())

  it('makes the spool directory (and missing parents) 0700 and every file in it 0600', async () => {
    dir = tempDir()
    const directory = join(dir.path, 'data', 'influx-spool')
    const spool = new Spool({
      directory,
      segmentMaxPoints: 4,
      maxDiskBytes: 1 << 20,
      logger: silentLogger,
      now: Date.now,
    })
    await spool.restore()
    spool.appendDisk(lines(6), 0, 6) // two segment files
    spool.appendMemory(lines(3), 0, 3)
    const batch = (await spool.peek(2, 1 << 20))!
    spool.settle(batch, 2) // writes the cursor
    spool.spillMemory() // the memory segment becomes a file too

    expect(mode(join(dir.path, 'data'))).toBe('0700')
    expect(mode(directory)).toBe('0700')
    const files = readdirSync(directory)
    expect(files.filter((name) => name.endsWith('.seg')).length).toBeGreaterThanOrEqual(3)
    expect(files).toContain(CURSOR_FILE)
    expect(files.map((name) => `${name} ${mode(join(directory, name))}`)).toEqual(files.map((name) => `${name} 0600`))
    spool.close()
  })

  it('writes dead letters, and their rotated file, 0600', () => {
    dir = tempDir()
    const deadLetter = new DeadLetter(dir.path, 200)
    const record = { at: 1, status: 400, reason: 'bad_request', message: 'no', line: 'm v=1 1'.padEnd(120, ' ') }
    deadLetter.add(record)
    deadLetter.add(record) // past 200 bytes: rotated
    deadLetter.close()
    expect(mode(join(dir.path, DEAD_LETTER_FILE))).toBe('0600')
    expect(mode(join(dir.path, DEAD_LETTER_OLD_FILE))).toBe('0600')
  })
})
