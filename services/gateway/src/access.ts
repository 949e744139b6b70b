import { isWithinScope, type PlantIndex } from '@plantwatt/plant'
import type { Role, TokenRecord } from '@plantwatt/runtime'
import { roleAtLeast } from '@plantwatt/runtime'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { errorBody } from './errors.ts'

export interface TokenVerifier {
  verify(token: string): TokenRecord | undefined
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: TokenRecord | undefined
  }
}

/** Bearer token from the header, or, where browsers cannot set headers (/ws), from `?token=`. */
export function presentedToken(request: FastifyRequest, allowQuery: boolean): string | undefined {
  const header = request.headers.authorization
  if (header?.startsWith('Bearer ')) return header.slice(7).trim()
  if (allowQuery) {
    const token = (request.query as Record<string, unknown> | undefined)?.token
    if (typeof token === 'string' && token.length > 0) return token
  }
  return undefined
}

/** A token may see a scope when one of its scopes contains it (or it has none: the whole plant). */
export function mayAccessScope(principal: TokenRecord, scope: string): boolean {
  return principal.scopes.length === 0 || principal.scopes.some((allowed) => isWithinScope(scope, allowed))
}

/**
 * Scopes `inner` lie within `outer` (CONTRACT.md §4 token scopes; empty means the whole plant):
 * every inner scope inside one of the outer ones. The whole plant lies within the whole plant only.
 */
function scopesWithin(inner: readonly string[], outer: readonly string[]): boolean {
  if (outer.length === 0) return true
  if (inner.length === 0) return false
  return inner.every((scope) => outer.some((allowed) => isWithinScope(scope, allowed)))
}

/**
 * Whether `issuer` may issue a token with this role and these scopes (issue 12 finding 3): no
 * role above its own and no scope outside its own, so a scoped admin cannot make itself a
 * plant-wide one.
 */
export function mayGrant(issuer: TokenRecord, request: { role: Role; scopes: readonly string[] }): boolean {
  return roleAtLeast(issuer.role, request.role) && scopesWithin(request.scopes, issuer.scopes)
}

/** Whether `manager` may see (list) and revoke `token`: all its scopes lie within the manager's. */
export function mayManage(manager: TokenRecord, token: { scopes: readonly string[] }): boolean {
  return scopesWithin(token.scopes, manager.scopes)
}

/** A tree node stays visible when it leads to, or lies within, one of the token's scopes. */
/**
 * The scope a device's figures belong to (its equipment, or its site for a site meter) when the
 * token may see it; undefined for an unknown device or one outside the token's scopes, which the
 * routes answer alike with 404 so that a scoped token learns nothing of devices beyond it.
 */
export function deviceScopeFor(plant: PlantIndex, principal: TokenRecord, deviceId: string): string | undefined {
  const device = plant.device(deviceId)
  const scope = device?.equipment?.scope ?? device?.siteId
  return scope !== undefined && mayAccessScope(principal, scope) ? scope : undefined
}

export function mayViewNode(principal: TokenRecord, scope: string): boolean {
  return (
    principal.scopes.length === 0 ||
    principal.scopes.some((allowed) => isWithinScope(scope, allowed) || isWithinScope(allowed, scope))
  )
}

/** An onRequest hook: 401 without a known token, 403 below the role. */
export function requireRole(verifier: TokenVerifier, role: Role, allowQuery = false) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const token = presentedToken(request, allowQuery)
    const principal = token === undefined ? undefined : verifier.verify(token)
    if (!principal) {
      return reply.code(401).send(errorBody('unauthorized', 'a valid bearer token is required'))
    }
    if (!roleAtLeast(principal.role, role)) {
      return reply.code(403).send(errorBody('forbidden', `this needs the ${role} role`))
    }
    request.principal = principal
  }
}

/**
 * Answers 404 for a scope that is not in the plant and 403 for one outside the token's scopes;
 * true when the request may go on (an absent scope means "every scope the token sees").
 */
export function scopeAllowed(
  plant: PlantIndex,
  principal: TokenRecord,
  scope: string | undefined,
  reply: FastifyReply,
): boolean {
  if (scope === undefined) return true
  if (!plant.scope(scope)) {
    reply.code(404).send(errorBody('unknown_scope', `no scope "${scope}"`))
    return false
  }
  if (!mayAccessScope(principal, scope)) {
    reply.code(403).send(errorBody('forbidden', `this token may not see "${scope}"`))
    return false
  }
  return true
}
