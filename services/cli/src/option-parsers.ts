import { DEVICE_ID_PATTERN } from '@plantwatt/contract'
import { InvalidArgumentError } from 'commander'

// Parsers for command-line and environment values (CONTRACT.md §8): each one validates once,
// at start-up, and its message names what is wrong.

export function parsePort(value: string): number {
  const port = Number(value)
  if (!/^\d+$/.test(value) || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError(`"${value}" is not a port (0–65535; 0 means any free port)`)
  }
  return port
}

export function parseCount(min: number, max: number) {
  return (value: string): number => {
    const count = Number(value)
    if (!/^\d+$/.test(value) || count < min || count > max) {
      throw new InvalidArgumentError(`"${value}" is not a whole number from ${min} to ${max}`)
    }
    return count
  }
}

export function parseHost(value: string): string {
  if (value.trim() === '' || /\s/.test(value))
    throw new InvalidArgumentError(`"${value}" is not a host name or address`)
  return value
}

export function parseUrl(value: string): string {
  try {
    new URL(value)
  } catch {
    throw new InvalidArgumentError(`"${value}" is not a URL`)
  }
  return value
}

export function parseDeviceId(value: string): string {
  if (!DEVICE_ID_PATTERN.test(value)) {
    throw new InvalidArgumentError(`"${value}" is not a device id (${DEVICE_ID_PATTERN.source})`)
  }
  return value
}

/** `PLANTWATT_DEMO=1` style booleans; commander passes env values of boolean options through here. */
export function parseFlag(value: string | undefined): boolean {
  if (value === undefined) return true
  const normalised = value.trim().toLowerCase()
  if (['1', 'true', 'yes', 'on', ''].includes(normalised)) return true
  if (['0', 'false', 'no', 'off'].includes(normalised)) return false
  throw new InvalidArgumentError(`"${value}" is not a yes/no value (1, 0, true, false)`)
}
