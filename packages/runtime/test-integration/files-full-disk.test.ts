import { execFileSync } from 'node:child_process'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { removeStaleTemporaries, writeFileAtomic } from '../src/files.ts'

// Issue 12 finding 12: writeFileAtomic left its temporary file behind when a write failed, and
// nothing removed them, so a full disk filled further at every checkpoint. A real full file
// system: a 1 MiB tmpfs (mounting needs root, which CI has; the test fails, not skips, without it).

describe('writeFileAtomic on a full disk', () => {
  let dir: string

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-full-'))
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'pipe' })
    } catch (error) {
      throw new Error(`this test needs to mount a small tmpfs (root): ${(error as Error).message}`)
    }
  })
  afterAll(async () => {
    execFileSync('umount', [dir])
    await rm(dir, { recursive: true, force: true })
  })

  it('fails with ENOSPC and leaves no temporary file; the old content stays', async () => {
    const path = join(dir, 'checkpoint.v8')
    await writeFileAtomic(path, Buffer.alloc(100_000, 1))
    const big = Buffer.alloc(2 * 1024 * 1024, 2)
    for (let k = 0; k < 3; k++) {
      await expect(writeFileAtomic(path, big)).rejects.toMatchObject({ code: 'ENOSPC' })
    }
    expect((await readdir(dir)).sort()).toEqual(['checkpoint.v8'])
    // And a smaller write fits again: nothing was left taking the space.
    await writeFileAtomic(path, Buffer.alloc(600_000, 3))
    expect(await readdir(dir)).toEqual(['checkpoint.v8'])
  })

  it('removes stale temporaries of earlier runs, and nothing else', async () => {
    const sub = join(dir, 'processor')
    await rm(sub, { recursive: true, force: true })
    await writeFile(join(dir, 'tokens.json.0123abcd.tmp'), 'stale')
    await writeFileAtomic(join(sub, 'checkpoint.v8'), 'x')
    await writeFile(join(sub, 'checkpoint.v8.deadbeef.tmp'), 'stale')
    await writeFile(join(sub, 'notes.tmp'), 'not ours')
    const removed = await removeStaleTemporaries(dir)
    expect(removed.sort()).toEqual(
      [join(dir, 'tokens.json.0123abcd.tmp'), join(sub, 'checkpoint.v8.deadbeef.tmp')].sort(),
    )
    expect((await readdir(sub)).sort()).toEqual(['checkpoint.v8', 'notes.tmp'])
  })
})
