import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { loadDeviceSecret } from '../src/secrets.ts'

// Generated secrets on real files (CONTRACT.md §4): however many loads race at first start, one
// secret is generated, every caller gets it, and it is the one kept in the data directory.

describe('generated secrets', () => {
  let dataDir: string

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'plantwatt-secrets-'))
  })
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true })
  })

  it('gives 50 concurrent first loads of the device secret one and the same secret, the stored one', async () => {
    const loaded = await Promise.all(Array.from({ length: 50 }, () => loadDeviceSecret(dataDir, undefined)))
    expect(new Set(loaded).size).toBe(1)
    const stored = JSON.parse(await readFile(join(dataDir, 'secrets.json'), 'utf8'))
    expect(stored.deviceSecret).toBe(loaded[0])
    expect(await loadDeviceSecret(dataDir, undefined)).toBe(loaded[0])
  })

  it('takes the secret from the environment when it is set, and writes nothing', async () => {
    expect(await loadDeviceSecret(dataDir, 'from-env')).toBe('from-env')
    await expect(readFile(join(dataDir, 'secrets.json'), 'utf8')).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
