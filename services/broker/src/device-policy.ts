import { timingSafeEqual } from 'node:crypto'
import { INTERNAL_USERNAME, internalPassword } from '@plantwatt/bus'
import { deriveDevicePassword, parseDeviceTopic } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'

// Device authentication and authority of CONTRACT.md §4, as plain functions so that the rules
// read in one place and are tested without a socket.

export type LoginVerdict = { ok: true; internal: boolean } | { ok: false; returnCode: 4 | 5; reason: LoginRefusal }
export type LoginRefusal = 'unknown_device' | 'bad_username' | 'bad_password' | 'missing_password'

function samePassword(given: Buffer, expected: string): boolean {
  const wanted = Buffer.from(expected, 'utf8')
  // timingSafeEqual needs equal lengths; the length of a hex HMAC is public anyway.
  return given.length === wanted.length && timingSafeEqual(given, wanted)
}

export class DevicePolicy {
  private readonly internalPassword: string

  constructor(
    private readonly plant: PlantIndex,
    private readonly deviceSecret: string,
  ) {
    this.internalPassword = internalPassword(deviceSecret)
  }

  /**
   * CONNECT: client id = device id = username, and the derived password, compared in constant
   * time; or plantwatt's own processor and gateway with the internal credentials (docs/internal-bus.md).
   */
  login(clientId: string, username: string | undefined, password: Buffer | undefined): LoginVerdict {
    if (username === INTERNAL_USERNAME && clientId.startsWith('plantwatt-')) {
      if (password && samePassword(password, this.internalPassword)) return { ok: true, internal: true }
      return { ok: false, returnCode: 4, reason: password ? 'bad_password' : 'missing_password' }
    }
    if (!this.plant.device(clientId)) return { ok: false, returnCode: 5, reason: 'unknown_device' }
    if (username !== clientId) return { ok: false, returnCode: 4, reason: 'bad_username' }
    if (!password) return { ok: false, returnCode: 4, reason: 'missing_password' }
    if (!samePassword(password, deriveDevicePassword(this.deviceSecret, clientId))) {
      return { ok: false, returnCode: 4, reason: 'bad_password' }
    }
    return { ok: true, internal: false }
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
