import { describe, expect, it } from 'vitest'
import { backoffDelay, classifyError, classifyStatus, parseRetryAfter, retryDelay } from '../src/retry-policy.ts'

describe('retry policy', () => {
  const now = Date.parse('2026-01-01T00:00:00Z')

  it('reads Retry-After as seconds or as an HTTP-date, never as milliseconds', () => {
    expect(parseRetryAfter('2', now)).toBe(2000)
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000)
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000)
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', now)).toBe(0)
    expect(parseRetryAfter('soon', now)).toBeNull()
    expect(parseRetryAfter(undefined, now)).toBeNull()
  })

  it('classifies every status the brief names', () => {
    expect(classifyStatus(204, undefined, '', now).kind).toBe('ok')
    expect(classifyStatus(400, undefined, 'bad', now)).toMatchObject({ kind: 'refused', reason: 'bad_request' })
    expect(classifyStatus(422, undefined, 'bad', now)).toMatchObject({ kind: 'refused', reason: 'unprocessable' })
    expect(classifyStatus(413, undefined, 'big', now).kind).toBe('too_large')
    expect(classifyStatus(429, '2', 'slow', now)).toMatchObject({ kind: 'retry', retryAfterMs: 2000, config: false })
    expect(classifyStatus(503, undefined, '', now)).toMatchObject({ kind: 'retry', retryAfterMs: null, config: false })
    expect(classifyStatus(500, '5', '', now)).toMatchObject({ kind: 'retry', config: false })
    for (const status of [401, 403, 404, 301, 405]) {
      expect(classifyStatus(status, undefined, '', now)).toMatchObject({ kind: 'retry', config: true })
    }
  })

  it('classifies client errors: HttpError with headers, and socket errors', () => {
    const httpError = { statusCode: 429, headers: { 'retry-after': '3' }, message: 'too many' }
    expect(classifyError(httpError, now)).toMatchObject({ kind: 'retry', status: 429, retryAfterMs: 3000 })
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })
    expect(classifyError(refused, now)).toMatchObject({ kind: 'retry', status: null, config: false })
    expect((classifyError(refused, now) as { message: string }).message).toMatch(/^ECONNREFUSED/)
  })

  it('backs off exponentially with jitter between half and the whole step, capped', () => {
    expect(backoffDelay(0, 100, 10_000, () => 0)).toBe(50)
    expect(backoffDelay(0, 100, 10_000, () => 1)).toBe(100)
    expect(backoffDelay(3, 100, 10_000, () => 1)).toBe(800)
    expect(backoffDelay(40, 100, 10_000, () => 1)).toBe(10_000)
    expect(backoffDelay(40, 100, 10_000, () => 0)).toBe(5_000)
  })

  it('waits what the server asked, plus at most 10 %, capped', () => {
    const policy = { minRetryDelayMs: 100, maxRetryDelayMs: 1000, maxRetryAfterMs: 60_000 }
    const outcome = { kind: 'retry', status: 429, retryAfterMs: 2000, config: false, message: '' } as const
    expect(retryDelay(outcome, 5, policy, () => 0)).toBe(2000)
    expect(retryDelay(outcome, 5, policy, () => 1)).toBe(2200)
    expect(retryDelay({ ...outcome, retryAfterMs: 86_400_000 }, 0, policy, () => 0)).toBe(60_000)
  })
})
