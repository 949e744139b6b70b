// The history view's selection in the URL hash (issue 17: a reload keeps the range and scope, and
// a link shows a colleague the same figures): `#range=week&at=2026-12-07&scope=site/area`.
// Only reading and writing the text; what a value means is history.js's.

import { KINDS, parseDate } from './range.js'

/** {range, at, scope}, each undefined when absent or unreadable. */
export function readHash(hash) {
  const params = new URLSearchParams(hash.startsWith('#') ? hash.slice(1) : hash)
  const range = params.get('range')
  return {
    range: KINDS.includes(range) ? range : undefined,
    at: parseDate(params.get('at') ?? undefined),
    scope: params.get('scope') || undefined,
  }
}

/** The hash for a selection; `at` already as YYYY-MM-DD. */
export function hashOf({ range, at, scope }) {
  // The slashes of a scope read better unescaped, and URLSearchParams would escape them.
  return `#range=${range}&at=${at}&scope=${encodeURIComponent(scope).replaceAll('%2F', '/')}`
}
