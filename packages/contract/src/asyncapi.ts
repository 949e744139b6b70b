// The AsyncAPI document of plantwatt's message interfaces: the MQTT topics devices speak
// (CONTRACT.md §2 readings, §3 commands and acks, §4 authentication) and the WebSocket protocol of
// `GET /ws` (§5). The gateway serves it at `GET /api/v1/asyncapi.json`, beside the OpenAPI
// document of the HTTP API.
//
// One source of truth: the payload schemas are TypeBox schemas whose static types are checked
// below against the TypeScript types the code sends and parses (ws-frames.ts, setpoint.ts), so a
// frame that gains or loses a field fails `pnpm typecheck` until this document says so too.

import { type Static, type TSchema, Type } from '@sinclair/typebox'
import { DEVICE_ID_PATTERN, NODE_ID_PATTERN } from './device-auth.ts'
import type { SetpointCommand } from './setpoint.ts'
import {
  type AlertFrame,
  BUCKET_STEPS,
  type BucketFrame,
  CHANNELS,
  type ErrorCode,
  type ErrorFrame,
  type GapFrame,
  type LiveFrame,
  type SetpointFrame,
  type SubscribedFrame,
  type SubscribeRequest,
  type UnsubscribedFrame,
  type UnsubscribeRequest,
} from './ws-frames.ts'

const literals = <T extends string>(values: readonly T[], description?: string) =>
  Type.Union(
    values.map((value) => Type.Literal(value)),
    description === undefined ? {} : { description },
  )

const EpochMs = (description: string) => Type.Number({ description: `${description} (epoch milliseconds)` })
const Scope = Type.String({
  minLength: 1,
  description: 'A place in the plant tree: site, site/area, site/area/line or site/area/line/equipment.',
})
const SubId = Type.String({ minLength: 1, maxLength: 64, description: "The client's name for its subscription." })

// ---------------------------------------------------------------------------------------------
// WebSocket frames, client to server (CONTRACT.md §5).

const SubscribeSchema = Type.Object(
  {
    op: Type.Literal('subscribe'),
    id: SubId,
    channel: literals(CHANNELS),
    scope: Scope,
    since: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          'alerts and setpoints only: a sequence number, not a time. Every held event with seq > since is replayed first; 0 replays all held.',
      }),
    ),
    step: Type.Optional(literals(BUCKET_STEPS, 'buckets only, and required there: the bucket length.')),
  },
  { title: 'Subscribe', description: 'Start a subscription; answered with `subscribed` or `error`.' },
)

const UnsubscribeSchema = Type.Object(
  { op: Type.Literal('unsubscribe'), id: SubId },
  { title: 'Unsubscribe', description: 'End the subscription of this id; answered with `unsubscribed`.' },
)

// ---------------------------------------------------------------------------------------------
// WebSocket frames, server to client.

const ERROR_CODES: readonly ErrorCode[] = [
  'bad_frame',
  'bad_request',
  'unknown_scope',
  'forbidden',
  'duplicate_id',
  'unknown_id',
  'rate_limited',
  'not_available',
]

const SubscribedSchema = Type.Object({ type: Type.Literal('subscribed'), id: SubId }, { title: 'Subscribed' })
const UnsubscribedSchema = Type.Object({ type: Type.Literal('unsubscribed'), id: SubId }, { title: 'Unsubscribed' })

const ErrorFrameSchema = Type.Object(
  {
    type: Type.Literal('error'),
    id: Type.Optional(Type.String({ description: 'The subscription id of the request, where it had one.' })),
    code: literals(ERROR_CODES),
    message: Type.String({ description: 'What was wrong, for a developer to read.' }),
  },
  { title: 'Error', description: 'A refused request or a bad frame; the connection stays open.' },
)

const DemandSchema = Type.Object(
  {
    intervalStart: EpochMs('start of the current 15-minute interval'),
    kW: Type.Number({ description: 'average power over the interval so far' }),
    forecastKW: Type.Number({ description: "projection to the interval's end" }),
    monthPeakKW: Type.Number({ description: 'highest completed interval of the month' }),
  },
  { description: 'The figures behind capacity charges.' },
)

