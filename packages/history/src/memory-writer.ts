import { encodeLine } from './line-protocol.ts'
import { emptyRefusals, type HistoryPoint, type RefusalReason } from './point.ts'
import type { HistorySink, HistoryStats } from './sink.ts'

/**
 * The in-memory twin of `HistoryWriter` for other packages' tests (the processor's, the CLI's):
 * same interface, same refusals (it runs the same encoder), points kept in an array in write order.
 * Unbounded on purpose: it exists for tests, which want to see everything.
 */
export class MemoryHistoryWriter implements HistorySink {
  /** Every accepted point, in order. */
  readonly points: HistoryPoint[] = []
  /** The same points as line protocol (what `HistoryWriter` would send). */
  readonly lines: string[] = []
  private state: 'new' | 'running' | 'stopped' = 'new'
  private readonly refused = emptyRefusals()

  async start(): Promise<void> {
    if (this.state === 'stopped') throw new Error('history writer: cannot start after stop')
    this.state = 'running'
  }

  async stop(): Promise<void> {
    this.state = 'stopped'
  }

  write(points: readonly HistoryPoint[]): void {
    if (this.state !== 'running') throw new Error(`history writer: write while ${this.state}`)
    for (const point of points) {
      const encoded = encodeLine(point)
      if (encoded.indexOf(' ') < 0) {
        this.refused[encoded as RefusalReason]++
        continue
      }
      this.points.push(point)
      this.lines.push(encoded)
    }
  }

  async drain(_timeoutMs: number): Promise<boolean> {
    return true
  }

  stats(): HistoryStats {
    return {
      accepted: this.points.length,
      written: this.points.length,
      refused: { ...this.refused },
      queuedMemory: 0,
      queuedDisk: 0,
      diskBytes: 0,
      retries: 0,
      lastError: null,
      healthy: true,
      unhealthyReason: null,
    }
  }
}
