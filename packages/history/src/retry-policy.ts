/**
 * What to do after a write request, decided from the answer alone (pure; tested without a server).
 * plantwatt's queue is the only place that retries, so this replaces the client's policy, which in
 * 1.35 reads `Retry-After` as milliseconds (HTTP says seconds or an HTTP-date: RFC 9110 §10.2.3)
 * and drops 400/401/404/413/422 batches for good.
 */

export type SendOutcome =
  | { readonly kind: 'ok' }
  /** The server refused the content: bisect the batch to find the bad lines (400, 422). */
  | {
      readonly kind: 'refused'
      readonly status: number
      readonly reason: 'bad_request' | 'unprocessable'
      readonly message: string
    }
  /** The request body was too large (413): halve the batch. */
  | { readonly kind: 'too_large'; readonly status: number; readonly message: string }
  /**
   * Keep the data and try again later. `config` marks answers that no retry will fix without a
   * person (401/403/404 and unexpected codes: wrong token, org or bucket): the writer reports
   * itself unhealthy with the reason, and still never drops anything.
   */
  | {
      readonly kind: 'retry'
      readonly status: number | null
      readonly retryAfterMs: number | null
      readonly config: boolean
      readonly message: string
    }

export const OK: SendOutcome = Object.freeze({ kind: 'ok' })

interface ErrorLike {
  statusCode?: unknown
  headers?: Record<string, string | string[] | undefined>
  message?: unknown
  code?: unknown
  name?: unknown
}

/** Maps what the client's transport rejected with (its `HttpError`, a socket error, a timeout) to an outcome. */
export function classifyError(error: unknown, nowMs: number): SendOutcome {
  const e = (error ?? {}) as ErrorLike
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : String(error)
  if (typeof e.statusCode !== 'number') {
    // No answer at all: connection refused/reset, DNS, timeout, abort. The server may or may not
    // have stored the batch; resending is safe because InfluxDB overwrites an identical point.
    const code = typeof e.code === 'string' ? e.code : typeof e.name === 'string' ? e.name : 'Error'
    return { kind: 'retry', status: null, retryAfterMs: null, config: false, message: `${code}: ${message}` }
  }
  return classifyStatus(e.statusCode, headerValue(e.headers?.['retry-after']), message, nowMs)
}

export function classifyStatus(
  status: number,
  retryAfter: string | undefined,
  message: string,
  nowMs: number,
): SendOutcome {
  if (status >= 200 && status < 300) return OK
  if (status === 400) return { kind: 'refused', status, reason: 'bad_request', message }
  if (status === 422) return { kind: 'refused', status, reason: 'unprocessable', message }
  if (status === 413) return { kind: 'too_large', status, message }
  if (status === 429 || status === 503) {
    return { kind: 'retry', status, retryAfterMs: parseRetryAfter(retryAfter, nowMs), config: false, message }
  }
  if (status >= 500) return { kind: 'retry', status, retryAfterMs: null, config: false, message }
  // 401/403/404, other 4xx, 3xx: nothing a retry alone fixes, and nothing that makes the data bad.
  return { kind: 'retry', status, retryAfterMs: null, config: true, message }
}

/** `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3), in ms; null when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | null {
  if (value === undefined) return null
  const text = value.trim()
  if (/^\d+$/.test(text)) return Number(text) * 1000
  const date = Date.parse(text)
  if (Number.isNaN(date)) return null
  return Math.max(0, date - nowMs)
}

/**
 * Exponential backoff with "equal jitter": half the step fixed, half random, so that many plantwatt
 * processes do not retry in step, yet each waits at least half the step. `attempt` starts at 0.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number): number {
  const step = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30))
  return Math.round(step / 2 + (random() * step) / 2)
}

/**
 * The wait before retrying after `outcome`: the server's `Retry-After` when it gave one (capped,
 * plus up to 10 % jitter, never less than asked), else the backoff.
 */
export function retryDelay(
  outcome: Extract<SendOutcome, { kind: 'retry' }>,
  attempt: number,
  policy: { minRetryDelayMs: number; maxRetryDelayMs: number; maxRetryAfterMs: number },
  random: () => number,
): number {
  if (outcome.retryAfterMs !== null) {
    const asked = Math.min(outcome.retryAfterMs, policy.maxRetryAfterMs)
    return Math.round(asked + random() * asked * 0.1)
  }
  return backoffDelay(attempt, policy.minRetryDelayMs, policy.maxRetryDelayMs, random)
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}
