// One catalogue of HTTP error codes (STYLE.md, fastify's lib/errors.js). Codes are never reused.
// Body shape of CONTRACT.md §6: {"error": {"code", "message"}}.

export const HttpErrors = {
  unauthorized: { status: 401, code: 'unauthorized' },
  forbidden: { status: 403, code: 'forbidden' },
  bad_request: { status: 400, code: 'bad_request' },
  unknown_scope: { status: 404, code: 'unknown_scope' },
  not_found: { status: 404, code: 'not_found' },
  conflict: { status: 409, code: 'conflict' },
  payload_too_large: { status: 413, code: 'payload_too_large' },
  unsupported_media_type: { status: 415, code: 'unsupported_media_type' },
  rate_limited: { status: 429, code: 'rate_limited' },
  not_ready: { status: 503, code: 'not_ready' },
  unavailable: { status: 503, code: 'unavailable' },
  internal: { status: 500, code: 'internal' },
} as const

export type HttpErrorName = keyof typeof HttpErrors

export function errorBody(name: HttpErrorName, message: string) {
  return { error: { code: HttpErrors[name].code, message } }
}

/** The error name for a status fastify or a plugin chose (body too large, bad JSON, rate limit). */
export function errorNameForStatus(status: number): HttpErrorName {
  switch (status) {
    case 401:
      return 'unauthorized'
    case 403:
      return 'forbidden'
    case 404:
      return 'not_found'
    case 409:
      return 'conflict'
    case 413:
      return 'payload_too_large'
    case 415:
      return 'unsupported_media_type'
    case 429:
      return 'rate_limited'
    case 503:
      return 'unavailable'
    default:
      return status >= 400 && status < 500 ? 'bad_request' : 'internal'
  }
}