const LiveFrameSchema = Type.Object(
  {
    type: Type.Literal('live'),
    sub: SubId,
    scope: Scope,
    at: Type.Union([EpochMs('the site clock the figures stand at'), Type.Null()], {
      description: "The site clock the figures stand at (ms); null before the site's first reading.",
    }),
    powerW: Type.Number({ description: 'sum of the latest power of the equipment devices in scope' }),
    energyTodayWh: Type.Number({ description: "energy since the start of the site's local day" }),
    savedTodayWh: Type.Optional(
      Type.Number({
        description:
          "energy setpoint tuning saved since the start of the site's local day, where tuned equipment lie within the scope",
      }),
    ),
    co2TodayG: Type.Number({ description: 'location-based CO2 today, g' }),
    co2MarketTodayG: Type.Number({ description: 'market-based CO2 today, g' }),
    gridGPerKWh: Type.Number({ description: 'grid carbon intensity in force, gCO2e per kWh' }),
    pvShare: Type.Number({
      minimum: 0,
      maximum: 1,
      description: 'share of consumption covered by PV; 0 without consumption',
    }),
    idle: Type.Object({ count: Type.Integer({ minimum: 0 }), powerW: Type.Number() }),
    demand: Type.Union([DemandSchema, Type.Null()]),
  },
  {
    title: 'Live',
    description: 'A snapshot at once, then at most one frame a second per subscription while figures change.',
  },
)

const AlertSchema = Type.Object(
  {
    id: Type.String({ description: 'Kept through the states of one alert.' }),
    kind: literals(['idle', 'offline', 'anomaly', 'constraint', 'command'] as const),
    state: literals(['raised', 'cleared', 'acked'] as const),
    severity: literals(['info', 'warning', 'critical'] as const),
    scope: Scope,
    at: EpochMs('event time of this state change'),
    since: EpochMs('event time at which the condition began'),
    message: Type.String(),
    data: Type.Unsafe<Record<string, unknown>>({
      type: 'object',
      description:
        'Figures of the alert. idle raised: powerW; idle cleared: durationS, wastedWh, wastedCo2G. Other kinds carry their own.',
    }),
  },
  { title: 'Alert' },
)

const SetpointEventSchema = Type.Object(
  {
    id: Type.String(),
    scope: Scope,
    name: Type.String({ description: 'The setpoint measurement, e.g. fan_hz.' }),
    from: Type.Number(),
    to: Type.Number(),
    mode: literals(['auto', 'advise', 'off'] as const),
    status: literals(['proposed', 'approved', 'sent', 'applied', 'rejected', 'failed', 'reverted', 'held'] as const),
    reason: Type.String(),
    at: EpochMs('event time'),
  },
  { title: 'SetpointEvent' },
)

const Seq = Type.Integer({
  minimum: 1,
  description: 'One sequence per channel across the whole plant; resume with subscribe `since`.',
})

const AlertFrameSchema = Type.Object(
  { type: Type.Literal('alert'), sub: SubId, seq: Seq, alert: AlertSchema },
  { title: 'AlertFrame' },
)

const SetpointFrameSchema = Type.Object(
  { type: Type.Literal('setpoint'), sub: SubId, seq: Seq, event: SetpointEventSchema },
  { title: 'SetpointFrame' },
)

const GapFrameSchema = Type.Object(
  {
    type: Type.Literal('gap'),
    sub: SubId,
    from: Type.Integer({ minimum: 1, description: 'first discarded seq' }),
    to: Type.Integer({ minimum: 1, description: 'last discarded seq (inclusive)' }),
  },
  {
    title: 'Gap',
    description: 'Events after `since` that the server no longer holds; the held ones follow.',
  },
)

const optionalFigure = (description: string) => Type.Optional(Type.Number({ description }))

