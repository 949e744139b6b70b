import { INTERNAL_INSTANCE_PATTERN } from '@plantwatt/bus'
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

/** The instance part of a role's MQTT client id (`plantwatt-{role}-{instance}`, docs/broker.md). */
export function parseInstanceId(value: string): string {
  if (!INTERNAL_INSTANCE_PATTERN.test(value)) {
    throw new InvalidArgumentError(`"${value}" is not an instance id (${INTERNAL_INSTANCE_PATTERN.source})`)
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

/** Wraps a parser that throws RangeError (the fleet's) into commander's error. */
export function asOption<T>(parse: (value: string) => T) {
  return (value: string): T => {
    try {
      return parse(value)
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message)
    }
  }
}

/**
 * `mqtt://host:port[,mqtt://host:port…]` (several brokers share the sessions), or `none`: an
 * empty list (commander does not pass a parser's null through).
 */
export function parseBrokerList(value: string): { host: string; port: number }[] {
  if (value.trim() === 'none') return []
  return value.split(',').map((item) => {
    let url: URL
    try {
      url = new URL(item.trim())
    } catch {
      throw new InvalidArgumentError(`"${item}" is not a broker URL (mqtt://host:port)`)
    }
    if (url.protocol !== 'mqtt:' && url.protocol !== 'tcp:') {
      throw new InvalidArgumentError(`"${item}": the simulator speaks MQTT over TCP (mqtt://host:port)`)
    }
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port === '' ? 1883 : Number(url.port) }
  })
}

/** An ISO 8601 time or epoch seconds, as epoch seconds. */
export function parseTime(value: string): number {
  const seconds = /^\d+(\.\d+)?$/.test(value) ? Number(value) : Date.parse(value) / 1000
  if (!Number.isFinite(seconds)) throw new InvalidArgumentError(`"${value}" is not an ISO 8601 time or epoch seconds`)
  return seconds
}

export function parsePositiveNumber(value: string): number {
  const number = Number(value)
  if (value.trim() === '' || !Number.isFinite(number) || number <= 0) {
    throw new InvalidArgumentError(`"${value}" is not a number above 0`)
  }
  return number
}

/**
 * Minimum lengths of the secrets read from the environment (issue 12, finding 19), in characters.
 *
 * - `PLANTWATT_DEVICE_SECRET`: every device password is HMAC-SHA256(secret, device id)
 *   (CONTRACT.md §4), and a device's password sits in its flash. Whoever reads one can test
 *   guesses of the secret offline, at GPU speed, and the secret gives every device's password.
 *   32 random characters (128 bits as hex) are beyond that; the generated secret has 64.
 * - `PLANTWATT_ADMIN_TOKEN`: guessed online against the API, but also stored as an unsalted
 *   SHA-256 hash in the data directory, where a copy could be attacked offline. 24 random
 *   characters are at least 96 bits as hex, 144 as base64url; generated tokens have 36.
 * - `PLANTWATT_INTERNAL_SECRET`: the key of the processor's and gateway's broker credentials, which
 *   may publish commands to every device: as strong as the device secret.
 */
export const SECRET_MINIMUMS = {
  PLANTWATT_DEVICE_SECRET: 32,
  PLANTWATT_ADMIN_TOKEN: 24,
  PLANTWATT_INTERNAL_SECRET: 32,
} as const

export type SecretVariable = keyof typeof SECRET_MINIMUMS

/**
 * A secret from the environment: undefined when unset or empty (one is then generated into the
 * data directory, CONTRACT.md §4), refused when shorter than its minimum. The message names the
 * variable and its length, never its value (secrets are never logged).
 */
export function secretFromEnv(
  name: SecretVariable,
  env: Record<string, string | undefined> = process.env,
): string | undefined {
  const value = env[name]
  if (!value) return undefined
  const length = [...value].length
  const minimum = SECRET_MINIMUMS[name]
  if (length < minimum) {
    throw new InvalidArgumentError(
      `${name} is ${length} characters long; it must be at least ${minimum} characters ` +
        '(use a random value, e.g. `openssl rand -hex 32`, or unset it to have one generated)',
    )
  }
  return value
}
