import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { PlantSimulation, type TruthJson } from '../../../simulators/fleet/src/model/index.ts'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { readTruthFile, truthMinutesFile, writeTruthFile } from '../bench/truth-file.ts'

// The replay benchmark's truth on disk (bench/truth-file.ts): the per-minute rows in a binary
// file beside the JSON must read back as exactly the numbers the one-JSON form holds.

const START_S = Date.UTC(2025, 2, 4, 0, 0) / 1000

function simulatedTruth(): TruthJson {
  const sim = new PlantSimulation({ plant: generatePlant({ devices: 60, seed: 2 }), seed: 2, startS: START_S })
  sim.advanceTo(START_S + 45 * 60)
  // Through JSON, as the one-file form is read back: the reference the binary form must equal.
  return JSON.parse(JSON.stringify(sim.truth.toJSON())) as TruthJson
}

describe('replay benchmark truth file', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-truth-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('reads back every row of every equipment and meter, and the rest of the truth, as written', async () => {
    const truth = simulatedTruth()
    expect(truth.equipment.length).toBeGreaterThan(10)
    expect(truth.equipment.some((e) => e.wh.some((wh) => wh > 0))).toBe(true)
    const path = join(dir, 'truth.json')
    await writeTruthFile(path, truth)
    const minutes =
      truth.equipment.reduce((n, e) => n + e.wh.length, 0) + truth.meters.reduce((n, m) => n + m.wh.length, 0)
    expect((await stat(truthMinutesFile(path))).size).toBe(8 * minutes)

    const read = await readTruthFile(path)
    expect(read.equipment.map((e) => [e.scope, e.totalWh, Array.from(e.wh)])).toEqual(
      truth.equipment.map((e) => [e.scope, e.totalWh, e.wh]),
    )
    expect(read.meters.map((m) => [m.device, Array.from(m.wh)])).toEqual(truth.meters.map((m) => [m.device, m.wh]))
    const { equipment: _e, meters: _m, ...rest } = truth
    const { equipment: _re, meters: _rm, ...readRest } = read as typeof read & { minutes?: unknown }
    expect(readRest).toEqual(rest)
  })

  it('reads a truth written as one JSON (caches made before the binary part) as it is', async () => {
    const truth = simulatedTruth()
    const path = join(dir, 'truth.json')
    await writeFile(path, `${JSON.stringify(truth)}\n`)
    expect(await readTruthFile(path)).toEqual(truth)
  })

  it('refuses a binary part that does not hold the rows the JSON names', async () => {
    const truth = simulatedTruth()
    const path = join(dir, 'truth.json')
    await writeTruthFile(path, truth)
    await writeFile(truthMinutesFile(path), Buffer.alloc(16))
    await expect(readTruthFile(path)).rejects.toThrow(/the truth's rows need/)
  })
})
