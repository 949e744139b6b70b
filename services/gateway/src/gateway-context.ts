import type { Bus, QueryClient } from '@plantwatt/bus'
import type { Alert, SetpointEvent } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'
import type { PublicTokenRecord, Role, TokenRecord } from '@plantwatt/runtime'
import type { Logger } from 'pino'
import type { TokenVerifier } from './access.ts'
import type { EventReplica } from './event-replica.ts'
import type { LiveHub } from './live-hub.ts'

/** Token administration (CONTRACT.md §6 /api/v1/tokens); the runtime's TokenStore is one. */
export interface TokenAdmin extends TokenVerifier {
  /** Whether the token with this id is still stored (false once revoked). */
  has(id: string): boolean
  list(): PublicTokenRecord[]
  issue(request: { name: string; role: Role; scopes?: string[] }): Promise<{ token: string; record: TokenRecord }>
  revoke(id: string): Promise<boolean>
}

/** What the route modules share: built once by createGateway. */
export interface GatewayContext {
  plant: PlantIndex
  bus: Bus
  tokens: TokenAdmin
  live: LiveHub
  alerts: EventReplica<Alert>
  setpoints: EventReplica<SetpointEvent>
  queries: QueryClient
  logger: Logger
  /** Wall clock, ms. */
  now: () => number
  /** Closes every /ws connection opened with this token (it was just revoked). */
  closeConnectionsOf(tokenId: string): void
  /** How long an acknowledgement waits for the processor's `acked` event before answering 202. */
  ackWaitMs: number
}