const BucketFrameSchema = Type.Object(
  {
    type: Type.Literal('bucket'),
    sub: SubId,
    scope: Scope,
    step: literals(BUCKET_STEPS),
    t: EpochMs("the bucket's start, at the site's local boundary"),
    energyWh: Type.Number(),
    co2G: Type.Number({ description: 'location-based CO2, g' }),
    co2MarketG: Type.Number({ description: 'market-based CO2, g' }),
    idleWh: Type.Number({ description: 'energy drawn while idle' }),
    peakW: Type.Number(),
    revision: Type.Integer({ minimum: 0, description: 'Increases each time late readings change the bucket.' }),
    outputUnits: optionalFigure('units produced, where the scope counts output'),
    idleCo2G: optionalFigure('CO2 of the idle energy, g'),
    pvWh: optionalFigure('PV energy counted as used by the scope'),
    savedWh: optionalFigure('energy saved by tuning'),
    savedCo2G: optionalFigure('CO2 saved by tuning, g'),
  },
  {
    title: 'Bucket',
    description:
      'Sent when its interval closes, and again with a higher revision when late readings change it. The history API answers the figures last sent.',
  },
)

// ---------------------------------------------------------------------------------------------
// MQTT payloads (CONTRACT.md §2, §3).

const senmlFields = {
  bn: Type.Optional(Type.String({ description: 'base name, prefixed to n' })),
  bt: Type.Optional(Type.Number({ description: 'base time, epoch seconds, added to t' })),
  bu: Type.Optional(Type.String({ description: 'base unit' })),
  bv: Type.Optional(Type.Number({ description: 'base value, added to v' })),
  bs: Type.Optional(Type.Number({ description: 'base sum, added to s' })),
  bver: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, description: 'SenML version (10 or lower)' })),
  n: Type.Optional(Type.String({ description: 'name; the measurement is what follows the last ":" or "/"' })),
  u: Type.Optional(Type.String({ description: 'unit: W for power, Wh for energy, count for output' })),
  v: Type.Optional(Type.Number({ description: 'value: power and process variables' })),
  s: Type.Optional(Type.Number({ description: 'sum: the energy and output counters' })),
  t: Type.Optional(
    Type.Number({ description: 'time, seconds; a resolved time below 2^28 is relative to receipt, none means now' }),
  ),
  ut: Type.Optional(Type.Number({ description: 'update time (accepted, not used)' })),
  vs: Type.Optional(Type.String({ description: 'string value: not a reading here, the record is rejected' })),
  vb: Type.Optional(Type.Boolean({ description: 'boolean value: not a reading here, the record is rejected' })),
  vd: Type.Optional(Type.String({ description: 'data value: not a reading here, the record is rejected' })),
}

const SenmlJsonSchema = Type.Array(
  Type.Object(senmlFields, {
    // RFC 8428 §4.4: a field whose label ends in "_" must be understood; plantwatt understands none.
    propertyNames: { not: { pattern: '_$' } },
  }),
  {
    minItems: 1,
    title: 'SenmlPack',
    description: 'A SenML pack (RFC 8428 §5): base fields apply to their record and every record after it.',
  },
)

// RFC 8428 §6 Table 4: the integer labels of SenML CBOR, shown as the decimal strings a CBOR map
// key becomes when the payload is viewed as JSON.
const CBOR_LABELS: Record<keyof typeof senmlFields, number> = {
  bver: -1,
  bn: -2,
  bt: -3,
  bu: -4,
  bv: -5,
  bs: -6,
  n: 0,
  u: 1,
  v: 2,
  vs: 3,
  vb: 4,
  s: 5,
  t: 6,
  ut: 7,
  vd: 8,
}

const SenmlCborSchema = Type.Array(
  Type.Object(
    Object.fromEntries(
      Object.entries(senmlFields).map(([label, schema]) => [
        String(CBOR_LABELS[label as keyof typeof senmlFields]),
        label === 'vd' ? Type.Optional(Type.Unsafe<Uint8Array>({ description: 'data value (byte string)' })) : schema,
      ]),
    ) as Record<string, TSchema>,
  ),
  {
    minItems: 1,
    title: 'SenmlCborPack',
    description:
      'The same pack in CBOR (RFC 8428 §6): an array of maps keyed by the integer labels of Table 4 (bn = -2, bt = -3, n = 0, u = 1, v = 2, s = 5, t = 6, …), shown here with the labels as JSON keys. String labels are accepted too.',
  },
)

