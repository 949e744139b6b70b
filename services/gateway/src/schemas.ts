// JSON Schemas of the HTTP API (CONTRACT.md §6), one place, referenced by the routes and shown in
// the OpenAPI document at /api/v1/openapi.json. Response schemas list every field on purpose:
// fastify's serializer drops what a schema does not name, so a schema is also a guard against
// leaking internals (a token's hash, say).

export const ErrorSchema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' } },
      required: ['code', 'message'],
    },
  },
  required: ['error'],
} as const

/** The usual refusals of a route behind a token. */
export const errorResponses = {
  400: ErrorSchema,
  401: ErrorSchema,
  403: ErrorSchema,
  404: ErrorSchema,
  429: ErrorSchema,
} as const

export const ScopeQuery = {
  type: 'string',
  minLength: 1,
  maxLength: 200,
  description: 'site, site/area, site/area/line or site/area/line/equipment',
} as const

export const AlertSchema = {
  type: 'object',
  properties: {
    seq: { type: 'integer', description: 'seq of this state change on the alerts channel' },
    id: { type: 'string' },
    kind: { type: 'string', enum: ['idle', 'offline', 'anomaly', 'constraint', 'command'] },
    state: { type: 'string', enum: ['raised', 'cleared', 'acked'] },
    severity: { type: 'string', enum: ['info', 'warning', 'critical'] },
    scope: { type: 'string' },
    at: { type: 'number', description: 'event time of this state change, ms' },
    since: { type: 'number', description: 'event time the condition began, ms' },
    message: { type: 'string' },
    data: { type: 'object', additionalProperties: true },
  },
  required: ['seq', 'id', 'kind', 'state', 'severity', 'scope', 'at', 'since', 'message', 'data'],
} as const

export const SetpointEventSchema = {
  type: 'object',
  properties: {
    seq: { type: 'integer' },
    id: { type: 'string' },
    scope: { type: 'string' },
    name: { type: 'string' },
    from: { type: 'number' },
    to: { type: 'number' },
    mode: { type: 'string', enum: ['auto', 'advise', 'off'] },
    status: {
      type: 'string',
      enum: ['proposed', 'approved', 'sent', 'applied', 'rejected', 'failed', 'reverted', 'held'],
    },
    reason: { type: 'string' },
    at: { type: 'number' },
  },
  required: ['seq', 'id', 'scope', 'name', 'status', 'at'],
} as const

export const BucketRowSchema = {
  type: 'object',
  properties: {
    t: { type: 'number', description: "the bucket's start, ms" },
    energyWh: { type: 'number' },
    co2G: { type: 'number' },
    co2MarketG: { type: 'number' },
    idleWh: { type: 'number' },
    peakW: { type: 'number' },
    // CONTRACT.md §5's optional bucket fields, where the bucket carried them: the history answers
    // exactly the figures last sent.
    outputUnits: { type: 'number' },
    idleCo2G: { type: 'number' },
    pvWh: { type: 'number' },
    savedWh: { type: 'number' },
    savedCo2G: { type: 'number' },
  },
  required: ['t', 'energyWh', 'co2G', 'co2MarketG', 'idleWh', 'peakW'],
} as const

export const LiveSchema = {
  type: 'object',
  properties: {
    type: { type: 'string', enum: ['live'] },
    scope: { type: 'string' },
    at: { type: ['number', 'null'] },
    powerW: { type: 'number' },
    energyTodayWh: { type: 'number' },
    savedTodayWh: {
      type: 'number',
      description: 'energy setpoint tuning saved today, where tuned equipment lie within the scope',
    },
    co2TodayG: { type: 'number' },
    co2MarketTodayG: { type: 'number' },
    gridGPerKWh: { type: 'number' },
    pvShare: { type: 'number' },
    idle: { type: 'object', properties: { count: { type: 'integer' }, powerW: { type: 'number' } } },
    demand: {
      type: ['object', 'null'],
      properties: {
        intervalStart: { type: 'number' },
        kW: { type: 'number' },
        forecastKW: { type: 'number' },
        monthPeakKW: { type: 'number' },
      },
    },
  },
} as const

export const TokenSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string', enum: ['viewer', 'operator', 'admin'] },
    scopes: { type: 'array', items: { type: 'string' } },
    createdAt: { type: 'string' },
  },
  required: ['id', 'name', 'role', 'scopes', 'createdAt'],
} as const

/** The figures of one scope over one period (CONTRACT.md §6 reports). */
const reportFigureProperties = {
  energyWh: { type: 'number', description: "sum of the scope's buckets over the period" },
  co2G: { type: 'number', description: 'location-based CO2, g' },
  co2MarketG: { type: 'number', description: 'market-based CO2, g' },
  pvShare: { type: 'number', description: 'Σ pvWh / Σ energyWh (0 without energy)' },
  idleWh: { type: 'number' },
  idleCo2G: { type: 'number' },
  peakKW: { type: 'number', description: 'highest complete 15-minute demand in the period (0 without one)' },
  peakAt: { type: ['number', 'null'], description: 'start of that 15-minute interval, ms' },
  outputUnits: { type: 'number', description: 'units produced (0 where nothing within reports output)' },
  whPerUnit: { type: ['number', 'null'], description: 'energyWh / outputUnits; null without output' },
  savedWh: { type: 'number', description: 'energy saved by setpoint tuning' },
  savedCo2G: { type: 'number' },
} as const

const reportFigureNames = Object.keys(reportFigureProperties)

export const ReportSchema = {
  type: 'object',
  properties: {
    scope: { type: 'string' },
    period: { type: 'string', enum: ['day', 'week', 'month', 'year'] },
    from: { type: 'number', description: "the period's start (local midnight), ms" },
    to: { type: 'number', description: "the period's end (exclusive), ms" },
    ...reportFigureProperties,
    previous: {
      type: 'object',
      description: 'the same figures for the period before',
      properties: { from: { type: 'number' }, to: { type: 'number' }, ...reportFigureProperties },
      required: ['from', 'to', ...reportFigureNames],
    },
    children: {
      type: 'array',
      description: 'the direct children over the same period',
      items: {
        type: 'object',
        properties: { scope: { type: 'string' }, ...reportFigureProperties },
        required: ['scope', ...reportFigureNames],
      },
    },
  },
  required: ['scope', 'period', 'from', 'to', ...reportFigureNames, 'previous', 'children'],
} as const
