// MQTT topics of CONTRACT.md §2 and §3: sites/{site}/devices/{deviceId}/{up|down|ack}.

export type DeviceTopicKind = 'up' | 'down' | 'ack'

export interface DeviceTopic {
  site: string
  deviceId: string
  kind: DeviceTopicKind
}

export const UPLINK_FILTER = 'sites/+/devices/+/up'
export const ACK_FILTER = 'sites/+/devices/+/ack'

export function deviceTopic(site: string, deviceId: string, kind: DeviceTopicKind): string {
  return `sites/${site}/devices/${deviceId}/${kind}`
}

/**
 * Parses a device topic without allocating intermediate arrays (it runs once per message).
 * Returns undefined for anything that is not exactly sites/{site}/devices/{id}/{up|down|ack}.
 */
export function parseDeviceTopic(topic: string): DeviceTopic | undefined {
  if (!topic.startsWith('sites/')) return undefined
  const siteEnd = topic.indexOf('/', 6)
  if (siteEnd <= 6) return undefined
  if (!topic.startsWith('/devices/', siteEnd)) return undefined
  const idStart = siteEnd + 9
  const idEnd = topic.indexOf('/', idStart)
  if (idEnd <= idStart) return undefined
  const kind = topic.slice(idEnd + 1)
  if (kind !== 'up' && kind !== 'down' && kind !== 'ack') return undefined
  return { site: topic.slice(6, siteEnd), deviceId: topic.slice(idStart, idEnd), kind }
}

/** `site/area/line/equipment` scope strings of CONTRACT.md §1. */
export function scopeOf(...ids: string[]): string {
  return ids.join('/')
}
