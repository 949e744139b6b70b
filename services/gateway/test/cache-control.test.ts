import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Harness, startHarness } from './harness.ts'

// Issue 12 finding 18: no API answer may be kept by a browser or a proxy cache, least of all the
// 201 that carries a new token; the dashboard's files keep their ETag revalidation.

describe('Cache-Control on API answers', () => {
  let h: Harness
  let admin: string

  beforeAll(async () => {
    h = await startHarness({ httpRequestsPerMinute: 5 })
    admin = (await h.tokens.issue({ name: 'admin', role: 'admin' })).token
  })

  afterAll(async () => {
    await h.close()
  })

  it('sends no-store on every /api/v1 answer, errors and the new token included', async () => {
    const auth = { authorization: `Bearer ${admin}` }
    const answers = [
      await fetch(`http://${h.base}/api/v1/tokens`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'mes', role: 'viewer' }),
      }),
      await fetch(`http://${h.base}/api/v1/live?scope=yibin`, { headers: auth }),
      await fetch(`http://${h.base}/api/v1/live?scope=yibin/nowhere`, { headers: auth }),
      await fetch(`http://${h.base}/api/v1/plant`),
      await fetch(`http://${h.base}/api/v1/no-such-route`, { headers: auth }),
    ]
    expect(answers.map((a) => a.status)).toEqual([201, 200, 404, 401, 404])
    for (const answer of answers) expect(answer.headers.get('cache-control')).toBe('no-store')
    // The rate limit's refusal too (5 a minute for this token).
    let refused: Response | undefined
    for (let i = 0; i < 10 && !refused; i++) {
      const answer = await fetch(`http://${h.base}/api/v1/plant`, { headers: auth })
      if (answer.status === 429) refused = answer
    }
    expect(refused?.headers.get('cache-control')).toBe('no-store')
  })

  it('keeps ETag revalidation on the dashboard', async () => {
    const page = await fetch(`http://${h.base}/`)
    expect(page.status).toBe(200)
    expect(page.headers.get('cache-control')).toBe('no-cache')
    const etag = page.headers.get('etag')!
    expect(etag).toBeTruthy()
    expect((await fetch(`http://${h.base}/`, { headers: { 'if-none-match': etag } })).status).toBe(304)
  })
})
