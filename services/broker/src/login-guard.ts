// Credential guessing (CONTRACT.md §4 v1.1): after `maxFailures` failed logins for one device id
// from one source address within `windowMs`, that id is refused from that address for `lockoutMs`
// even with the right password. The lockout is keyed by id *and* address so that a stranger
// guessing from one address can never lock the device out where it really connects from. Failed
// logins from one source address are slowed (each refusal delayed, up to `maxDelayMs`) but the
// address is never locked out, because NB-IoT fleets reach the broker from a few operator NAT
// addresses. Pure: time passed in.

export interface LoginGuardOptions {
  maxFailures: number
  windowMs: number
  lockoutMs: number
  /** Added to a refusal's delay per recent failure from the same address. */
  delayStepMs: number
  maxDelayMs: number
  /** Entries kept at most per map; the oldest go first, so guessing cannot grow memory. */
  maxEntries: number
}

export const DEFAULT_LOGIN_GUARD: LoginGuardOptions = Object.freeze({
  maxFailures: 5,
  windowMs: 60_000,
  lockoutMs: 60_000,
  delayStepMs: 100,
  maxDelayMs: 1000,
  maxEntries: 100_000,
})

interface Failures {
  /** Failures in the current window. */
  count: number
  windowStart: number
  lockedUntil: number
}

export class LoginGuard {
  // Maps iterate in insertion order, so re-inserting on update keeps the oldest first for eviction.
  /** Keyed by `lockoutKey(deviceId, address)`. */
  private readonly devices = new Map<string, Failures>()
  private readonly addresses = new Map<string, Failures>()

  constructor(private readonly options: LoginGuardOptions = DEFAULT_LOGIN_GUARD) {}

  /** True while the device id is locked out at this source address. */
  isLocked(deviceId: string, address: string, now: number): boolean {
    const entry = this.devices.get(lockoutKey(deviceId, address))
    return entry !== undefined && entry.lockedUntil > now
  }

  /**
   * Records a failed login; returns how long to delay its refusal (ms). A login refused because
   * the id is locked counts only against its address, so the lockout is not extended by it.
   */
  recordFailure(deviceId: string, address: string, now: number): number {
    if (!this.isLocked(deviceId, address, now)) {
      const device = this.bump(this.devices, lockoutKey(deviceId, address), now)
      if (device.count >= this.options.maxFailures) device.lockedUntil = now + this.options.lockoutMs
    }
    const source = this.bump(this.addresses, address, now)
    return Math.min(this.options.maxDelayMs, (source.count - 1) * this.options.delayStepMs)
  }

  /**
   * A successful login forgets the failures of the id at that address (the address keeps its own
   * count; a lockout of the id at other addresses stays).
   */
  recordSuccess(deviceId: string, address: string): void {
    this.devices.delete(lockoutKey(deviceId, address))
  }

  get size(): { devices: number; addresses: number } {
    return { devices: this.devices.size, addresses: this.addresses.size }
  }

  private bump(map: Map<string, Failures>, key: string, now: number): Failures {
    let entry = map.get(key)
    if (entry === undefined || now - entry.windowStart > this.options.windowMs) {
      const lockedUntil = entry?.lockedUntil ?? 0
      entry = { count: 0, windowStart: now, lockedUntil }
    }
    entry.count++
    map.delete(key)
    map.set(key, entry)
    if (map.size > this.options.maxEntries) {
      const oldest = map.keys().next().value
      if (oldest !== undefined) map.delete(oldest)
    }
    return entry
  }
}

/** Device ids never hold a space (CONTRACT.md §1), so the pair cannot be forged from either half. */
function lockoutKey(deviceId: string, address: string): string {
  return `${address} ${deviceId}`
}