const SetpointCommandSchema = Type.Object(
  {
    type: Type.Literal('setpoint'),
    id: Type.String({ minLength: 1, description: 'Echo it in the ack. A replay issues the same id.' }),
    name: Type.String({ description: 'The setpoint measurement the device reports, e.g. fan_hz.' }),
    value: Type.Number({ description: 'The new setpoint, a real number within the tuning bounds.' }),
    issuedAt: Type.Number({ description: 'When plantwatt decided, epoch seconds.' }),
  },
  { title: 'SetpointCommand' },
)

const SetpointAckSchema = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 128, description: "The command's id." }),
    status: literals(['applied', 'rejected'] as const),
    reason: Type.Optional(Type.String({ description: 'Why the device refused, when rejected.' })),
    t: Type.Optional(
      Type.Number({
        description:
          "The device's time of applying or rejecting, epoch seconds; where absent, the time of its latest accepted reading.",
      }),
    ),
  },
  { title: 'SetpointAck' },
)

// The schemas must describe the types the code sends and parses (see the header).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
type BucketFrameWithOptionalFields = BucketFrame & {
  outputUnits?: number
  idleCo2G?: number
  pvWh?: number
  savedWh?: number
  savedCo2G?: number
}
const schemasMatchTypes: [
  Same<Static<typeof SubscribeSchema>, SubscribeRequest>,
  Same<Static<typeof UnsubscribeSchema>, UnsubscribeRequest>,
  Same<Static<typeof SubscribedSchema>, SubscribedFrame>,
  Same<Static<typeof UnsubscribedSchema>, UnsubscribedFrame>,
  Same<Static<typeof ErrorFrameSchema>, ErrorFrame>,
  Same<Static<typeof LiveFrameSchema>, LiveFrame>,
  Same<Static<typeof AlertFrameSchema>, AlertFrame>,
  Same<Static<typeof SetpointFrameSchema>, SetpointFrame>,
  Same<Static<typeof GapFrameSchema>, GapFrame>,
  Same<Static<typeof BucketFrameSchema>, BucketFrameWithOptionalFields>,
  Same<Static<typeof SetpointCommandSchema>, SetpointCommand>,
] = [true, true, true, true, true, true, true, true, true, true, true]
void schemasMatchTypes

// ---------------------------------------------------------------------------------------------
// The document.

const SCHEMAS = {
  SenmlPack: SenmlJsonSchema,
  SenmlCborPack: SenmlCborSchema,
  SetpointCommand: SetpointCommandSchema,
  SetpointAck: SetpointAckSchema,
  Subscribe: SubscribeSchema,
  Unsubscribe: UnsubscribeSchema,
  Subscribed: SubscribedSchema,
  Unsubscribed: UnsubscribedSchema,
  Error: ErrorFrameSchema,
  Live: LiveFrameSchema,
  AlertFrame: AlertFrameSchema,
  SetpointFrame: SetpointFrameSchema,
  Gap: GapFrameSchema,
  Bucket: BucketFrameSchema,
} as const

