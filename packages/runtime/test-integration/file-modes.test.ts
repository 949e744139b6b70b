import { chmod, mkdir, mkdtemp, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { prepareDataDirectory } from '../src/data-dir.ts'
import { writeFileAtomic } from '../src/files.ts'

// Issue 12, finding 19: directories plantwatt makes are 0700, the files it writes 0600, and an
// existing data directory open to others is tightened at start — real files, under umask 022.

const mode = async (path: string) => ((await stat(path)).mode & 0o777).toString(8).padStart(4, '0')

/** A logger whose records land in `records`. */
function capture() {
  const records: Record<string, unknown>[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => records.push(JSON.parse(line)) })
  return { logger, records }
}

describe('file modes in the data directory', () => {
  let previousUmask: number
  beforeAll(() => {
    previousUmask = process.umask(0o022)
  })
  afterAll(() => {
    process.umask(previousUmask)
  })

  it('writeFileAtomic makes missing directories 0700 and the file 0600', async () => {
    const base = await mkdtemp(join(tmpdir(), 'plantwatt-modes-'))
    const file = join(base, 'processor', 'nested', 'checkpoint')
    await writeFileAtomic(file, 'x')
    expect(await mode(join(base, 'processor'))).toBe('0700')
    expect(await mode(join(base, 'processor', 'nested'))).toBe('0700')
    expect(await mode(file)).toBe('0600')
  })

  it('prepareDataDirectory tightens an existing 0755 directory to 0700 and logs it once', async () => {
    const base = await mkdtemp(join(tmpdir(), 'plantwatt-modes-'))
    const dataDir = join(base, 'data')
    await mkdir(dataDir)
    await chmod(dataDir, 0o755)
    const { logger, records } = capture()
    await prepareDataDirectory(dataDir, logger)
    expect(await mode(dataDir)).toBe('0700')
    expect(records.filter((r) => r.msg === 'data directory tightened')).toEqual([
      expect.objectContaining({ dataDir, from: '0755', to: '0700' }),
    ])
    await prepareDataDirectory(dataDir, logger)
    expect(records.filter((r) => r.msg === 'data directory tightened')).toHaveLength(1)
  })

  it('prepareDataDirectory makes a missing directory and its parents 0700, saying nothing', async () => {
    const base = await mkdtemp(join(tmpdir(), 'plantwatt-modes-'))
    const dataDir = join(base, 'a', 'data')
    const { logger, records } = capture()
    await prepareDataDirectory(dataDir, logger)
    expect(await mode(join(base, 'a'))).toBe('0700')
    expect(await mode(dataDir)).toBe('0700')
    expect(records).toEqual([])
  })
})
