// One catalogue of HTTP error codes (STYLE.md, fastify's lib/errors.js). Codes are never reused.
// Body shape of CONTRACT.md §6: {"error": {"code", "message"}}.

export const HttpErrors = {
  unauthorized: { status: 401, code: 'unauthorized' },
  forbidden: { status: 403, code: 'forbidden' },
  bad_request: { status: 400, code: 'bad_request' },
  unknown_scope: { status: 404, code: 'unknown_scope' },
  not_found: { status: 404, code: 'not_found' },
  not_ready: { status: 503, code: 'not_ready' },
  internal: { status: 500, code: 'internal' },
} as const

export type HttpErrorName = keyof typeof HttpErrors

export function errorBody(name: HttpErrorName, message: string) {
  return { error: { code: HttpErrors[name].code, message } }
}
