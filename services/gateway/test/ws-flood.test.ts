import { once } from 'node:events'
import type { Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { type Harness, metric, startHarness } from './harness.ts'

// Issue 12 finding 7: every incoming frame is rate-limited, control frames (errors, `subscribed`)
// obey the same high-water mark as the rest, and only a client that reads counts as alive.

const HIGH_WATER = 16 * 1024
/** The largest frame the gateway writes in these tests: an error frame, far below 1 KiB. */
const ONE_FRAME = 1024

/** Polls `read` until `done` holds (at most `timeoutMs`); returns every value read, in order. */
async function sampleUntil<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number): Promise<T[]> {
  const values: T[] = []
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    values.push(value)
    if (done(value) || Date.now() > deadline) return values
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const rawSocket = (socket: WebSocket) => (socket as unknown as { _socket: Socket })._socket

describe('WebSocket floods', () => {
  /** Heartbeat at its default (30 s): floods are caught by the limits, not by a missed pong. */
  let h: Harness
  /** Heartbeat every 100 ms, for the liveness tests. */
  let hb: Harness
  let viewer: string

  beforeAll(async () => {
    const ws = { highWaterBytes: HIGH_WATER, liveHighWaterBytes: 8 * 1024, closeTimeoutMs: 200 }
    h = await startHarness({ ws })
    hb = await startHarness({ ws, heartbeatIntervalMs: 100 })
    viewer = (await h.tokens.issue({ name: 'wall screen', role: 'viewer' })).token
  })

  afterAll(async () => {
    await h.close()
    await hb.close()
  })

  const open = async (on = h, token = viewer) => {
    const socket = new WebSocket(`ws://${on.base}/ws?token=${token}`)
    socket.on('error', () => {})
    await once(socket, 'open')
    return socket
  }
  const clients = (on = h) => metric(on.base, 'plantwatt_ws_clients')

  it('closes a client that floods frames with 1008', async () => {
    const socket = await open()
    const closed = once(socket, 'close')
    for (let i = 0; i < 5000; i++) socket.send('x')
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('still open after 5 s')), 5000))
    try {
      const [code] = (await Promise.race([closed, timeout])) as [number]
      expect(code).toBe(1008)
      expect(await metric(h.base, 'plantwatt_ws_closed_flooding_total')).toBeGreaterThanOrEqual(1)
    } finally {
      socket.terminate()
    }
  })

  it('keeps what is queued for a client that stopped reading under the high-water mark, and closes it', async () => {
    await expect.poll(clients).toBe(0)
    const socket = await open()
    await expect.poll(clients).toBe(1)
    rawSocket(socket).pause()
    // 300,000 one-byte bad frames: each would be answered with an error frame.
    for (let i = 0; i < 300_000; i++) socket.send('x')
    try {
      const samples = await sampleUntil(
        async () => ({ clients: await clients(), buffered: await metric(h.base, 'plantwatt_ws_buffered_bytes') }),
        (s) => s.clients === 0,
        10_000,
      )
      expect(Math.max(...samples.map((s) => s.buffered))).toBeLessThanOrEqual(HIGH_WATER + ONE_FRAME)
      expect(samples.at(-1)!.clients).toBe(0)
    } finally {
      socket.terminate()
    }
  })

  it('does not count unrequested pongs from a client that stopped reading as alive', async () => {
    const token = (await hb.tokens.issue({ name: 'pong sender', role: 'viewer' })).token
    await expect.poll(() => clients(hb)).toBe(0)
    const socket = await open(hb, token)
    await expect.poll(() => clients(hb)).toBe(1)
    rawSocket(socket).pause()
    // Well under any frame rate limit: 20 pongs a second, none of them an answer to a ping it read.
    const timer = setInterval(() => socket.pong(), 50)
    try {
      const samples = await sampleUntil(
        () => clients(hb),
        (n) => n === 0,
        5000,
      )
      expect(samples.at(-1)).toBe(0)
    } finally {
      clearInterval(timer)
      socket.terminate()
    }
  })

  it('keeps a client that reads alive across heartbeats', async () => {
    const token = (await hb.tokens.issue({ name: 'reader', role: 'viewer' })).token
    await expect.poll(() => clients(hb)).toBe(0)
    const socket = await open(hb, token)
    // Several heartbeat rounds (100 ms): the client's own pongs answer the gateway's pings.
    let pings = 0
    socket.on('ping', () => pings++)
    await expect.poll(() => pings, { timeout: 3000 }).toBeGreaterThanOrEqual(5)
    expect(socket.readyState).toBe(WebSocket.OPEN)
    socket.close()
  })
})
