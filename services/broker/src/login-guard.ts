// Credential guessing (CONTRACT.md §4): after `maxFailures` failed logins for one device id within
// `windowMs`, that id is refused for `lockoutMs` even with the right password; failed logins from
// one source address are slowed (each refusal delayed, up to `maxDelayMs`) but never locked out,
// because NB-IoT fleets reach the broker from a few operator NAT addresses. Pure: time passed in.

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
  private readonly devices = new Map<string, Failures>()
  private readonly addresses = new Map<string, Failures>()

  constructor(private readonly options: LoginGuardOptions = DEFAULT_LOGIN_GUARD) {}

  /** True while the device id is locked out. */
  isLocked(deviceId: string, now: number): boolean {
    const entry = this.devices.get(deviceId)
    return entry !== undefined && entry.lockedUntil > now
  }

  /**
   * Records a failed login; returns how long to delay its refusal (ms). A login refused because
   * the id is locked counts only against its address, so the lockout is not extended by it.
   */
  recordFailure(deviceId: string, address: string, now: number): number {
    if (!this.isLocked(deviceId, now)) {
      const device = this.bump(this.devices, deviceId, now)
      if (device.count >= this.options.maxFailures) device.lockedUntil = now + this.options.lockoutMs
    }
    const source = this.bump(this.addresses, address, now)
    return Math.min(this.options.maxDelayMs, (source.count - 1) * this.options.delayStepMs)
  }

  /** A successful login forgets the device's failures (its address keeps its own count). */
  recordSuccess(deviceId: string): void {
    this.devices.delete(deviceId)
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
