import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import type { LineSender } from '../src/influx-sender.ts'
import { classifyStatus, OK, type SendOutcome } from '../src/retry-policy.ts'

export const silentLogger = pino({ level: 'silent' })

export function tempDir(prefix = 'plantwatt-history-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}

/**
 * A sender without a socket: `answer(lines)` decides each request's HTTP status (default 204);
 * accepted lines are kept in arrival order, every request is logged.
 */
export class FakeSender implements LineSender {
  readonly received: string[] = []
  readonly requests: { lines: string[]; status: number }[] = []
  answer: (lines: string[]) => number | { status: number; retryAfter?: string } = () => 204

  async send(body: string): Promise<SendOutcome> {
    const lines = body.split('\n')
    const answer = this.answer(lines)
    const { status, retryAfter } = typeof answer === 'number' ? { status: answer, retryAfter: undefined } : answer
    this.requests.push({ lines, status })
    if (status >= 200 && status < 300) {
      this.received.push(...lines)
      return OK
    }
    return classifyStatus(status, retryAfter, `status ${status}`, Date.now())
  }
}

/** Polls `condition` until it holds or `timeoutMs` passes (tests wait for conditions, never sleep). */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
