import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PlantIndex } from '@plantwatt/plant'
import { describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { historyStoreDir, openHistoryStore } from '../src/roles.ts'

// `up` and `processor` open <data-dir>/history with 1-minute buckets kept at least the largest
// maxAgeS of the sites (CONTRACT.md §6: "never less than maxAgeS"; §7: a reading that late still
// revises its minute). A plant whose maxAgeS is longer than 7 days must start, not fail on the
// store's retention floor. Real files.

describe('opening the history store for a plant', () => {
  it('keeps 1-minute buckets for the largest maxAgeS of the sites, also above 7 days', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plantwatt-open-history-'))
    try {
      const model = examplePlant()
      model.sites[0]!.maxAgeS = 10 * 86_400
      const store = openHistoryStore(new PlantIndex(model), dir)
      expect(store.retention['1m']).toBe(10 * 86_400)
      await store.close()
      expect(await readdir(historyStoreDir(dir))).toContain('data.mdb')

      const store7 = openHistoryStore(new PlantIndex(examplePlant()), dir)
      expect(store7.retention['1m']).toBe(7 * 86_400)
      await store7.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
