import { type Bus, createAedesBus } from '@plantwatt/bus'
import { Aedes } from 'aedes'

/**
 * A bus inside one process with no broker listening: an aedes instance used only for its topic
 * matching and delivery. The primary of `plantwatt up --workers N` joins its processor, gateway
 * and downlink owner with it, as the single process does on its embedded broker.
 */
export async function createLocalBus(onError: (error: unknown) => void = () => {}): Promise<Bus> {
  const aedes = await Aedes.createBroker()
  const bus = createAedesBus(aedes, onError)
  return {
    publish: bus.publish,
    subscribe: bus.subscribe,
    async close() {
      await bus.close()
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
    },
  }
}
