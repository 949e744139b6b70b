import { once } from 'node:events'
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPlantwatt } from '../../../test/support/plantwatt-process.ts'

// Issue 12, finding 19: what plantwatt keeps in its data directory (device secret, token hashes,
// journal of readings, sessions, history spool) is for its own user only. Every directory it makes
// is 0700, every file 0600, and a data directory that an earlier version or a careless mkdir left
// open (0755) is tightened to 0700 at start, logged once. Real files, a real `plantwatt up`.

const env = { PLANTWATT_DEVICE_SECRET: 'modes-test-device-secret-0123456789', PLANTWATT_ADMIN_TOKEN: undefined }

/** Every entry below `dir` with its permission bits. */
async function walk(dir: string, root = dir): Promise<{ path: string; mode: number; directory: boolean }[]> {
  const out: { path: string; mode: number; directory: boolean }[] = []
  for (const name of await readdir(dir)) {
    const path = join(dir, name)
    const stats = await lstat(path)
    out.push({ path: relative(root, path), mode: stats.mode & 0o777, directory: stats.isDirectory() })
    if (stats.isDirectory()) out.push(...(await walk(path, root)))
  }
  return out
}

const octal = (mode: number) => mode.toString(8).padStart(4, '0')

describe('plantwatt up: modes of the data directory and what it makes there', () => {
  let influx: Server
  let influxUrl: string
  let previousUmask: number

  beforeAll(async () => {
    // The usual umask, so that a file made without a mode really comes out 0644.
    previousUmask = process.umask(0o022)
    // A stand-in for InfluxDB's write endpoint, so that the history spool directory is made too.
    influx = createServer((request, response) => {
      request.resume()
      request.on('end', () => response.writeHead(204).end())
    })
    influx.listen(0, '127.0.0.1')
    await once(influx, 'listening')
    influxUrl = `http://127.0.0.1:${(influx.address() as AddressInfo).port}`
  })

  afterAll(async () => {
    process.umask(previousUmask)
    influx.close()
  })

  it('tightens an existing 0755 data directory to 0700, logged once, and makes everything else 0700/0600', async () => {
    const base = await mkdtemp(join(tmpdir(), 'plantwatt-modes-'))
    const dataDir = join(base, 'data')
    await mkdir(dataDir)
    await chmod(dataDir, 0o755)
    const userFile = join(dataDir, 'notes.txt')
    await writeFile(userFile, 'left here by a person\n')
    await chmod(userFile, 0o644)
    const influxArgs = ['--influx-url', influxUrl, '--influx-org', 'o', '--influx-bucket', 'b', '--influx-token', 't']

    const first = await startPlantwatt(['--data-dir', dataDir, ...influxArgs], env)
    expect(await first.stop()).toBe(0)

    expect(octal((await lstat(dataDir)).mode & 0o777)).toBe('0700')
    const tightened = first.logs.filter((record) => record.msg === 'data directory tightened')
    expect(tightened).toHaveLength(1)
    expect(tightened[0]).toMatchObject({ dataDir, from: '0755', to: '0700' })
    // A person's file is left as it is (content and all); the directory now keeps others out of it.
    expect(await readFile(userFile, 'utf8')).toBe('left here by a person\n')

    const entries = (await walk(dataDir)).filter((entry) => entry.path !== 'notes.txt')
    // What the embedded default keeps (CONTRACT.md §8): sessions, journal, checkpoint, tokens,
    // secrets, and with --influx-url the history spool.
    const paths = entries.map((entry) => entry.path)
    for (const expected of ['broker-sessions', 'ingest-journal', 'processor', 'influx-spool']) {
      expect(paths).toContain(expected)
    }
    expect(entries.filter((entry) => !entry.directory).length).toBeGreaterThan(3)
    const wrong = entries
      .filter((entry) => entry.mode !== (entry.directory ? 0o700 : 0o600))
      .map((entry) => `${entry.path} ${octal(entry.mode)}`)
    expect(wrong).toEqual([])

    // The second start finds nothing to tighten, and says nothing about it.
    const second = await startPlantwatt(['--data-dir', dataDir, ...influxArgs], env)
    expect(await second.stop()).toBe(0)
    expect(second.logs.filter((record) => record.msg === 'data directory tightened')).toEqual([])
  })

  it('makes a new data directory, and its missing parents, 0700', async () => {
    const base = await mkdtemp(join(tmpdir(), 'plantwatt-modes-'))
    const dataDir = join(base, 'parent', 'data')
    const system = await startPlantwatt(['--data-dir', dataDir], env)
    expect(await system.stop()).toBe(0)
    expect(octal((await lstat(join(base, 'parent'))).mode & 0o777)).toBe('0700')
    expect(octal((await lstat(dataDir)).mode & 0o777)).toBe('0700')
    expect(system.logs.filter((record) => record.msg === 'data directory tightened')).toEqual([])
  })
})
