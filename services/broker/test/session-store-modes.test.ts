import { mkdtemp, readdir, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLevelPersistence } from '../src/backends.ts'

// Issue 12, finding 19: the broker's session store (client ids, subscriptions, queued downlinks)
// is made 0700, so that LevelDB's own files — whose modes LevelDB chooses — are out of other
// users' reach even under umask 022.

const mode = async (path: string) => ((await stat(path)).mode & 0o777).toString(8).padStart(4, '0')

describe('broker session store: modes', () => {
  let previousUmask: number
  beforeAll(() => {
    previousUmask = process.umask(0o022)
  })
  afterAll(() => {
    process.umask(previousUmask)
  })

  it('makes the session store directory, and its missing parents, 0700', async () => {
    const base = await mkdtemp(join(tmpdir(), 'plantwatt-sessions-'))
    const dir = join(base, 'data', 'broker-sessions')
    const store = await createLevelPersistence(dir)
    try {
      expect((await readdir(dir)).length).toBeGreaterThan(0) // LevelDB really opened there
      expect(await mode(join(base, 'data'))).toBe('0700')
      expect(await mode(dir)).toBe('0700')
    } finally {
      await store.close()
    }
  })
})
