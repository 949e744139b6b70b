import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Bus, createAedesBus } from '@plantwatt/bus'
import { Aedes } from 'aedes'

/**
 * What most processor tests start from: a real aedes broker in this process with plantwatt's bus
 * on it (as `plantwatt up` has), and a fresh temporary directory. `close` closes both and removes
 * the directory.
 */
export async function openBusAndDir(prefix: string): Promise<{ dir: string; bus: Bus; close: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  const aedes = await Aedes.createBroker()
  const bus = createAedesBus(aedes)
  return {
    dir,
    bus,
    async close() {
      await bus.close()
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
      await rm(dir, { recursive: true, force: true })
    },
  }
}
