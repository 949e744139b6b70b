import type { Role, TokenRecord } from '@plantwatt/runtime'
import { describe, expect, it } from 'vitest'
import { mayGrant, mayManage } from '../src/access.ts'

// Who may issue, list and revoke which token (issue 12 finding 3): pure rules, no sockets.

const token = (role: Role, scopes: string[]): TokenRecord => ({
  id: `${role}-${scopes.join(',')}`,
  name: 'x',
  role,
  scopes,
  createdAt: '2026-01-01T00:00:00.000Z',
  hash: '',
})

describe('token authority', () => {
  it('grants a role at most the issuer’s and scopes within the issuer’s', () => {
    const electrode = token('admin', ['yibin/electrode'])
    expect(mayGrant(electrode, { role: 'admin', scopes: ['yibin/electrode'] })).toBe(true)
    expect(mayGrant(electrode, { role: 'viewer', scopes: ['yibin/electrode/coating-1'] })).toBe(true)
    expect(mayGrant(electrode, { role: 'viewer', scopes: [] })).toBe(false)
    expect(mayGrant(electrode, { role: 'viewer', scopes: ['yibin'] })).toBe(false)
    expect(mayGrant(electrode, { role: 'viewer', scopes: ['yibin/electrodes'] })).toBe(false)
    const operator = token('operator', [])
    expect(mayGrant(operator, { role: 'admin', scopes: [] })).toBe(false)
    expect(mayGrant(operator, { role: 'operator', scopes: ['yibin'] })).toBe(true)
    expect(mayGrant(token('admin', []), { role: 'admin', scopes: [] })).toBe(true)
  })

  it('manages only tokens whose scopes all lie within the manager’s', () => {
    const electrode = token('admin', ['yibin/electrode'])
    expect(mayManage(electrode, token('viewer', ['yibin/electrode/coating-1']))).toBe(true)
    expect(mayManage(electrode, token('viewer', ['yibin/electrode/coating-1', 'yibin']))).toBe(false)
    expect(mayManage(electrode, token('admin', []))).toBe(false)
    expect(mayManage(token('admin', []), token('admin', ['yibin']))).toBe(true)
  })
})
