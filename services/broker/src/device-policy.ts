import { timingSafeEqual } from 'node:crypto'
import { deriveDevicePassword, parseDeviceTopic } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'

// Device authentication and authority of CONTRACT.md §4, as plain functions so that the rules
// read in one place and are tested without a socket.

export type LoginVerdict = { ok: true } | { ok: false; returnCode: 4 | 5; reason: LoginRefusal }
export type LoginRefusal = 'unknown_device' | 'bad_username' | 'bad_password' | 'missing_password'

export class DevicePolicy {
  constructor(
    private readonly plant: PlantIndex,
    private readonly deviceSecret: string,
  ) {}

  /** CONNECT: client id = device id = username, and the derived password, compared in constant time. */
  login(clientId: string, username: string | undefined, password: Buffer | undefined): LoginVerdict {
    if (!this.plant.device(clientId)) return { ok: false, returnCode: 5, reason: 'unknown_device' }
    if (username !== clientId) return { ok: false, returnCode: 4, reason: 'bad_username' }
    if (!password) return { ok: false, returnCode: 4, reason: 'missing_password' }
    const expected = Buffer.from(deriveDevicePassword(this.deviceSecret, clientId), 'utf8')
    // timingSafeEqual needs equal lengths; the length of a hex HMAC is public anyway.
    if (password.length !== expected.length || !timingSafeEqual(password, expected)) {
      return { ok: false, returnCode: 4, reason: 'bad_password' }
    }
    return { ok: true }
  }

  /** A device may publish only to its own `up` and `ack` topics. */
  mayPublish(clientId: string, topic: string): boolean {
    const parsed = parseDeviceTopic(topic)
    if (!parsed || parsed.deviceId !== clientId || parsed.kind === 'down') return false
    return this.plant.device(clientId)?.siteId === parsed.site
  }

  /** A device may subscribe only to its own `down` topic, written out in full (no wildcards). */
  maySubscribe(clientId: string, filter: string): boolean {
    const parsed = parseDeviceTopic(filter)
    if (!parsed || parsed.deviceId !== clientId || parsed.kind !== 'down') return false
    return this.plant.device(clientId)?.siteId === parsed.site
  }
}