/** The components/messages of the document, each with the schema of its payload. */
const MESSAGES: Record<string, { schema: keyof typeof SCHEMAS; title: string; summary: string; contentType?: string }> =
  {
    senmlJson: {
      schema: 'SenmlPack',
      title: 'Readings, SenML JSON',
      summary: 'Readings as a SenML JSON pack: the payload starts with "[".',
      contentType: 'application/senml+json',
    },
    senmlCbor: {
      schema: 'SenmlCborPack',
      title: 'Readings, SenML CBOR',
      summary: 'The same readings as SenML CBOR: any payload not starting with "[" is read as CBOR.',
      contentType: 'application/senml+cbor',
    },
    setpointCommand: {
      schema: 'SetpointCommand',
      title: 'Setpoint command',
      summary: 'Apply a new setpoint, then answer on the ack topic and report the new value in readings.',
    },
    setpointAck: {
      schema: 'SetpointAck',
      title: 'Command answer',
      summary: 'Applied or rejected, with the command id.',
    },
    subscribe: { schema: 'Subscribe', title: 'subscribe', summary: 'Subscribe to a channel for a scope.' },
    unsubscribe: { schema: 'Unsubscribe', title: 'unsubscribe', summary: 'End a subscription.' },
    subscribed: { schema: 'Subscribed', title: 'subscribed', summary: 'A subscription started.' },
    unsubscribed: { schema: 'Unsubscribed', title: 'unsubscribed', summary: 'A subscription ended.' },
    error: { schema: 'Error', title: 'error', summary: 'A refused request or bad frame.' },
    live: { schema: 'Live', title: 'live', summary: 'Live figures of a scope.' },
    alert: { schema: 'AlertFrame', title: 'alert', summary: 'An alert state change, with its seq.' },
    setpoint: { schema: 'SetpointFrame', title: 'setpoint', summary: 'A setpoint event, with its seq.' },
    gap: { schema: 'Gap', title: 'gap', summary: 'Events that were discarded before a replay.' },
    bucket: { schema: 'Bucket', title: 'bucket', summary: 'A closed energy bucket, or a revision of one.' },
  }

// ---------------------------------------------------------------------------------------------
// Examples, one or more per message (the test checks each against its payload schema).

const T = 1_732_250_000
const T_MS = T * 1000
const OVEN = 'yibin/electrode/coating-1/coater-1-oven'

