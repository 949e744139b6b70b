// Places for /ws connections and subscriptions (issue 12 finding 16): at most so many connections
// per token and per source address, and so many subscriptions per token across all its
// connections, so that one token or one address cannot make the fan-out cost grow without bound.
// Every entry belongs to an open connection and is deleted with its last one: the maps hold at
// most one entry per open connection.

export interface WsAdmissionLimits {
  maxConnectionsPerToken: number
  maxConnectionsPerAddress: number
  maxSubscriptionsPerToken: number
}

interface TokenUse {
  connections: number
  subscriptions: number
}

/** One token's share of subscriptions, handed to each of its connections. */
export interface SubscriptionQuota {
  /** Takes a place for one subscription; false when the token has none left. */
  take(): boolean
  release(): void
  readonly limit: number
}

export class WsAdmission {
  private readonly tokens = new Map<string, TokenUse>()
  private readonly addresses = new Map<string, number>()

  constructor(private readonly limits: WsAdmissionLimits) {}

  /** Why a new connection of this token from this address would be refused now; undefined if not. */
  refusal(tokenId: string, address: string): string | undefined {
    if ((this.tokens.get(tokenId)?.connections ?? 0) >= this.limits.maxConnectionsPerToken) {
      return `at most ${this.limits.maxConnectionsPerToken} WebSocket connections per token`
    }
    if ((this.addresses.get(address) ?? 0) >= this.limits.maxConnectionsPerAddress) {
      return `at most ${this.limits.maxConnectionsPerAddress} WebSocket connections per address`
    }
    return undefined
  }

  /**
   * Takes a connection's place, checked again here because several upgrades may pass `refusal`
   * before any of them is admitted. Returns the function that gives the place back (once), or the
   * reason for refusing.
   */
  admit(tokenId: string, address: string): { release: () => void } | { refused: string } {
    const refused = this.refusal(tokenId, address)
    if (refused !== undefined) return { refused }
    const use = this.tokens.get(tokenId) ?? { connections: 0, subscriptions: 0 }
    use.connections++
    this.tokens.set(tokenId, use)
    this.addresses.set(address, (this.addresses.get(address) ?? 0) + 1)
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        use.connections--
        if (use.connections === 0) this.tokens.delete(tokenId)
        const left = (this.addresses.get(address) ?? 1) - 1
        if (left === 0) this.addresses.delete(address)
        else this.addresses.set(address, left)
      },
    }
  }

  /** The subscription places of an admitted token (shared by its connections). */
  quota(tokenId: string): SubscriptionQuota {
    const limit = this.limits.maxSubscriptionsPerToken
    const use = () => this.tokens.get(tokenId)
    return {
      limit,
      take: () => {
        const current = use()
        if (!current || current.subscriptions >= limit) return false
        current.subscriptions++
        return true
      },
      release: () => {
        const current = use()
        if (current && current.subscriptions > 0) current.subscriptions--
      },
    }
  }
}
