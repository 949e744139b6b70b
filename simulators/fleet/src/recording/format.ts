// The recording format of `plantwatt simulate --record FILE` and `plantwatt replay FILE`
// (docs/recording-format.md): gzip-compressed NDJSON, one line per message as sent.
//
//   line 1:  {"format":"plantwatt-recording","version":1,"createdAt":"…","startS":…,"devices":…,"seed":…}
//   then:    {"t":1732250000.25,"s":"yibin","d":"860100000000123","k":"up","p":"[{\"bn\":…}]"}
//            {"t":…,"s":…,"d":…,"k":"up","b":"<base64>"}            (a payload that is not UTF-8 text, e.g. CBOR)
//
// `t` is the simulated epoch second at which the device transmitted; lines are in `t` order. The
// payload is kept byte for byte, so a replay sends exactly what the devices sent.

export const RECORDING_FORMAT = 'plantwatt-recording'
export const RECORDING_VERSION = 1

export interface RecordingHeader {
  format: typeof RECORDING_FORMAT
  version: typeof RECORDING_VERSION
  createdAt: string
  /** Simulated epoch seconds of the first moment recorded. */
  startS: number
  devices: number
  seed?: number
  /** Free-form description of what was simulated (plant size, faults). */
  note?: string
  /**
   * Every device of the run by site (site id → device ids), so a replay opens each device's
   * session before the first message; without it the replay reads the file once to find them.
   */
  sites?: Record<string, string[]>
}

export interface RecordedMessage {
  /** Simulated epoch seconds of transmission. */
  t: number
  site: string
  deviceId: string
  kind: 'up' | 'ack'
  payload: Buffer
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** One message as one line (without the newline). */
export function encodeRecordLine(message: RecordedMessage): string {
  let text: string | undefined
  try {
    text = utf8.decode(message.payload)
  } catch {
    text = undefined
  }
  const head = `{"t":${message.t},"s":${JSON.stringify(message.site)},"d":${JSON.stringify(message.deviceId)},"k":"${message.kind}"`
  return text === undefined
    ? `${head},"b":"${message.payload.toString('base64')}"}`
    : `${head},"p":${JSON.stringify(text)}}`
}

export class RecordingFormatError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`recording line ${line}: ${message}`)
    this.name = 'RecordingFormatError'
  }
}

export function decodeHeader(text: string): RecordingHeader {
  let header: Partial<RecordingHeader>
  try {
    header = JSON.parse(text)
  } catch {
    throw new RecordingFormatError(1, 'the header is not JSON')
  }
  if (header.format !== RECORDING_FORMAT) throw new RecordingFormatError(1, 'not a plantwatt recording')
  if (header.version !== RECORDING_VERSION) {
    throw new RecordingFormatError(
      1,
      `version ${header.version} is not supported (this reader knows ${RECORDING_VERSION})`,
    )
  }
  if (typeof header.startS !== 'number' || !Number.isFinite(header.startS)) {
    throw new RecordingFormatError(1, 'the header has no startS')
  }
  validateDevices(header)
  return header as RecordingHeader
}

/**
 * Most devices a recording may name (issue 12 finding 17): a replay plans its worker processes and
 * sessions from the header, so an absurd count must stop at the door. Twenty-five times the largest
 * fleet plantwatt is measured with (40,000 devices).
 */
export const MAX_RECORDING_DEVICES = 1_000_000
/** CONTRACT.md §1 id patterns: a site id and a device id. */
const SITE_ID = /^[a-z0-9][a-z0-9-]{0,47}$/
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/

function validateDevices(header: Partial<RecordingHeader>): void {
  const devices: unknown = header.devices
  if (typeof devices !== 'number' || !Number.isInteger(devices) || devices < 0 || devices > MAX_RECORDING_DEVICES) {
    throw new RecordingFormatError(1, `"devices" must be an integer from 0 to ${MAX_RECORDING_DEVICES}`)
  }
  const sites: unknown = header.sites
  if (sites === undefined) return
  if (typeof sites !== 'object' || sites === null || Array.isArray(sites)) {
    throw new RecordingFormatError(1, '"sites" must map site ids to arrays of device ids')
  }
  let count = 0
  for (const [site, ids] of Object.entries(sites)) {
    if (!SITE_ID.test(site)) throw new RecordingFormatError(1, `"sites" has an invalid site id ${JSON.stringify(site)}`)
    if (!Array.isArray(ids)) throw new RecordingFormatError(1, `"sites.${site}" must be an array of device ids`)
    count += ids.length
    if (count > devices) {
      throw new RecordingFormatError(1, `"sites" names more devices than "devices" (${devices})`)
    }
    for (const id of ids) {
      if (typeof id !== 'string' || !DEVICE_ID.test(id)) {
        throw new RecordingFormatError(1, `"sites.${site}" has an invalid device id ${JSON.stringify(id)}`)
      }
    }
  }
}

/**
 * The `t` of a message line without parsing the rest: lines start `{"t":<number>,` as
 * encodeRecordLine writes them. NaN when the line does not.
 */
export function recordLineTime(text: string): number {
  if (!text.startsWith('{"t":')) return Number.NaN
  const end = text.indexOf(',', 5)
  return end < 0 ? Number.NaN : Number(text.slice(5, end))
}

export function decodeRecordLine(text: string, lineNumber: number): RecordedMessage {
  let raw: { t?: unknown; s?: unknown; d?: unknown; k?: unknown; p?: unknown; b?: unknown }
  try {
    raw = JSON.parse(text)
  } catch {
    throw new RecordingFormatError(lineNumber, 'not JSON')
  }
  if (typeof raw.t !== 'number' || !Number.isFinite(raw.t)) throw new RecordingFormatError(lineNumber, 'no time "t"')
  if (typeof raw.s !== 'string' || typeof raw.d !== 'string') {
    throw new RecordingFormatError(lineNumber, 'no site "s" or device "d"')
  }
  if (raw.k !== 'up' && raw.k !== 'ack') throw new RecordingFormatError(lineNumber, '"k" must be "up" or "ack"')
  let payload: Buffer
  if (typeof raw.p === 'string') payload = Buffer.from(raw.p, 'utf8')
  else if (typeof raw.b === 'string') payload = Buffer.from(raw.b, 'base64')
  else throw new RecordingFormatError(lineNumber, 'no payload "p" or "b"')
  return { t: raw.t, site: raw.s, deviceId: raw.d, kind: raw.k, payload }
}
