import type { LiveFigures } from '@plantwatt/contract'
import { decode, encode } from 'cbor-x'
import { INTERNAL_PREFIX } from './internal-topics.ts'

// Live figures between processor and gateway (issue 14): the processor computes and sends only the
// scopes some gateway has live subscribers for, each at most once a second, packed in CBOR; the
// gateways tell it which scopes those are (docs/internal-bus.md, "Live figures").

/**
 * Gateway → processor: the scopes this gateway has live subscribers for, as changes (`add`,
 * `remove`), in full (`full`: at its start and when the processor asks), or a lease renewal
 * (`heartbeat`). QoS 1.
 */
export const LIVE_INTEREST_TOPIC = `${INTERNAL_PREFIX}/live-interest`

/** Processor → gateways: "announce your interests in full" (a processor that just started, or lost track). */
export const LIVE_INTEREST_SYNC_TOPIC = `${INTERNAL_PREFIX}/live-interest-sync`

export interface LiveInterest {
  /** The gateway's instance id: each gateway's interests are its own, and expire with it. */
  gateway: string
  kind: 'full' | 'add' | 'remove' | 'heartbeat'
  /** Counts the gateway's changes: a receiver that sees one skipped (a lost message) asks for a full set. */
  version: number
  /** The entries expire unless another message from this gateway comes within this many ms. */
  leaseMs: number
  /** The scopes added, removed, or (full) all of them; absent on a heartbeat. */
  scopes?: string[]
}

/** At most this many scopes per interest message (a 40,000-device plant has about 28,000 scopes). */
export const INTEREST_SCOPES_PER_MESSAGE = 5000

const INTEREST_KINDS: ReadonlySet<string> = new Set(['full', 'add', 'remove', 'heartbeat'])
const GATEWAY_ID = /^[A-Za-z0-9._-]{1,64}$/

/** A well-formed interest message, or undefined (counted and ignored by the receiver). */
export function parseLiveInterest(payload: Buffer): LiveInterest | undefined {
  let message: Partial<LiveInterest>
  try {
    message = JSON.parse(payload.toString('utf8')) as Partial<LiveInterest>
  } catch {
    return undefined
  }
  if (typeof message !== 'object' || message === null) return undefined
  const { gateway, kind, version, leaseMs, scopes } = message
  if (typeof gateway !== 'string' || !GATEWAY_ID.test(gateway)) return undefined
  if (typeof kind !== 'string' || !INTEREST_KINDS.has(kind)) return undefined
  if (!Number.isSafeInteger(version) || (version as number) < 0) return undefined
  if (!Number.isFinite(leaseMs) || (leaseMs as number) <= 0) return undefined
  if (kind === 'heartbeat') return { gateway, kind, version: version!, leaseMs: leaseMs! }
  if (!Array.isArray(scopes) || scopes.length > INTEREST_SCOPES_PER_MESSAGE) return undefined
  if (!scopes.every((scope) => typeof scope === 'string' && scope.length <= 256)) return undefined
  return { gateway, kind, version: version!, leaseMs: leaseMs!, scopes }
}

/**
 * Processor → gateway on `liveTopic(site)`: the site clock and grid intensity, and the figures of
 * the watched scopes that are due. `at` and `gridGPerKWh` travel once per site, not per scope.
 */
export interface LiveBatch {
  site: string
  /** Site clock, epoch ms; null before the site's first reading. */
  at: number | null
  gridGPerKWh: number
  scopes: LiveFigures[]
  /**
   * An answer to new interests (the snapshots of newly watched scopes), sent at once, off the
   * site's pacing: it carries the clock last sent and only the scopes asked for, and a gateway
   * sends it only to subscriptions waiting for their first frame. Absent: a paced batch.
   */
  answer?: boolean
}

