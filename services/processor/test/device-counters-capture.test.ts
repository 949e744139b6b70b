import { deserialize, serialize } from 'node:v8'
import { deviceTopic } from '@plantwatt/contract'
import { decodeDeviceCounters, deviceCountersIndex, ReadingPipeline } from '@plantwatt/pipeline'
import { PlantIndex } from '@plantwatt/plant'
import { describe, expect, it } from 'vitest'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { simulatedUplinks } from './support/simulated-uplinks.ts'

// Issue 13 (ckpt4): the per-device counters of a checkpoint are encoded over several turns, a
// device copied just before a message from it (or forgetting its names) changes them, devices first
// seen meanwhile left out: the chunks are the counters as they were at the snapshot, whatever
// arrives between the turns, and the live counters go on as without the capture.

const model = generatePlant({ devices: 30, seed: 5 })
const plant = new PlantIndex(model)
const START_S = Date.UTC(2025, 2, 3, 8, 0) / 1000

describe('device counters captured over several turns', () => {
  it('are the counters at the snapshot, with messages, new devices and forgotten names between the turns', () => {
    const messages = simulatedUplinks(model, { seed: 7, startS: START_S, endS: START_S + 20 * 60 })
    // One device is first seen during the capture: none of its messages before.
    const late = messages.at(-1)!.deviceId
    const before = messages.slice(0, messages.length / 2).filter((m) => m.deviceId !== late)
    const during = messages.slice(messages.length / 2)
    const live = new ReadingPipeline(plant)
    const twin = new ReadingPipeline(plant)
    const feed = (list: typeof messages) => {
      for (const m of list) {
        for (const p of [live, twin]) p.ingest(deviceTopic(m.site, m.deviceId, 'up'), m.payload, m.sendAtS * 1000)
      }
    }
    feed(before)
    const expected = deserialize(serialize([...live.devices]))
    expect(expected.some(([id]: [string]) => id === late)).toBe(false)
    const snapshot = live.snapshotSliced()
    expect(snapshot.state.devices).toBeNull()
    expect(() => live.snapshotSliced()).toThrow(/already/)
    snapshot.readings.close()
    snapshot.capture.close()
    // One device per turn; between turns a batch of messages, and once a device's names forgotten.
    const batch = Math.ceil(during.length / 20)
    let turns = 0
    let done = false
    while (!done) {
      done = snapshot.devices.slice(() => false)
      feed(during.slice(turns * batch, (turns + 1) * batch))
      if (turns === 3) for (const p of [live, twin]) p.forgetNames(expected.at(-1)[0])
      turns++
    }
    expect(turns).toBeGreaterThan(10)
    const { chunks } = snapshot.devices
    const decoded = decodeDeviceCounters(deviceCountersIndex(chunks), (k) => chunks[k])
    expect(decoded).toEqual(expected)
    // The capture changed nothing in the live counters.
    feed(during.slice(turns * batch))
    expect([...live.devices]).toEqual([...twin.devices])
    expect(live.devices.has(late)).toBe(true)
  })
})
