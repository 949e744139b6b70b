import { timingSafeEqual } from 'node:crypto'
import {
  INTERNAL_ROLES,
  type InternalRole,
  internalKey,
  internalPassword,
  internalRoleOf,
  isInternalClientId,
} from '@plantwatt/bus'
import { deriveDevicePassword, parseDeviceTopic } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'

// Device authentication and authority of CONTRACT.md §4, as plain functions so that the rules
// read in one place and are tested without a socket.

/** `role` is set for plantwatt's own clients, undefined for a device. */
export type LoginVerdict =
  | { ok: true; role: InternalRole | undefined }
  | { ok: false; returnCode: 2 | 4 | 5; reason: LoginRefusal }
export type LoginRefusal = 'unknown_device' | 'bad_username' | 'bad_password' | 'missing_password' | 'bad_client_id'

function samePassword(given: Buffer, expected: string): boolean {
  const wanted = Buffer.from(expected, 'utf8')
  // timingSafeEqual needs equal lengths; the length of a hex HMAC is public anyway.
  return given.length === wanted.length && timingSafeEqual(given, wanted)
}

export class DevicePolicy {
  /** Per-role passwords of plantwatt's own clients. */
  private readonly internalPasswords: ReadonlyMap<InternalRole, string>

  /** `internalSecret`: PLANTWATT_INTERNAL_SECRET; unset, the internal key is derived from the device secret. */
  constructor(
    private readonly plant: PlantIndex,
    private readonly deviceSecret: string,
    internalSecret?: string,
  ) {
    const key = internalKey(deviceSecret, internalSecret)
    this.internalPasswords = new Map(INTERNAL_ROLES.map((role) => [role, internalPassword(key, role)]))
  }

  /**
   * CONNECT: client id = device id = username, and the derived password, compared in constant
   * time; or plantwatt's own processor or gateway: user name `plantwatt-{role}`, client id
   * `plantwatt-{role}-{instance}` and the role's password from the internal secret (docs/broker.md).
   */
  login(clientId: string, username: string | undefined, password: Buffer | undefined): LoginVerdict {
    const role = internalRoleOf(username)
    if (role !== undefined) return this.internalLogin(role, clientId, password)
    if (!this.plant.device(clientId)) return { ok: false, returnCode: 5, reason: 'unknown_device' }
    if (username !== clientId) return { ok: false, returnCode: 4, reason: 'bad_username' }
    if (!password) return { ok: false, returnCode: 4, reason: 'missing_password' }
    if (!samePassword(password, deriveDevicePassword(this.deviceSecret, clientId))) {
      return { ok: false, returnCode: 4, reason: 'bad_password' }
    }
    return { ok: true, role: undefined }
  }

  private internalLogin(role: InternalRole, clientId: string, password: Buffer | undefined): LoginVerdict {
    // A role's credentials open only that role's client ids, so one role cannot take over another's session.
    if (!isInternalClientId(role, clientId)) return { ok: false, returnCode: 2, reason: 'bad_client_id' }
    const expected = this.internalPasswords.get(role)!
    if (!password) return { ok: false, returnCode: 4, reason: 'missing_password' }
    if (!samePassword(password, expected)) return { ok: false, returnCode: 4, reason: 'bad_password' }
    return { ok: true, role }
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
