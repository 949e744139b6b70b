import { once } from 'node:events'
import WebSocket from 'ws'

export type Frame = Record<string, unknown> & { type: string }

/**
 * A WebSocket test client that queues every frame and lets a test wait for the next one that
 * matches, so tests synchronise on events instead of sleeping.
 */
export class WsTestClient {
  readonly frames: Frame[] = []
  private waiters: { predicate: (frame: Frame) => boolean; resolve: (frame: Frame) => void }[] = []
  private cursor = 0

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame
      this.frames.push(frame)
      this.waiters = this.waiters.filter((waiter) => {
        if (!waiter.predicate(frame)) return true
        waiter.resolve(frame)
        return false
      })
    })
  }

  static async connect(url: string, headers: Record<string, string> = {}): Promise<WsTestClient> {
    const socket = new WebSocket(url, { headers })
    const client = new WsTestClient(socket)
    await once(socket, 'open')
    return client
  }

  send(frame: object): void {
    this.socket.send(JSON.stringify(frame))
  }

  /** The first frame, after earlier `next` results, that matches; rejects after `timeoutMs`. */
  next(predicate: (frame: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    for (let i = this.cursor; i < this.frames.length; i++) {
      const frame = this.frames[i]!
      if (predicate(frame)) {
        this.cursor = i + 1
        return Promise.resolve(frame)
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms`)), timeoutMs)
      this.waiters.push({
        predicate,
        resolve: (frame) => {
          clearTimeout(timer)
          this.cursor = this.frames.length
          resolve(frame)
        },
      })
    })
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return
    const closed = once(this.socket, 'close')
    this.socket.close()
    await closed
  }
}

/** Resolves with the HTTP status of a refused WebSocket upgrade. */
export function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers })
    socket.on('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0)
      socket.terminate()
    })
    socket.on('open', () => {
      socket.close()
      reject(new Error('upgrade was accepted'))
    })
    socket.on('error', () => {})
  })
}
