import type { Logger } from 'pino'

/** Options of `HistoryWriter`. Validated once in the constructor, then frozen (STYLE.md habit 3). */
export interface HistoryWriterOptions {
  /** InfluxDB base URL, e.g. `http://127.0.0.1:8086` (no `/api/v2`). */
  url: string
  /** API token; omitted for servers without auth (VictoriaMetrics in tests). */
  token?: string
  org: string
  bucket: string
  /** Spill directory: segment files, cursor, dead letters. Must belong to this writer alone. */
  directory: string
  logger: Logger
  /** Points kept in memory while the server is healthy; beyond, new points spill to disk. */
  maxMemoryPoints?: number
  /** Segment files may hold at most this many bytes; beyond, new points are refused `queue_full`. */
  maxDiskBytes?: number
  /** Points per write request (halved for good after a 413). */
  batchSize?: number
  /** Characters per write request (≈ bytes for line protocol; halved after a 413). */
  maxBatchBytes?: number
  /** Points per segment (file or memory): the unit of spilling, fsync and deletion. */
  segmentMaxPoints?: number
  /** An open segment file is sealed (fsync'd) at the latest this long after it was opened. */
  segmentMaxAgeMs?: number
  requestTimeoutMs?: number
  minRetryDelayMs?: number
  maxRetryDelayMs?: number
  /** Cap on a server's `Retry-After`, so that a bad header cannot park the writer for a day. */
  maxRetryAfterMs?: number
  /** Request bodies above this many bytes are gzipped (the client's option). */
  gzipThreshold?: number
  /** Dead-letter file bound, bytes (rotated once, so at most twice this on disk). */
  deadLetterMaxBytes?: number
  /** How long `stop()` keeps sending a healthy queue before spilling the rest to disk. */
  stopTimeoutMs?: number
  /** Jitter source (tests pass a fixed one). */
  random?: () => number
  /** Wall clock, ms (tests may replace it; used for Retry-After dates and segment age only). */
  now?: () => number
}

export type ResolvedOptions = Readonly<Required<Omit<HistoryWriterOptions, 'token'>> & { token: string | undefined }>

const DEFAULTS = {
  maxMemoryPoints: 50_000,
  maxDiskBytes: 1024 * 1024 * 1024,
  batchSize: 5_000,
  maxBatchBytes: 4 * 1024 * 1024,
  segmentMaxPoints: 10_000,
  segmentMaxAgeMs: 5_000,
  requestTimeoutMs: 10_000,
  minRetryDelayMs: 250,
  maxRetryDelayMs: 30_000,
  maxRetryAfterMs: 10 * 60_000,
  gzipThreshold: 1_000,
  deadLetterMaxBytes: 16 * 1024 * 1024,
  stopTimeoutMs: 5_000,
} as const

const KNOWN_KEYS = new Set<string>([
  'url',
  'token',
  'org',
  'bucket',
  'directory',
  'logger',
  'random',
  'now',
  ...Object.keys(DEFAULTS),
])

/** A bad option. `key` names it; the message says what was expected. */
export class HistoryOptionsError extends Error {
  readonly code = 'PLANTWATT_HISTORY_BAD_OPTION'
  readonly key: string
  constructor(key: string, expected: string, got: unknown) {
    super(`history writer option "${key}": expected ${expected}, got ${describe(got)}`)
    this.name = 'HistoryOptionsError'
    this.key = key
  }
}

export function resolveOptions(input: HistoryWriterOptions): ResolvedOptions {
  if (input === null || typeof input !== 'object') throw new HistoryOptionsError('options', 'an object', input)
  for (const key of Object.keys(input)) {
    if (!KNOWN_KEYS.has(key)) throw new HistoryOptionsError(key, 'no such option (a typo?)', (input as never)[key])
  }
  const url = requireString(input, 'url')
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new HistoryOptionsError('url', 'an absolute http(s) URL', url)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new HistoryOptionsError('url', 'an http: or https: URL', url)
  }
  if (input.token !== undefined && (typeof input.token !== 'string' || input.token === '')) {
    // The token's value never goes into a message.
    throw new HistoryOptionsError('token', 'a non-empty string or undefined', typeof input.token)
  }
  const logger = input.logger
  if (!logger || typeof logger.child !== 'function' || typeof logger.warn !== 'function') {
    throw new HistoryOptionsError('logger', 'a pino logger', logger)
  }
  const resolved = {
    url,
    token: input.token,
    org: requireString(input, 'org'),
    bucket: requireString(input, 'bucket'),
    directory: requireString(input, 'directory'),
    logger,
    random: optionalFunction(input, 'random') ?? Math.random,
    now: optionalFunction(input, 'now') ?? Date.now,
  } as Record<string, unknown>
  for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
    const value = input[key] ?? DEFAULTS[key]
    const min = key === 'gzipThreshold' || key === 'stopTimeoutMs' ? 0 : 1
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      throw new HistoryOptionsError(key, `an integer ≥ ${min}`, value)
    }
    resolved[key] = value
  }
  const r = resolved as unknown as ResolvedOptions
  if (r.minRetryDelayMs > r.maxRetryDelayMs) {
    throw new HistoryOptionsError(
      'minRetryDelayMs',
      `at most maxRetryDelayMs (${r.maxRetryDelayMs})`,
      r.minRetryDelayMs,
    )
  }
  if (r.maxDiskBytes < 64 * 1024) throw new HistoryOptionsError('maxDiskBytes', 'at least 65536', r.maxDiskBytes)
  return Object.freeze(r)
}

function requireString(input: HistoryWriterOptions, key: 'url' | 'org' | 'bucket' | 'directory'): string {
  const value = input[key]
  if (typeof value !== 'string' || value.trim() === '') throw new HistoryOptionsError(key, 'a non-empty string', value)
  return value
}

function optionalFunction(input: HistoryWriterOptions, key: 'random' | 'now'): (() => number) | undefined {
  const value = input[key]
  if (value !== undefined && typeof value !== 'function') throw new HistoryOptionsError(key, 'a function', value)
  return value
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value)
  if (value === null || typeof value !== 'object') return String(value)
  return Array.isArray(value) ? 'an array' : 'an object'
}
