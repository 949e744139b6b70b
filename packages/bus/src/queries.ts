import { randomBytes } from 'node:crypto'
import type { Bus, Unsubscribe } from './bus.ts'
import { decodeMessage, encodeMessage, INTERNAL_PREFIX } from './internal-topics.ts'

// Request and answer over the bus, for what the gateway must ask the processor rather than be
// told (GET /api/v1/energy, GET /api/v1/devices/{id}). One path whether the two share a process
// (in-process bus) or not (MQTT bus): the same code runs, and is tested, in both layouts.

export const QUERY_TOPIC = `${INTERNAL_PREFIX}/query`

export function queryReplyTopic(clientId: string): string {
  return `${INTERNAL_PREFIX}/query-reply/${clientId}`
}

export interface QueryRequest {
  id: string
  replyTo: string
  method: string
  params: unknown
}

export type QueryAnswer = { id: string; ok: true; result: unknown } | { id: string; ok: false; message: string }

export type QueryHandlers = Record<string, (params: unknown) => unknown>

/**
 * Answers queries with `handlers` (each may return a promise); an unknown method or a handler that
 * throws or rejects answers an error.
 */
export function serveQueries(
  bus: Bus,
  handlers: QueryHandlers,
  onError: (error: unknown) => void,
): Promise<Unsubscribe> {
  return bus.subscribe(QUERY_TOPIC, async (_topic, payload) => {
    let request: QueryRequest
    try {
      request = decodeMessage<QueryRequest>(payload)
    } catch (error) {
      return onError(error)
    }
    if (typeof request?.id !== 'string' || typeof request.replyTo !== 'string') return
    // Answers go only to reply topics, never to a topic a request names freely.
    if (!request.replyTo.startsWith(`${INTERNAL_PREFIX}/query-reply/`)) return
    let answer: QueryAnswer
    const handler = Object.hasOwn(handlers, request.method) ? handlers[request.method] : undefined
    if (!handler) answer = { id: request.id, ok: false, message: `unknown query ${request.method}` }
    else {
      try {
        // A handler may answer later (the history store reads off the event loop's critical path).
        answer = { id: request.id, ok: true, result: await handler(request.params) }
      } catch (error) {
        answer = { id: request.id, ok: false, message: error instanceof Error ? error.message : String(error) }
      }
    }
    bus.publish(request.replyTo, encodeMessage(answer), { qos: 0 }).catch(onError)
  })
}

export class QueryError extends Error {}
export class QueryTimeout extends Error {}

/** Asks queries over the bus; each call resolves with its answer or rejects after a timeout. */
export class QueryClient {
  private readonly pending = new Map<
    string,
    { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }
  >()
  private unsubscribe: Unsubscribe | undefined
  private readonly replyTo: string
  private counter = 0

  private constructor(
    private readonly bus: Bus,
    clientId: string,
  ) {
    this.replyTo = queryReplyTopic(clientId)
  }

  static async open(bus: Bus, clientId = randomBytes(6).toString('hex')): Promise<QueryClient> {
    const client = new QueryClient(bus, clientId)
    client.unsubscribe = await bus.subscribe(client.replyTo, (_topic, payload) => client.onAnswer(payload))
    return client
  }

  call<T>(method: string, params: unknown, timeoutMs = 5000): Promise<T> {
    const id = `${Date.now().toString(36)}-${(this.counter++).toString(36)}`
    const request: QueryRequest = { id, replyTo: this.replyTo, method, params }
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new QueryTimeout(`no answer to ${method} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer })
      this.bus.publish(QUERY_TOPIC, encodeMessage(request), { qos: 0 }).catch((error) => {
        clearTimeout(timer)
        this.pending.delete(id)
        reject(error)
      })
    })
  }

  async close(): Promise<void> {
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer)
      reject(new QueryError('query client closed'))
    }
    this.pending.clear()
    await this.unsubscribe?.()
  }

  private onAnswer(payload: Buffer): void {
    let answer: QueryAnswer
    try {
      answer = decodeMessage<QueryAnswer>(payload)
    } catch {
      return
    }
    const waiting = this.pending.get(answer?.id)
    if (!waiting) return
    this.pending.delete(answer.id)
    clearTimeout(waiting.timer)
    if (answer.ok) waiting.resolve(answer.result)
    else waiting.reject(new QueryError(answer.message))
  }
}
