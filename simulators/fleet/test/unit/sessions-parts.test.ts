import { decodeSenml } from '@plantwatt/contract'
import { describe, expect, it } from 'vitest'
import { generatePlant } from '../../src/plant-generator.ts'
import { DueQueue } from '../../src/sessions/due-queue.ts'
import {
  addEncodedLatency,
  addStats,
  createLatencyHistogram,
  emptyStats,
  encodeLatency,
  fleetDevicesOf,
  fourRecordPack,
  recordMs,
  summarizeLatency,
} from '../../src/sessions/index.ts'

// The pure parts of the session engine: its reconnect queue, the stats and latency histograms
// the worker processes add up, and the load-test pack.

describe('DueQueue', () => {
  it('hands out items in due order, and only once due', () => {
    const queue = new DueQueue()
    const dues = [50, 10, 40, 10, 30, 20, 60, 0]
    for (const [item, due] of dues.entries()) queue.push(due, item)
    expect(queue.popDue(-1)).toBeUndefined()
    const popped: number[] = []
    for (let item = queue.popDue(35); item !== undefined; item = queue.popDue(35)) popped.push(dues[item]!)
    expect(popped).toEqual([0, 10, 10, 20, 30])
    expect(queue.size).toBe(3)
    expect([queue.popDue(100), queue.popDue(100), queue.popDue(100)].map((item) => dues[item!])).toEqual([40, 50, 60])
    expect(queue.popDue(100)).toBeUndefined()
  })

  it('stays ordered under many pseudo-random pushes', () => {
    const queue = new DueQueue()
    const dueOf: number[] = []
    for (let i = 0; i < 1000; i++) {
      dueOf.push((i * 7919) % 10_007)
      queue.push(dueOf[i]!, i)
    }
    let last = -1
    let count = 0
    for (let item = queue.popDue(10_007); item !== undefined; item = queue.popDue(10_007)) {
      expect(dueOf[item]!).toBeGreaterThanOrEqual(last)
      last = dueOf[item]!
      count++
    }
    expect(count).toBe(1000)
  })
})

describe('fleet stats across processes', () => {
  it('sums counters and keeps the earliest first connect and the latest CONNACK', () => {
    const a = emptyStats(3)
    a.connected = 3
    a.published = 10
    a.refused['4'] = 2
    a.errors.ECONNRESET = 1
    a.skipped.notConnected = 4
    a.firstConnectAt = 2000
    a.lastConnackAt = 2500
    const b = emptyStats(2)
    b.connected = 1
    b.published = 5
    b.refused['4'] = 1
    b.refused['5'] = 1
    b.skipped.notConnected = 1
    b.firstConnectAt = 1500
    b.lastConnackAt = 3000
    const sum = emptyStats()
    addStats(sum, a)
    addStats(sum, b)
    expect(sum).toMatchObject({
      sessions: 5,
      connected: 4,
      published: 15,
      refused: { '4': 3, '5': 1 },
      errors: { ECONNRESET: 1 },
      skipped: { notConnected: 5 },
      firstConnectAt: 1500,
      lastConnackAt: 3000,
    })
  })

  it('adds latency histograms exactly, through their IPC encoding', () => {
    const one = createLatencyHistogram()
    const two = createLatencyHistogram()
    for (let i = 1; i <= 99; i++) recordMs(one, 1)
    recordMs(two, 100)
    const merged = createLatencyHistogram()
    addEncodedLatency(merged, encodeLatency(one))
    addEncodedLatency(merged, encodeLatency(two))
    addEncodedLatency(merged, '')
    const summary = summarizeLatency(merged)
    expect(summary.count).toBe(100)
    expect(summary.p50Ms).toBeCloseTo(1, 2)
    expect(summary.p99Ms).toBeCloseTo(1, 2)
    expect(summary.maxMs).toBeCloseTo(100, 0)
    expect(summarizeLatency(createLatencyHistogram()).count).toBe(0)
  })
})

describe('load-test pack', () => {
  it('is a valid SenML pack of power, energy, output and one process variable, counters never falling', () => {
    const device = { id: '860100000000123', site: 'yibin' }
    const nowMs = 1_760_000_000_000
    let lastEnergy = -1
    for (let seq = 0; seq < 30; seq++) {
      const { readings, rejections } = decodeSenml(fourRecordPack(device, seq, nowMs + seq * 1000), {
        receivedAt: nowMs / 1000 + seq,
      })
      expect(rejections).toEqual([])
      expect(readings.map((reading) => reading.name)).toEqual(['power', 'energy', 'output', 'temperature'])
      expect(readings.every((reading) => reading.time === nowMs / 1000 + seq)).toBe(true)
      const energy = readings[1]!.value
      expect(energy).toBeGreaterThanOrEqual(lastEnergy)
      lastEnergy = energy
    }
  })

  it('lists every device of a generated plant once, with its site', () => {
    const devices = fleetDevicesOf(generatePlant({ devices: 250 }))
    expect(devices).toHaveLength(250)
    expect(new Set(devices.map((device) => device.id)).size).toBe(250)
    expect(devices.every((device) => device.site === 'yibin')).toBe(true)
  })
})