const EXAMPLES: Record<string, { name: string; summary: string; payload: unknown }[]> = {
  senmlJson: [
    {
      name: 'batch',
      summary: 'Two minutes of buffered readings sent at once, absolute times',
      payload: [
        { bn: 'urn:dev:imei:860100000000123:', bt: T, n: 'power', u: 'W', v: 41250, t: 0 },
        { n: 'energy', u: 'Wh', s: 8123456.5, t: 0 },
        { n: 'power', u: 'W', v: 40980, t: 60 },
        { n: 'energy', u: 'Wh', s: 8124141, t: 60 },
        { n: 'solvent_ppm', v: 362.5, t: 60 },
        { n: 'fan_hz', u: 'Hz', v: 42, t: 60 },
      ],
    },
    { name: 'now', summary: 'One reading measured at receipt (no time)', payload: [{ n: 'power', u: 'W', v: 1500 }] },
  ],
  senmlCbor: [
    {
      name: 'one record',
      summary: 'CBOR map keys are the integer labels of RFC 8428 Table 4',
      payload: [{ '-2': 'urn:dev:imei:860100000000123:', '-3': T, '0': 'power', '1': 'W', '2': 41250 }],
    },
  ],
  setpointCommand: [
    {
      name: 'fan speed',
      summary: 'Set fan_hz to 42',
      payload: { type: 'setpoint', id: '7f0c2a91', name: 'fan_hz', value: 42, issuedAt: T },
    },
  ],
  setpointAck: [
    { name: 'applied', summary: 'Applied', payload: { id: '7f0c2a91', status: 'applied', t: T + 30 } },
    {
      name: 'rejected',
      summary: 'Refused by the device',
      payload: { id: '7f0c2a91', status: 'rejected', reason: '52 is outside the range 30–50 Hz', t: T + 30 },
    },
  ],
  subscribe: [
    {
      name: 'live',
      summary: 'Live figures of a line',
      payload: { op: 'subscribe', id: 'a', channel: 'live', scope: 'yibin/electrode/coating-1' },
    },
    {
      name: 'alerts since',
      summary: 'Alerts after seq 120',
      payload: { op: 'subscribe', id: 'b', channel: 'alerts', scope: 'yibin', since: 120 },
    },
    {
      name: 'buckets',
      summary: 'Quarter-hour buckets',
      payload: { op: 'subscribe', id: 'd', channel: 'buckets', scope: 'yibin', step: '15m' },
    },
  ],
  unsubscribe: [{ name: 'unsubscribe', summary: 'End subscription a', payload: { op: 'unsubscribe', id: 'a' } }],
  subscribed: [{ name: 'subscribed', summary: 'Subscription a started', payload: { type: 'subscribed', id: 'a' } }],
  unsubscribed: [{ name: 'unsubscribed', summary: 'Subscription a ended', payload: { type: 'unsubscribed', id: 'a' } }],
  error: [
    {
      name: 'unknown scope',
      summary: 'A scope that is not in the plant',
      payload: { type: 'error', id: 'a', code: 'unknown_scope', message: 'no scope yibin/nowhere in the plant' },
    },
  ],
  live: [
    {
      name: 'line',
      summary: 'Figures of a line',
      payload: {
        type: 'live',
        sub: 'a',
        scope: 'yibin/electrode/coating-1',
        at: T_MS,
        powerW: 1532000,
        energyTodayWh: 8123000,
        co2TodayG: 3960000,
        co2MarketTodayG: 3120000,
        gridGPerKWh: 470,
        pvShare: 0.18,
        idle: { count: 2, powerW: 41000 },
        demand: { intervalStart: T_MS - 200_000, kW: 1490.2, forecastKW: 1522, monthPeakKW: 1710.5 },
      },
    },
  ],
  alert: [
    {
      name: 'idle raised',
      summary: 'An oven idle for more than afterS',
      payload: {
        type: 'alert',
        sub: 'b',
        seq: 121,
        alert: {
          id: 'idle-3f9a',
          kind: 'idle',
          state: 'raised',
          severity: 'warning',
          scope: OVEN,
          at: T_MS,
          since: T_MS - 300_000,
          message: 'coater-1-oven idle for 5 min at 30 kW',
          data: { powerW: 30000 },
        },
      },
    },
    {
      name: 'idle cleared',
      summary: 'The same alert when the episode ended',
      payload: {
        type: 'alert',
        sub: 'b',
        seq: 140,
        alert: {
          id: 'idle-3f9a',
          kind: 'idle',
          state: 'cleared',
          severity: 'warning',
          scope: OVEN,
          at: T_MS + 900_000,
          since: T_MS - 300_000,
          message: 'coater-1-oven running again after 20 min idle',
          data: { durationS: 1200, wastedWh: 10000, wastedCo2G: 4700 },
        },
      },
    },
  ],
  setpoint: [
    {
      name: 'proposed',
      summary: 'A proposal waiting for an operator',
      payload: {
        type: 'setpoint',
        sub: 'c',
        seq: 37,
        event: {
          id: 'sp-7f0c2a91',
          scope: OVEN,
          name: 'fan_hz',
          from: 45,
          to: 43,
          mode: 'advise',
          status: 'proposed',
          reason: 'solvent_ppm below its limit by more than the margin',
          at: T_MS,
        },
      },
    },
  ],
  gap: [
    {
      name: 'gap',
      summary: 'Events 121 to 180 were discarded',
      payload: { type: 'gap', sub: 'b', from: 121, to: 180 },
    },
  ],
  bucket: [
    {
      name: 'quarter hour',
      summary: 'A closed 15-minute bucket of a site',
      payload: {
        type: 'bucket',
        sub: 'd',
        scope: 'yibin',
        step: '15m',
        t: T_MS - 200_000,
        energyWh: 372550,
        co2G: 175100,
        co2MarketG: 138300,
        idleWh: 9100,
        peakW: 1530000,
        revision: 0,
      },
    },
  ],
}

const CLIENT_FRAMES = ['subscribe', 'unsubscribe'] as const
const SERVER_FRAMES = ['subscribed', 'unsubscribed', 'error', 'live', 'alert', 'setpoint', 'gap', 'bucket'] as const

const ref = (path: string) => ({ $ref: path })
const messageRefs = (channel: string, names: readonly string[]) =>
  names.map((name) => ref(`#/channels/${channel}/messages/${name}`))
const deviceTopicParameters = {
  site: { description: `The site id of the plant model (${NODE_ID_PATTERN.source}).`, examples: ['yibin'] },
  deviceId: {
    description: `The device id (${DEVICE_ID_PATTERN.source}): the same as the MQTT client id and username.`,
    examples: ['860100000000123'],
  },
}

