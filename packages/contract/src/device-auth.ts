import { createHmac } from 'node:crypto'

/**
 * A device's MQTT password (CONTRACT.md §4): lowercase hex of HMAC-SHA256 keyed with the
 * device secret (UTF-8) over the device id. Fleet provisioning derives it the same way, so no
 * per-device password list has to be kept or shipped.
 */
export function deriveDevicePassword(deviceSecret: string, deviceId: string): string {
  return createHmac('sha256', deviceSecret).update(deviceId, 'utf8').digest('hex')
}

/** Device ids of CONTRACT.md §1. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/
/** Site, area, line and equipment ids of CONTRACT.md §1. */
export const NODE_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,47}$/
