import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadDeviceSecret } from '../src/secrets.ts'
import { roleAtLeast, TokenStore } from '../src/token-store.ts'

const dataDir = () => mkdtemp(join(tmpdir(), 'plantwatt-runtime-'))

describe('TokenStore (CONTRACT.md §4)', () => {
  it('issues tokens that verify, stores only hashes, and survives a reopen', async () => {
    const dir = await dataDir()
    const store = await TokenStore.open(dir)
    const { token, record } = await store.issue({ name: 'shift lead', role: 'operator', scopes: ['yibin/electrode'] })
    expect(store.verify(token)).toMatchObject({ id: record.id, role: 'operator', scopes: ['yibin/electrode'] })
    expect(store.verify(`${token}x`)).toBeUndefined()
    expect(store.verify('')).toBeUndefined()
    const file = await readFile(join(dir, 'tokens.json'), 'utf8')
    expect(file).not.toContain(token)
    expect(store.list()[0]).not.toHaveProperty('hash')

    const reopened = await TokenStore.open(dir)
    expect(reopened.verify(token)?.id).toBe(record.id)
    expect(await reopened.revoke(record.id)).toBe(true)
    expect(reopened.verify(token)).toBeUndefined()
    expect(await reopened.revoke(record.id)).toBe(false)
  })

  it('applies 50 concurrent issues and revokes one at a time: every issued token verifies, every revoked one not', async () => {
    const dir = await dataDir()
    const store = await TokenStore.open(dir)
    const doomed = []
    for (let i = 0; i < 25; i++) doomed.push(await store.issue({ name: `doomed ${i}`, role: 'viewer' }))
    const [issued, revoked] = await Promise.all([
      Promise.all(Array.from({ length: 50 }, (_, i) => store.issue({ name: `new ${i}`, role: 'viewer' }))),
      Promise.all(doomed.map(({ record }) => store.revoke(record.id))),
    ])
    expect(revoked).toEqual(Array(25).fill(true))
    for (const reader of [store, await TokenStore.open(dir)]) {
      for (const { token, record } of issued) expect(reader.verify(token)?.id).toBe(record.id)
      for (const { token } of doomed) expect(reader.verify(token)).toBeUndefined()
      expect(reader.list()).toHaveLength(50)
    }
  })

  it('generates a bootstrap admin token once, and only when no admin exists', async () => {
    const dir = await dataDir()
    const store = await TokenStore.open(dir)
    const generated = await store.ensureBootstrapAdmin(undefined)
    expect(generated).toMatch(/^pwt_/)
    expect(store.verify(generated!)?.role).toBe('admin')
    expect(await (await TokenStore.open(dir)).ensureBootstrapAdmin(undefined)).toBeUndefined()
  })

  it('takes the admin token from PLANTWATT_ADMIN_TOKEN, replacing an earlier bootstrap token', async () => {
    const store = await TokenStore.open(await dataDir())
    const generated = await store.ensureBootstrapAdmin(undefined)
    expect(await store.ensureBootstrapAdmin('chosen-admin-token')).toBeUndefined()
    expect(store.verify('chosen-admin-token')?.role).toBe('admin')
    expect(store.verify(generated!)).toBeUndefined()
  })

  it('orders roles viewer < operator < admin', () => {
    expect(roleAtLeast('admin', 'operator')).toBe(true)
    expect(roleAtLeast('operator', 'operator')).toBe(true)
    expect(roleAtLeast('viewer', 'operator')).toBe(false)
  })
})

describe('device secret', () => {
  it('prefers the environment, else generates one at first start and keeps it', async () => {
    const dir = await dataDir()
    expect(await loadDeviceSecret(dir, 'from-env')).toBe('from-env')
    const generated = await loadDeviceSecret(dir, undefined)
    expect(generated).toMatch(/^[0-9a-f]{64}$/)
    expect(await loadDeviceSecret(dir, undefined)).toBe(generated)
  })
})
