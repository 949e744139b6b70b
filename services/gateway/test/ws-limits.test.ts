import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { WsTestClient } from '../../../test/support/ws-client.ts'
import { type Harness, metric, startHarness } from './harness.ts'

// Issue 12 finding 16: WebSocket connections are limited per token and per address, and
// subscriptions per token across its connections. Real ws clients from distinct loopback
// addresses (127.0.0.x).

const SCOPE = 'yibin/electrode/coating-1'

/** Opens /ws from a local address: the socket once open, or the status its upgrade was refused with. */
function connectFrom(localAddress: string, base: string, token: string): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://${base}/ws?token=${token}`, { localAddress })
    socket.on('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0)
      socket.terminate()
    })
    socket.on('open', () => resolve(socket))
    socket.on('error', (error) => reject(error))
  })
}

describe('WebSocket connection and subscription limits', () => {
  let h: Harness
  const opened: WebSocket[] = []
  const token = async (name: string) => (await h.tokens.issue({ name, role: 'viewer' })).token
  const connect = async (address: string, t: string) => {
    const result = await connectFrom(address, h.base, t)
    if (typeof result !== 'number') opened.push(result)
    return result
  }
  const clients = () => metric(h.base, 'plantwatt_ws_clients')
  /** 101 for an accepted upgrade, else the refusal's status: readable in a failed assertion. */
  const status = (result: WebSocket | number) => (typeof result === 'number' ? result : 101)

  beforeAll(async () => {
    h = await startHarness({
      ws: { maxConnectionsPerToken: 3, maxConnectionsPerAddress: 4, maxSubscriptionsPerToken: 5 },
    })
  })

  afterAll(async () => {
    for (const socket of opened) socket.terminate()
    await h.close()
  })

  it('refuses a token’s connection past its limit with 429, from any address; another token still connects', async () => {
    const a = await token('a')
    const first = [await connect('127.0.0.31', a), await connect('127.0.0.32', a), await connect('127.0.0.33', a)]
    expect(first.map(status)).toEqual([101, 101, 101])
    expect(status(await connect('127.0.0.34', a))).toBe(429)
    expect(status(await connect('127.0.0.34', await token('b')))).toBe(101)

    // A closed connection frees its place.
    const closing = first[0] as WebSocket
    closing.close()
    await expect.poll(async () => status(await connect('127.0.0.35', a))).toBe(101)
  })

  it('lets no more than the limit stay open when a token connects 10 times at once', async () => {
    const c = await token('c')
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => connect(`127.0.0.${50 + i}`, c)))
    const sockets = results.filter((r): r is WebSocket => r instanceof WebSocket)
    const stillOpen = () => sockets.filter((s) => s.readyState === WebSocket.OPEN).length
    await expect.poll(stillOpen).toBeLessThanOrEqual(3)
    expect(stillOpen()).toBe(3)
  })

  it('refuses an address’s connection past its limit with 429; another address still connects', async () => {
    for (let i = 0; i < 4; i++) expect(status(await connect('127.0.0.41', await token(`d${i}`)))).toBe(101)
    expect(status(await connect('127.0.0.41', await token('d4')))).toBe(429)
    expect(status(await connect('127.0.0.42', await token('d5')))).toBe(101)
  })

  it('limits the subscriptions of a token across its connections', async () => {
    const e = await token('e')
    const one = await WsTestClient.connect(`ws://${h.base}/ws?token=${e}`)
    const two = await WsTestClient.connect(`ws://${h.base}/ws?token=${e}`)
    for (const id of ['s1', 's2', 's3']) {
      one.send({ op: 'subscribe', id, channel: 'live', scope: SCOPE })
      await one.next((f) => f.type === 'subscribed' && f.id === id)
    }
    for (const id of ['s4', 's5']) {
      two.send({ op: 'subscribe', id, channel: 'live', scope: SCOPE })
      await two.next((f) => f.type === 'subscribed' && f.id === id)
    }
    two.send({ op: 'subscribe', id: 's6', channel: 'live', scope: SCOPE })
    expect(await two.next((f) => f.id === 's6')).toMatchObject({ type: 'error', code: 'rate_limited' })
    // Unsubscribing or closing gives the places back.
    two.send({ op: 'unsubscribe', id: 's5' })
    await two.next((f) => f.type === 'unsubscribed')
    two.send({ op: 'subscribe', id: 's7', channel: 'live', scope: SCOPE })
    expect(await two.next((f) => f.id === 's7')).toMatchObject({ type: 'subscribed' })
    await one.close()
    for (const id of ['s8', 's9', 's10']) {
      two.send({ op: 'subscribe', id, channel: 'live', scope: SCOPE })
      expect(await two.next((f) => f.id === id)).toMatchObject({ type: 'subscribed' })
    }
    await two.close()
    expect(await clients()).toBeGreaterThan(0)
  })
})
