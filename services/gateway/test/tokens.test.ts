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

  it('keeps a scoped admin within its scopes: no wider token, and it lists and revokes only its own', async () => {
    const electrodeAdmin = (
      await h.tokens.issue({ name: 'electrode admin', role: 'admin', scopes: ['yibin/electrode'] })
    ).token
    // The escalation of the issue: an unscoped (plant-wide) admin token, or one for the whole site.
    const unscoped = await issue(electrodeAdmin, { name: 'everything', role: 'admin' })
    expect(unscoped.status).toBe(403)
    expect(unscoped.body).toEqual({ error: { code: 'forbidden', message: expect.any(String) } })
    expect((await issue(electrodeAdmin, { name: 'site', role: 'viewer', scopes: ['yibin'] })).status).toBe(403)
    expect((await issue(electrodeAdmin, { name: 'mixed', role: 'viewer', scopes: [LINE_1, 'yibin'] })).status).toBe(403)
    expect(h.tokens.list().some((t) => t.name === 'everything' || t.name === 'site' || t.name === 'mixed')).toBe(false)

    // Within its scope it may issue any role up to its own.
    const lineViewer = await issue(electrodeAdmin, { name: 'line 1 screen', role: 'viewer', scopes: [LINE_1] })
    expect(lineViewer.status).toBe(201)
    const areaAdmin = await issue(electrodeAdmin, { name: 'area deputy', role: 'admin', scopes: ['yibin/electrode'] })
    expect(areaAdmin.status).toBe(201)

    // It lists only tokens whose scopes all lie inside its own: not the plant-wide admin.
    const siteViewer = await h.tokens.issue({ name: 'site screen', role: 'viewer', scopes: ['yibin'] })
    const listed = (await (await api('/api/v1/tokens', electrodeAdmin)).json()) as { tokens: { id: string }[] }
    const ids = listed.tokens.map((t) => t.id)
    expect(ids).toContain(lineViewer.body.id)
    expect(ids).toContain(areaAdmin.body.id)
    expect(ids).not.toContain(siteViewer.record.id)
    expect(ids).not.toContain(h.tokens.verify(admin)!.id)
    const all = (await (await api('/api/v1/tokens', admin)).json()) as { tokens: { id: string }[] }
    expect(all.tokens.map((t) => t.id)).toContain(siteViewer.record.id)

    // It revokes only those, too; the others keep working.
    expect(
      (await api(`/api/v1/tokens/${h.tokens.verify(admin)!.id}`, electrodeAdmin, { method: 'DELETE' })).status,
    ).toBe(403)
    expect((await api(`/api/v1/tokens/${siteViewer.record.id}`, electrodeAdmin, { method: 'DELETE' })).status).toBe(403)
    expect(await statusWith(admin)).toBe(200)
    expect(await statusWith(siteViewer.token)).toBe(200)
    expect((await api(`/api/v1/tokens/${lineViewer.body.id}`, electrodeAdmin, { method: 'DELETE' })).status).toBe(204)
    expect(await statusWith(lineViewer.body.token)).toBe(401)
  })
})
