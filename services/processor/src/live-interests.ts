import type { LiveInterest } from '@plantwatt/bus'

// Which scopes the gateways have live subscribers for (issue 14): each gateway's own set, under a
// lease it renews, and their union, kept with a count per scope so that a scope stays watched
// while any gateway watches it. Pure: the caller passes the wall clock.

interface GatewayEntry {
  scopes: Set<string>
  /** The version of the gateway's last message taken. */
  version: number
  expiresAtMs: number
}

export interface InterestChange {
  /** Scopes that some gateway started to watch with this message (the union may already hold them). */
  added: string[]
  /** Scopes nobody watches any more. */
  dropped: string[]
  /** The book may be behind this gateway (a message was missed, or it is unknown): ask it for its full set. */
  resync: boolean
}

export class InterestBook {
  private readonly gateways = new Map<string, GatewayEntry>()
  private readonly counts = new Map<string, number>()
  /** Gateways forgotten because their lease ran out. */
  expiredGateways = 0

  /** Scopes some gateway watches now. */
  get size(): number {
    return this.counts.size
  }

  get gatewayCount(): number {
    return this.gateways.size
  }

  has(scope: string): boolean {
    return this.counts.has(scope)
  }

  scopes(): IterableIterator<string> {
    return this.counts.keys()
  }

  /**
   * Takes a gateway's message. `accept(scope)` filters scopes that are not in the plant (they are
   * ignored, never stored). An `add` or `remove` whose version is not the next one is taken anyway
   * (it is the gateway's latest word on those scopes) and asks for a resync.
   */
  apply(message: LiveInterest, nowMs: number, accept: (scope: string) => boolean): InterestChange {
    const change: InterestChange = { added: [], dropped: [], resync: false }
    let entry = this.gateways.get(message.gateway)
    if (message.kind === 'full') {
      if (!entry) {
        entry = { scopes: new Set(), version: message.version, expiresAtMs: 0 }
        this.gateways.set(message.gateway, entry)
      }
      const next = new Set((message.scopes ?? []).filter(accept))
      for (const scope of entry.scopes) if (!next.has(scope)) this.release(scope, change)
      for (const scope of next) {
        // A gateway that announces in full holds no figures yet: it needs each at once.
        if (!entry.scopes.has(scope)) this.hold(scope)
        change.added.push(scope)
      }
      entry.scopes = next
    } else {
      if (!entry || message.version !== entry.version + (message.kind === 'heartbeat' ? 0 : 1)) change.resync = true
      if (!entry) {
        if (message.kind === 'heartbeat') return change
        entry = { scopes: new Set(), version: message.version, expiresAtMs: 0 }
        this.gateways.set(message.gateway, entry)
      }
      for (const scope of message.scopes ?? []) {
        if (message.kind === 'add' && accept(scope) && !entry.scopes.has(scope)) {
          entry.scopes.add(scope)
          this.hold(scope)
          change.added.push(scope)
        } else if (message.kind === 'remove' && entry.scopes.delete(scope)) {
          this.release(scope, change)
        }
      }
    }
    entry.version = message.version
    entry.expiresAtMs = nowMs + message.leaseMs
    return change
  }

  /** Forgets the gateways whose lease ran out; returns the scopes nobody watches any more. */
  expire(nowMs: number): string[] {
    const change: InterestChange = { added: [], dropped: [], resync: false }
    for (const [gateway, entry] of this.gateways) {
      if (entry.expiresAtMs > nowMs) continue
      this.gateways.delete(gateway)
      this.expiredGateways++
      for (const scope of entry.scopes) this.release(scope, change)
    }
    return change.dropped
  }

  private hold(scope: string): void {
    this.counts.set(scope, (this.counts.get(scope) ?? 0) + 1)
  }

  private release(scope: string, change: InterestChange): void {
    const count = (this.counts.get(scope) ?? 0) - 1
    if (count > 0) this.counts.set(scope, count)
    else {
      this.counts.delete(scope)
      change.dropped.push(scope)
    }
  }
}
