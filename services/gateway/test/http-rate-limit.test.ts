import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { type Harness, httpFrom, startHarness } from './harness.ts'

// Issue 12 finding 6: the HTTP rate limit applies before the token check, keyed by address until a
// token is verified (a random guess gets no fresh allowance), and to /ws and /mqtt upgrades too.
// Each client is a distinct loopback address (127.0.0.x), so one flooding address must not block
// another.

const LIMIT = 20

/** The status of a WebSocket upgrade from a chosen local address: 101 when it was accepted. */
function upgradeFrom(localAddress: string, url: string, protocol?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, protocol, { localAddress })
    socket.on('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0)
      socket.terminate()
    })
    socket.on('open', () => {
      resolve(101)
      socket.terminate()
    })
    socket.on('error', (error) => reject(error))
  })
}

const guess = () => ({ authorization: `Bearer pwt_${randomBytes(24).toString('base64url')}` })

describe('HTTP rate limit before the token check', () => {
  let h: Harness
  let viewer: string

  beforeAll(async () => {
    h = await startHarness({
      httpRequestsPerMinute: LIMIT,
      mqttUpgradesPerMinute: LIMIT,
      // A broker stand-in: the test only needs /mqtt to exist.
      mqttOverWebSocket: (stream) => stream.destroy(),
    })
    viewer = (await h.tokens.issue({ name: 'wall screen', role: 'viewer' })).token
  })

  afterAll(async () => {
    await h.close()
  })

  it('answers a bad-token flood from one address with 429, and other addresses are not blocked', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 3 * LIMIT; i++) {
      statuses.push((await httpFrom('127.0.0.11', h.base, '/api/v1/plant', { headers: guess() })).status)
    }
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(LIMIT)
    expect(statuses.slice(-LIMIT)).toEqual(Array(LIMIT).fill(429))
    // Without any token as well: the address is out of allowance.
    expect((await httpFrom('127.0.0.11', h.base, '/api/v1/plant')).status).toBe(429)

    // Another address still gets its own answers.
    expect((await httpFrom('127.0.0.12', h.base, '/api/v1/plant', { headers: guess() })).status).toBe(401)
    const auth = { authorization: `Bearer ${viewer}` }
    expect((await httpFrom('127.0.0.12', h.base, '/api/v1/plant', { headers: auth })).status).toBe(200)
    // A verified token is limited per token, not by the flooded address it comes from.
    expect((await httpFrom('127.0.0.11', h.base, '/api/v1/plant', { headers: auth })).status).toBe(200)
  })

  it('limits /ws upgrades with bad tokens per address', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 2 * LIMIT; i++) {
      statuses.push(await upgradeFrom('127.0.0.13', `ws://${h.base}/ws?token=pwt_${randomBytes(8).toString('hex')}`))
    }
    expect(statuses.slice(0, LIMIT)).toEqual(Array(LIMIT).fill(401))
    expect(statuses.slice(-LIMIT)).toEqual(Array(LIMIT).fill(429))
    expect(await upgradeFrom('127.0.0.14', `ws://${h.base}/ws?token=${viewer}`)).toBe(101)
  })

  it('limits /mqtt upgrades per address', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 2 * LIMIT; i++) statuses.push(await upgradeFrom('127.0.0.15', `ws://${h.base}/mqtt`, 'mqtt'))
    expect(statuses.slice(0, LIMIT)).toEqual(Array(LIMIT).fill(101))
    expect(statuses.slice(-LIMIT)).toEqual(Array(LIMIT).fill(429))
    expect(await upgradeFrom('127.0.0.16', `ws://${h.base}/mqtt`, 'mqtt')).toBe(101)
  })
})
