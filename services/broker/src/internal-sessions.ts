import { internalRoleOfClientId } from '@plantwatt/bus'

// A bound on what the broker queues for plantwatt's own persistent sessions while nobody reads
// them (issue 12 finding 15). The processor keeps a persistent session under a stable client id so
// that a restart resumes it and loses no reading; but a session whose owner never comes back (a
// renamed instance, a role moved to another host) would otherwise collect every QoS 1 reading of
// the plant for ever. Devices' sessions are not bounded here: each holds only its own commands.
//
// The broker asks `admit` which subscribers of a message may have it queued; an offline internal
// session past `maxQueued` since it went away is left out (the message is dropped for it, and
// counted). Presence comes from connect and disconnect events of every broker of a cluster, so a
// processor connected to another broker is not taken for gone. Pure: no clock, no I/O.

export interface QueueSubscriber {
  clientId: string
}

export class InternalSessionBound {
  /** Connections per internal client id, across the cluster (a takeover briefly counts two). */
  private readonly online = new Map<string, number>()
  /** Offline internal sessions: messages queued since each went away, or since this broker started. */
  private readonly queuedWhileAway = new Map<string, number>()

  /**
   * @param maxQueued messages queued for one offline internal session at most
   * @param maxTracked internal sessions counted at most (the oldest go first): far more than any
   *   installation has roles; one forgotten restarts its count at 0, so it stays bounded by a
   *   multiple of `maxQueued`.
   */
  constructor(
    private readonly maxQueued: number,
    private readonly maxTracked = 10_000,
  ) {}

  connected(clientId: string): void {
    if (internalRoleOfClientId(clientId) === undefined) return
    this.online.set(clientId, (this.online.get(clientId) ?? 0) + 1)
    this.queuedWhileAway.delete(clientId)
  }

  disconnected(clientId: string): void {
    const count = this.online.get(clientId)
    if (count === undefined) return
    if (count > 1) this.online.set(clientId, count - 1)
    else this.online.delete(clientId)
  }

  /**
   * The subscribers that may have this message queued; `dropped` lists the offline internal
   * sessions it is refused to, `full` those for which this is the first refusal since they left.
   */
  admit<T extends QueueSubscriber>(subscribers: T[]): { admitted: T[]; dropped: number; full: string[] } {
    let admitted: T[] | undefined
    let dropped = 0
    const full: string[] = []
    for (let i = 0; i < subscribers.length; i++) {
      const { clientId } = subscribers[i]!
      if (this.online.has(clientId) || internalRoleOfClientId(clientId) === undefined) {
        admitted?.push(subscribers[i]!)
        continue
      }
      const queued = this.queuedWhileAway.get(clientId) ?? 0
      if (queued < this.maxQueued) {
        this.track(clientId, queued + 1)
        admitted?.push(subscribers[i]!)
        continue
      }
      // The first refusal: copy what was admitted so far (most messages refuse no one, and allocate nothing).
      admitted ??= subscribers.slice(0, i)
      if (queued === this.maxQueued) {
        full.push(clientId)
        this.track(clientId, queued + 1)
      }
      dropped++
    }
    return { admitted: admitted ?? subscribers, dropped, full }
  }

  private track(clientId: string, queued: number): void {
    this.queuedWhileAway.set(clientId, queued)
    if (this.queuedWhileAway.size > this.maxTracked) {
      const oldest = this.queuedWhileAway.keys().next().value
      if (oldest !== undefined) this.queuedWhileAway.delete(oldest)
    }
  }
}
