import { once } from 'node:events'
import { TokenStore } from '@plantwatt/runtime'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { type Harness, startHarness } from './harness.ts'

// Token administration over real HTTP and real files (issue 12 findings 2 and 3; CONTRACT.md §4,
// §6 /api/v1/tokens).

const LINE_1 = 'yibin/electrode/coating-1'

describe('token administration', () => {
  let h: Harness
  let admin: string

  const api = (path: string, token: string, init: { method?: string; body?: unknown } = {}) =>
    fetch(`http://${h.base}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        authorization: `Bearer ${token}`,
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    })
  const issue = async (by: string, body: { name: string; role: string; scopes?: string[] }) => {
    const response = await api('/api/v1/tokens', by, { method: 'POST', body })
    return { status: response.status, body: (await response.json()) as { token: string; id: string } }
  }
  /** 200 while the token is valid, 401 once it is not. */
  const statusWith = async (token: string) => (await api('/api/v1/plant', token)).status

  beforeAll(async () => {
    h = await startHarness({ httpRequestsPerMinute: 100_000 })
    admin = (await h.tokens.issue({ name: 'admin', role: 'admin' })).token
  })

  afterAll(async () => {
    await h.close()
  })

  it('keeps every token issued and every revoke under 60 concurrent issues and 30 concurrent revokes', async () => {
    const doomed = []
    for (let i = 0; i < 30; i++) doomed.push(await issue(admin, { name: `doomed ${i}`, role: 'viewer' }))
    const [issued, revoked] = await Promise.all([
      Promise.all(Array.from({ length: 60 }, (_, i) => issue(admin, { name: `new ${i}`, role: 'viewer' }))),
      Promise.all(
        doomed.map(async (d) => (await api(`/api/v1/tokens/${d.body.id}`, admin, { method: 'DELETE' })).status),
      ),
    ])
    expect(issued.map((i) => i.status)).toEqual(Array(60).fill(201))
    expect(revoked).toEqual(Array(30).fill(204))
    for (const { body } of issued) expect(await statusWith(body.token)).toBe(200)
    for (const { body } of doomed) expect(await statusWith(body.token)).toBe(401)

    // The file holds the same: a store reopened from disk agrees.
    const reopened = await TokenStore.open(h.dataDir)
    for (const { body } of issued) expect(reopened.verify(body.token)?.id).toBe(body.id)
    for (const { body } of doomed) expect(reopened.verify(body.token)).toBeUndefined()
  })

  it('closes the WebSocket connections opened with a token when it is revoked', async () => {
    const { body } = await issue(admin, { name: 'wall screen', role: 'viewer' })
    const socket = new WebSocket(`ws://${h.base}/ws?token=${body.token}`)
    await once(socket, 'open')
    const closed = once(socket, 'close')
    expect((await api(`/api/v1/tokens/${body.id}`, admin, { method: 'DELETE' })).status).toBe(204)
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('still open after 5 s')), 5000))
    const [code] = (await Promise.race([closed, timeout])) as [number]
    expect(code).toBe(1008)
    expect(await statusWith(body.token)).toBe(401)
  })
})
