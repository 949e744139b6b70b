import { TokenBucket } from './token-bucket.ts'

// Credential guessing (CONTRACT.md §4 v1.1): after `maxFailures` failed logins for one device id
// from one source address within `windowMs`, that id is refused from that address for `lockoutMs`
// even with the right password. The lockout is keyed by id *and* address so that a stranger
// guessing from one address can never lock the device out where it really connects from.
//
// Failed logins from one source address are slowed (each refusal delayed, up to `maxDelayMs`) and
// have a budget of their own (`addressFailureRatePerS`, `addressFailureBurst`): past it, every
// connection attempt from that address waits `overBudgetDelayMs` before its answer, until half the
// budget has come back. The address is
// never refused for it, because NB-IoT fleets reach the broker from a few operator NAT addresses:
// a right password behind a guessing neighbour still gets in, only later. Failed logins never
// touch the broker-wide connect rate (broker.ts charges that for successful logins only), so a
// flood of guesses cannot keep good devices out. Pure: time passed in.

export interface LoginGuardOptions {
  /** Failed logins for one id from one address, within `windowMs`, that lock the pair out. */
  maxFailures: number
  windowMs: number
  lockoutMs: number
  /** Added to a refusal's delay per recent failure from the same address. */
  delayStepMs: number
  maxDelayMs: number
  /** Failed logins one address may make per second, and at once, before its attempts wait longer. */
  addressFailureRatePerS: number
  addressFailureBurst: number
  /** How long every attempt from an address past its failure budget waits for its answer, ms. */
  overBudgetDelayMs: number
  /** Entries kept at most per map; the oldest go first, so guessing cannot grow memory. */
  maxEntries: number
}

export const DEFAULT_LOGIN_GUARD: LoginGuardOptions = Object.freeze({
  maxFailures: 5,
  windowMs: 60_000,
  lockoutMs: 60_000,
  delayStepMs: 100,
  maxDelayMs: 1000,
  // A NAT address holding thousands of devices sees a few misprovisioned ones, not 10 failures a
  // second for long; a guesser past 200 at once then pays 3 s a try.
  addressFailureRatePerS: 10,
  addressFailureBurst: 200,
  overBudgetDelayMs: 3000,
  maxEntries: 100_000,
})

interface Failures {
  /** Failures in the current window. */
  count: number
  windowStart: number
  lockedUntil: number
}

interface AddressFailures extends Failures {
  budget: TokenBucket
  /** True once a failure found the budget empty; until half of it has come back. */
  overBudget: boolean
}

export class LoginGuard {
  // Maps iterate in insertion order, so re-inserting on update keeps the oldest first for eviction.
  /** Keyed by `lockoutKey(deviceId, address)`. */
  private readonly devices = new Map<string, Failures>()
  private readonly addresses = new Map<string, AddressFailures>()

  constructor(private readonly options: LoginGuardOptions = DEFAULT_LOGIN_GUARD) {}

  /** True while the device id is locked out at this source address. */
  isLocked(deviceId: string, address: string, now: number): boolean {
    const entry = this.devices.get(lockoutKey(deviceId, address))
    return entry !== undefined && entry.lockedUntil > now
  }

  /**
   * How long any attempt from this address waits before its answer, ms: `overBudgetDelayMs` while
   * the address is past its failure budget, else 0. Never a refusal.
   */
  admissionDelay(address: string, now: number): number {
    const source = this.addresses.get(address)
    if (source === undefined || !source.overBudget) return 0
    // Half the burst back (e.g. 10 s without failures at the defaults): the address is welcome
    // again. Sooner, and a steady guesser would be slowed only every other try.
    if (source.budget.available(now) >= this.options.addressFailureBurst / 2) source.overBudget = false
    return source.overBudget ? this.options.overBudgetDelayMs : 0
  }

  /**
   * Records a failed login; returns how long to delay its refusal (ms). A login refused because
   * the pair is locked counts only against its address, so the lockout is not extended by it.
   * `lockable: false` (plantwatt's own clients, which have no device id to lock) skips the lockout.
   */
  recordFailure(deviceId: string, address: string, now: number, lockable = true): number {
    if (lockable && !this.isLocked(deviceId, address, now)) {
      const device = this.bump(this.devices, lockoutKey(deviceId, address), now, () => ({
        count: 0,
        windowStart: now,
        lockedUntil: 0,
      }))
      if (device.count >= this.options.maxFailures) device.lockedUntil = now + this.options.lockoutMs
    }
    const source = this.bump(this.addresses, address, now, () => ({
      count: 0,
      windowStart: now,
      lockedUntil: 0,
      budget: new TokenBucket(this.options.addressFailureRatePerS, this.options.addressFailureBurst, now),
      overBudget: false,
    }))
    if (!source.budget.take(now)) source.overBudget = true
    if (source.overBudget) return Math.max(this.options.overBudgetDelayMs, this.options.maxDelayMs)
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

  private bump<T extends Failures>(map: Map<string, T>, key: string, now: number, create: () => T): T {
    let entry = map.get(key)
    if (entry === undefined) entry = create()
    else if (now - entry.windowStart > this.options.windowMs) {
      // A new window; a lockout and an address's budget carry over.
      entry.count = 0
      entry.windowStart = now
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