/**
 * How far apart the processor sends a site's paced batches (at most): CONTRACT.md §5's second, and
 * a margin. The gateway holds a subscription's frame until a second after its last one, counted
 * from when that frame went out, a bus transit after the processor sent it: batches exactly a
 * second apart could arrive a hair early (the transit's jitter) and be held, and each hold, plus
 * its timer's lateness, would shift the gateway's phase later, round after round. With the margin
 * a batch is due on arrival, and a hold, when jitter makes one, shrinks by the margin each round.
 * The gateway also uses it to know when the next batch is due (docs/internal-bus.md, "Pacing").
 */
export const LIVE_BATCH_INTERVAL_MS = 1025

/** Layout version of the packed batch: the first element of the CBOR array. */
const BATCH_FORMAT = 1

/**
 * One scope's figures as a CBOR array, in this order; `at` and `gridGPerKWh` are the batch's.
 * Fields beyond the contract's required ones (`savedTodayWh`, any later optional one) ride in a
 * trailing map, so that adding one never shifts the others.
 */
type PackedFigures = [
  scope: string,
  powerW: number,
  energyTodayWh: number,
  co2TodayG: number,
  co2MarketTodayG: number,
  pvShare: number,
  idleCount: number,
  idlePowerW: number,
  demand: [intervalStart: number, kW: number, forecastKW: number, monthPeakKW: number] | null,
  extra: Record<string, unknown> | null,
]

const REQUIRED: ReadonlySet<string> = new Set([
  'scope',
  'at',
  'powerW',
  'energyTodayWh',
  'co2TodayG',
  'co2MarketTodayG',
  'gridGPerKWh',
  'pvShare',
  'idle',
  'demand',
])

function pack(figures: LiveFigures): PackedFigures {
  let extra: Record<string, unknown> | null = null
  for (const key in figures) {
    if (REQUIRED.has(key)) continue
    extra ??= {}
    extra[key] = (figures as unknown as Record<string, unknown>)[key]
  }
  const { demand } = figures
  return [
    figures.scope,
    figures.powerW,
    figures.energyTodayWh,
    figures.co2TodayG,
    figures.co2MarketTodayG,
    figures.pvShare,
    figures.idle.count,
    figures.idle.powerW,
    demand ? [demand.intervalStart, demand.kW, demand.forecastKW, demand.monthPeakKW] : null,
    extra,
  ]
}

function unpack(packed: PackedFigures, at: number | null, gridGPerKWh: number): LiveFigures {
  const [scope, powerW, energyTodayWh, co2TodayG, co2MarketTodayG, pvShare, idleCount, idlePowerW, demand, extra] =
    packed
  const figures: LiveFigures = {
    scope,
    at,
    powerW,
    energyTodayWh,
    co2TodayG,
    co2MarketTodayG,
    gridGPerKWh,
    pvShare,
    idle: { count: idleCount, powerW: idlePowerW },
    demand: demand ? { intervalStart: demand[0], kW: demand[1], forecastKW: demand[2], monthPeakKW: demand[3] } : null,
  }
  return extra ? { ...figures, ...extra } : figures
}

/** A batch as CBOR: `[format, site, at, gridGPerKWh, [packed figures…]]`. */
export function encodeLiveBatch(batch: LiveBatch): Buffer {
  const packed = [BATCH_FORMAT, batch.site, batch.at, batch.gridGPerKWh, batch.scopes.map(pack)]
  // A trailing element, so that a reader that knows only the first five reads a paced batch.
  if (batch.answer) packed.push(1)
  return encode(packed)
}

/** Throws on anything that is not a batch of this format (the bus contains a throwing handler). */
export function decodeLiveBatch(payload: Buffer): LiveBatch {
  const value = decode(payload) as unknown
  if (!Array.isArray(value) || value[0] !== BATCH_FORMAT || typeof value[1] !== 'string' || !Array.isArray(value[4])) {
    throw new Error('not a live batch of format 1')
  }
  const [, site, at, gridGPerKWh, packed, answer] = value as [
    number,
    string,
    number | null,
    number,
    PackedFigures[],
    number | undefined,
  ]
  const batch: LiveBatch = { site, at, gridGPerKWh, scopes: packed.map((one) => unpack(one, at, gridGPerKWh)) }
  if (answer === 1) batch.answer = true
  return batch
}
