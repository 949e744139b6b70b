import {
  type Bus,
  encodeLiveBatch,
  LIVE_INTEREST_TOPIC,
  type LiveInterest,
  liveTopic,
  parseLiveInterest,
  serveQueries,
  type Unsubscribe,
} from '@plantwatt/bus'
import type { LiveFigures } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'

// What a processor with no readings yet answers the gateway over the bus (a gateway-only test may
// not start the processor service: services never import each other). It speaks the processor's
// side of the live protocol (docs/internal-bus.md): figures for each newly watched scope at once,
// and the `live` and `equipment` queries. Tests that need real figures run the real processor
// (test/e2e/live-interest.test.ts).

export function zeroFigures(scope: string, at: number | null = null, gridGPerKWh = 0): LiveFigures {
  return {
    scope,
    at,
    powerW: 0,
    energyTodayWh: 0,
    co2TodayG: 0,
    co2MarketTodayG: 0,
    gridGPerKWh,
    pvShare: 0,
    idle: { count: 0, powerW: 0 },
    demand: null,
  }
}

export interface ProcessorStandIn {
  /** Every interest message the gateway sent. */
  interests: LiveInterest[]
  close(): Promise<void>
}

export async function startProcessorStandIn(bus: Bus, plant: PlantIndex): Promise<ProcessorStandIn> {
  const interests: LiveInterest[] = []
  const unsubscribes: Unsubscribe[] = [
    await bus.subscribe(LIVE_INTEREST_TOPIC, (_topic, payload) => {
      const message = parseLiveInterest(payload)
      if (!message) return
      interests.push(message)
      if (message.kind !== 'add' && message.kind !== 'full') return
      for (const scope of message.scopes ?? []) {
        const node = plant.scope(scope)
        if (!node) continue
        // An answer to a new interest, as the processor flags it.
        const batch = { site: node.siteId, at: null, gridGPerKWh: 0, scopes: [zeroFigures(scope)], answer: true }
        void bus.publish(liveTopic(node.siteId), encodeLiveBatch(batch))
      }
    }),
    await serveQueries(
      bus,
      {
        live: (params) => {
          const scope = (params as { scope: string }).scope
          return plant.scope(scope) ? zeroFigures(scope) : null
        },
        equipment: () => ({}),
      },
      () => {},
    ),
  ]
  return {
    interests,
    async close() {
      for (const unsubscribe of unsubscribes) await unsubscribe()
    },
  }
}
