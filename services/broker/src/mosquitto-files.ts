import { INTERNAL_ACL, INTERNAL_ROLES, internalKey, internalPassword, internalUsername } from '@plantwatt/bus'
import { deriveDevicePassword } from '@plantwatt/contract'

// What an external Mosquitto needs to enforce CONTRACT.md §4 and plantwatt's internal-client rules
// (§9, docs/broker.md): one password file and one ACL file, generated from the same tables the
// aedes broker enforces, so the two cannot drift apart.

/**
 * `user:password` lines in clear, for `mosquitto_passwd -U` to hash in place: every device with
 * its derived password, and each of plantwatt's roles with its own (`internalSecret`:
 * PLANTWATT_INTERNAL_SECRET; unset, derived from the device secret as the roles derive it).
 */
export function mosquittoPasswordLines(
  devices: readonly { id: string }[],
  deviceSecret: string,
  internalSecret?: string,
): string[] {
  const key = internalKey(deviceSecret, internalSecret)
  return [
    ...devices.map((device) => `${device.id}:${deriveDevicePassword(deviceSecret, device.id)}`),
    ...INTERNAL_ROLES.map((role) => `${internalUsername(role)}:${internalPassword(key, role)}`),
  ]
}

/** Mosquitto's `acl_file`: devices confined to their own topics, each role to its side of the bus. */
export function mosquittoAclLines(): string[] {
  const lines = [
    '# Devices (CONTRACT.md §4): their own up and ack, and their own down.',
    'pattern write sites/+/devices/%c/up',
    'pattern write sites/+/devices/%c/ack',
    'pattern read sites/+/devices/%c/down',
  ]
  for (const role of INTERNAL_ROLES) {
    lines.push('', `# plantwatt's ${role} (docs/broker.md).`, `user ${internalUsername(role)}`)
    for (const topic of INTERNAL_ACL[role].publish) lines.push(`topic write ${topic}`)
    for (const topic of INTERNAL_ACL[role].subscribe) lines.push(`topic read ${topic}`)
  }
  return lines
}