export interface AsyncApiOptions {
  /** host:port of the MQTT listener, as devices reach it. */
  mqttHost?: string
  /** host:port of the HTTP listener (WebSocket /ws, MQTT over WebSocket /mqtt). */
  httpHost?: string
}

/**
 * The AsyncAPI 3.1 document (a fresh plain-JSON object on every call). Operations are written
 * from plantwatt's side: it receives readings and acks and client frames, and sends commands and
 * server frames.
 */
export function asyncApiDocument(options: AsyncApiOptions = {}): Record<string, unknown> {
  const mqttHost = options.mqttHost ?? 'localhost:1883'
  const httpHost = options.httpHost ?? 'localhost:8080'
  const document = {
    asyncapi: '3.1.0',
    id: 'urn:plantwatt:interfaces',
    info: {
      title: 'plantwatt devices and live channels',
      version: '1.1.0',
      description: [
        'The message interfaces of plantwatt: the MQTT topics devices use to send readings and receive setpoint',
        'commands, and the WebSocket protocol of `GET /ws` that dashboards and integrations use for live figures,',
        'alerts, setpoint events and energy buckets. The HTTP API is described by the OpenAPI document at',
        '`/api/v1/openapi.json`.',
        '',
        'Times: SenML and the MQTT JSON messages use epoch seconds (fractions allowed); WebSocket frames use',
        'epoch milliseconds. The `since` of a subscribe request is a sequence number, not a time.',
        '',
        'Clients must ignore fields they do not know: later versions add optional fields.',
      ].join('\n'),
    },
    defaultContentType: 'application/json',
    servers: {
      mqtt: {
        host: mqttHost,
        protocol: 'mqtt',
        protocolVersion: '3.1.1',
        description: [
          'The MQTT broker for devices (MQTT 3.1.1). The client id must equal the device id; clean and persistent',
          'sessions are both accepted (sleeping devices use a persistent session, so commands wait for them).',
          'Every keep-alive from 0 to 65535 s is accepted; a connection silent for 1.5 × its keep-alive is closed (with 0, one silent for 24 h).',
          'Default limits: packets up to 256 KiB, a packet completed within 10 s, 8 subscriptions, topics up to 8',
          "levels, 50 messages a second with a burst of 500: a faster publisher is slowed (its socket is not read until its budget refills), not disconnected. A will is allowed only on the device's own up or ack topic; retain flags are cleared. The same broker is",
          `reachable as MQTT over WebSocket at ws://${httpHost}/mqtt (subprotocol "mqtt").`,
        ].join(' '),
        security: [ref('#/components/securitySchemes/deviceCredentials')],
      },
      gateway: {
        host: httpHost,
        pathname: '/ws',
        protocol: 'ws',
        description: [
          'The WebSocket of the gateway: JSON text frames. A missing or unknown token refuses the upgrade with 401,',
          'a token without the role with 403; the viewer role suffices. Bad frames get an `error` frame and the',
          'connection stays open. A client too slow for alerts or setpoint events is closed with code 1013 and',
          'resumes with `since`; a slow client loses `live` frames (the newest wins) but never events. Incoming frames: a burst',
          'of 200, then 50 a second, past which the connection is closed with 1008; revoking a token closes its connections',
          'with 1008. At most 20 connections per token and 100 per address, 200 subscriptions per connection.',
        ].join(' '),
        security: [ref('#/components/securitySchemes/bearer'), ref('#/components/securitySchemes/tokenQuery')],
      },
    },
    channels: {
      deviceUp: {
        address: 'sites/{site}/devices/{deviceId}/up',
        title: 'Readings',
        description:
          'A device publishes its readings here, QoS 0 or 1. One message may carry many records and many timestamps (a batch of buffered readings). Each bad record is rejected on its own with a reason (malformed, non_finite, unit_mismatch, future, too_old, out_of_range, wrong_site, too_many_names); the rest of the pack is kept. Refusals are counted per device and reason: GET /api/v1/devices/{deviceId}.',
        servers: [ref('#/servers/mqtt')],
        parameters: deviceTopicParameters,
        messages: {
          senmlJson: ref('#/components/messages/senmlJson'),
          senmlCbor: ref('#/components/messages/senmlCbor'),
        },
      },
      deviceDown: {
        address: 'sites/{site}/devices/{deviceId}/down',
        title: 'Commands',
        description:
          'Setpoint commands for the device, QoS 1. A device may subscribe to its own down topic only; any other filter gets SUBACK 0x80.',
        servers: [ref('#/servers/mqtt')],
        parameters: deviceTopicParameters,
        messages: { setpointCommand: ref('#/components/messages/setpointCommand') },
      },
      deviceAck: {
        address: 'sites/{site}/devices/{deviceId}/ack',
        title: 'Command answers',
        description: 'The device answers each command here. A command with no answer within commandTimeoutS fails.',
        servers: [ref('#/servers/mqtt')],
        parameters: deviceTopicParameters,
        messages: { setpointAck: ref('#/components/messages/setpointAck') },
      },
      ws: {
        address: '/ws',
        title: 'Live channels',
        description:
          'Subscriptions to the channels live, alerts, setpoints and buckets of a scope, multiplexed on one connection by subscription id.',
        servers: [ref('#/servers/gateway')],
        messages: Object.fromEntries(
          [...CLIENT_FRAMES, ...SERVER_FRAMES].map((name) => [name, ref(`#/components/messages/${name}`)]),
        ),
      },
    },
    operations: {
      receiveReadings: {
        action: 'receive',
        title: 'Receive readings',
        channel: ref('#/channels/deviceUp'),
        messages: messageRefs('deviceUp', ['senmlJson', 'senmlCbor']),
      },
      sendCommand: {
        action: 'send',
        title: 'Send a setpoint command',
        channel: ref('#/channels/deviceDown'),
        messages: messageRefs('deviceDown', ['setpointCommand']),
        bindings: { mqtt: { qos: 1, bindingVersion: '0.2.0' } },
      },
      receiveAck: {
        action: 'receive',
        title: 'Receive command answers',
        channel: ref('#/channels/deviceAck'),
        messages: messageRefs('deviceAck', ['setpointAck']),
      },
      receiveClientFrames: {
        action: 'receive',
        title: 'Subscription requests',
        channel: ref('#/channels/ws'),
        messages: messageRefs('ws', CLIENT_FRAMES),
      },
      sendServerFrames: {
        action: 'send',
        title: 'Answers, figures and events',
        channel: ref('#/channels/ws'),
        messages: messageRefs('ws', SERVER_FRAMES),
      },
    },
    components: {
      securitySchemes: {
        deviceCredentials: {
          type: 'userPassword',
          description:
            'Username = the device id; password = lowercase hex of HMAC-SHA256 keyed with the device secret (PLANTWATT_DEVICE_SECRET, UTF-8) over the device id. `plantwatt device-token ID` prints it. A device not in the plant model or with a wrong password gets CONNACK 4 or 5; after 5 failed logins of one id from one address within 60 s, that id is refused from that address for 60 s, even with the right password.',
        },
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'Authorization: Bearer TOKEN, with the viewer, operator or admin role.',
        },
        tokenQuery: {
          type: 'httpApiKey',
          name: 'token',
          in: 'query',
          description: '?token=TOKEN, for browsers, which cannot set headers on a WebSocket.',
        },
      },
      messages: Object.fromEntries(
        Object.entries(MESSAGES).map(([name, message]) => [
          name,
          {
            name,
            title: message.title,
            summary: message.summary,
            ...(message.contentType === undefined ? {} : { contentType: message.contentType }),
            payload: ref(`#/components/schemas/${message.schema}`),
            examples: EXAMPLES[name] ?? [],
          },
        ]),
      ),
      schemas: SCHEMAS,
    },
  }
  // TypeBox marks its schemas with symbol keys; a JSON round trip leaves the plain document.
  return JSON.parse(JSON.stringify(document)) as Record<string, unknown>
}
