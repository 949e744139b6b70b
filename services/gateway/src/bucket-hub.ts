import type { BucketUpdate } from '@plantwatt/bus'
import type { BucketStep } from '@plantwatt/contract'

// Fan-out of closed and revised buckets (CONTRACT.md §5 `buckets`) from the processor to the
// subscriptions of the same scope and step. Each bucket is serialised once however many clients
// share it; only the `sub` prefix differs per client.

/** CONTRACT.md §5's optional bucket fields, in the order frames carry them. */
const OPTIONAL_FIGURES = ['pvWh', 'idleCo2G', 'outputUnits', 'savedWh', 'savedCo2G'] as const

export interface BucketSink {
  id: string
  push(frame: string): void
}

export class BucketHub {
  private readonly byKey = new Map<string, Set<BucketSink>>()
  framesSent = 0

  private static key(scope: string, step: BucketStep): string {
    return `${step} ${scope}`
  }

  subscribe(scope: string, step: BucketStep, sink: BucketSink): () => void {
    const key = BucketHub.key(scope, step)
    let sinks = this.byKey.get(key)
    if (!sinks) {
      sinks = new Set()
      this.byKey.set(key, sinks)
    }
    sinks.add(sink)
    return () => {
      sinks.delete(sink)
      if (sinks.size === 0) this.byKey.delete(key)
    }
  }

  get subscriptionCount(): number {
    let count = 0
    for (const sinks of this.byKey.values()) count += sinks.size
    return count
  }

  apply(update: BucketUpdate): void {
    for (const bucket of update.buckets) {
      const sinks = this.byKey.get(BucketHub.key(bucket.scope, bucket.step))
      if (!sinks) continue
      const { scope, step, t, energyWh, co2G, co2MarketG, idleWh, peakW, revision } = bucket
      // `{"scope":…}` once; each frame puts type and sub in front of the same fields. The optional
      // fields (CONTRACT.md §5) only where the processor gave them; named one by one so that nothing
      // else of the bus message reaches a client.
      const figures: Record<string, unknown> = { scope, step, t, energyWh, co2G, co2MarketG, idleWh, peakW, revision }
      for (const name of OPTIONAL_FIGURES) if (bucket[name] !== undefined) figures[name] = bucket[name]
      const body = JSON.stringify(figures).slice(1)
      for (const sink of sinks) {
        sink.push(`{"type":"bucket","sub":${JSON.stringify(sink.id)},${body}`)
        this.framesSent++
      }
    }
  }
}
