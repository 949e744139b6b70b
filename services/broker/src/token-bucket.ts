/**
 * A token bucket: `ratePerS` tokens a second up to `burst`. Pure: time (ms) is passed in.
 * Used for per-client message and subscription rates and the broker-wide connect rate.
 */
export class TokenBucket {
  private tokens: number
  private updatedAt: number

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst
    this.updatedAt = now
  }

  /** Takes one token; false when none is left. */
  take(now: number): boolean {
    if (this.available(now) < 1) return false
    this.tokens -= 1
    return true
  }

  /** Milliseconds until a token is there to take (0 when one is there now). */
  msUntilToken(now: number): number {
    const tokens = this.available(now)
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * 1000) / this.ratePerS)
  }

  /** Tokens there are now (refilled up to `now`), without taking any. */
  available(now: number): number {
    const elapsed = now - this.updatedAt
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerS) / 1000)
      this.updatedAt = now
    }
    return this.tokens
  }
}
