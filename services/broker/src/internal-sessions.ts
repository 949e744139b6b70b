import { internalRoleOfClientId } from '@plantwatt/bus'

// A bound on plantwatt's own persistent sessions while nobody reads them (issue 12 finding 15).
// The processor keeps a persistent session under a stable client id so that a restart resumes
// it and loses no reading; but a session whose owner never comes back (a renamed instance, a role
// moved to another host) would otherwise collect every QoS 1 reading of the plant for ever.
// Devices' sessions are not bounded here: each holds only its own commands.
//
// The broker counts the messages it queues for each offline internal session; at `maxQueued` the
// session expires: its subscriptions are removed and nothing more is queued for it while its owner
// stays away; what it holds stays for its owner if it ever returns (it then subscribes afresh). Expiring, rather than
// refusing single messages, keeps aedes' rule that a message for a persistent subscriber is in
// the store before it is delivered: a session that reconnects as the limit is reached may be
// disconnected once, never lose messages one by one. Pure: no clock, no I/O.

export interface QueueSubscriber {
  clientId: string
}

export class InternalSessionBound {
  /**
   * Internal client ids connected to another broker of the cluster, by broker id. Only
   * authenticated internal clients are ever announced (a handful per broker); a broker's entry
   * goes when its last client leaves (one that crashed keeps its few until then, which only
   * ever spares sessions from the bound, never cuts one short).
   */
  private readonly remote = new Map<string, Set<string>>()
  /** Offline internal sessions: messages queued since each went away, or since this broker started. */
  private readonly queued = new Map<string, number>()
  /**
   * Sessions that reached the limit while their owner is away: nothing more is queued for them
   * until the owner connects again (here or at another broker). Their subscriptions are removed
   * too, but that is a store round trip, and aedes may still hand over a message it matched to
   * them before the removal settled (seen in CI: 3 to 9 more than the limit when a device
   * publishes as fast as it is acknowledged); refusing them here is what makes the limit exact.
   * Only internal client ids enter, at most `maxTracked` (the oldest go first).
   */
  private readonly spent = new Set<string>()

  /**
   * @param maxQueued messages queued for one offline internal session before it expires
   * @param isLocal whether the client id is connected (or connecting) to this broker: exact, so
   *   a processor that reconnects here is never taken for gone
   * @param maxTracked offline sessions counted at most (the oldest go first): far more than any
   *   installation has roles; one forgotten restarts its count at 0
   */
  constructor(
    private readonly maxQueued: number,
    private readonly isLocal: (clientId: string) => boolean,
    private readonly maxTracked = 10_000,
  ) {}

  /** Another broker announced that `clientId` connected to it. */
  remoteConnected(brokerId: string, clientId: string): void {
    if (internalRoleOfClientId(clientId) === undefined) return
    let clients = this.remote.get(brokerId)
    if (clients === undefined) {
      clients = new Set()
      this.remote.set(brokerId, clients)
    }
    clients.add(clientId)
    this.queued.delete(clientId)
    this.spent.delete(clientId)
  }

  /** Another broker announced that `clientId` left it. */
  remoteDisconnected(brokerId: string, clientId: string): void {
    const clients = this.remote.get(brokerId)
    if (clients?.delete(clientId) && clients.size === 0) this.remote.delete(brokerId)
  }

  /** This broker's client connected: its count starts afresh when it leaves. */
  localConnected(clientId: string): void {
    this.queued.delete(clientId)
    this.spent.delete(clientId)
  }

  /**
   * The subscribers a message is to be queued for: `subscribers` without the sessions that
   * expired while their owner is away (the same array when none is left out).
   */
  admit<S extends QueueSubscriber>(subscribers: S[]): S[] {
    if (this.spent.size === 0) return subscribers
    if (!subscribers.some(({ clientId }) => this.spent.has(clientId) && !this.isOnline(clientId))) return subscribers
    return subscribers.filter(({ clientId }) => !this.spent.has(clientId) || this.isOnline(clientId))
  }

  /**
   * Counts one message queued for `subscribers`; returns the internal sessions that reached the
   * limit with it and are to expire now (each once).
   */
  count(subscribers: readonly QueueSubscriber[]): string[] {
    let expire: string[] | undefined
    for (const { clientId } of subscribers) {
      if (internalRoleOfClientId(clientId) === undefined || this.isOnline(clientId)) continue
      const queued = (this.queued.get(clientId) ?? 0) + 1
      if (queued < this.maxQueued) {
        this.track(clientId, queued)
        continue
      }
      this.queued.delete(clientId)
      this.spend(clientId)
      expire ??= []
      expire.push(clientId)
    }
    return expire ?? NONE
  }

  private isOnline(clientId: string): boolean {
    if (this.isLocal(clientId)) return true
    for (const clients of this.remote.values()) if (clients.has(clientId)) return true
    return false
  }

  private spend(clientId: string): void {
    this.spent.add(clientId)
    if (this.spent.size > this.maxTracked) {
      const oldest = this.spent.values().next().value
      if (oldest !== undefined) this.spent.delete(oldest)
    }
  }

  private track(clientId: string, queued: number): void {
    this.queued.set(clientId, queued)
    if (this.queued.size > this.maxTracked) {
      const oldest = this.queued.keys().next().value
      if (oldest !== undefined) this.queued.delete(oldest)
    }
  }
}

const NONE: string[] = []
