import { describe, expect, it } from 'vitest'
import {
  decodeBucket,
  decodeDemand,
  encodeBucket,
  encodeDemand,
  encodeKey,
  minuteOfKey,
  revisionOf,
} from '../src/codec.ts'

describe('history store codec', () => {
  it('gives back every figure exactly, whole thousandths and arbitrary floats alike', () => {
    const awkward = [
      0,
      -0,
      0.1 + 0.2,
      1 / 3,
      12.345,
      -7.001,
      1e-300,
      9_007_199_254.740_99,
      1.7976931348623157e308,
      123456789012.5,
    ]
    for (const x of awkward) {
      const row = { t: 60_000, energyWh: x, co2G: x, co2MarketG: -x, idleWh: x, peakW: x, revision: 3 }
      const back = decodeBucket(60_000, encodeBucket(row))
      expect(Object.is(back.energyWh, x), `energyWh ${x}`).toBe(true)
      expect(Object.is(back.co2MarketG, -x), `co2MarketG ${-x}`).toBe(true)
      expect(back).toEqual(row)
    }
  })

  it('keeps the optional figures that were present, and only those', () => {
    const row = {
      t: 0,
      energyWh: 1,
      co2G: 2,
      co2MarketG: 3,
      idleWh: 4,
      peakW: 5,
      revision: 0,
      pvWh: 0.25,
      savedCo2G: 1 / 7,
    }
    const back = decodeBucket(0, encodeBucket(row))
    expect(back).toEqual(row)
    expect('outputUnits' in back).toBe(false)
  })

  it('stores whole-mWh energy and whole-watt peaks compactly', () => {
    const row = {
      t: 0,
      energyWh: 8_123.456,
      co2G: 3_960.5,
      co2MarketG: 3_120.25,
      idleWh: 0,
      peakW: 1_532_000,
      revision: 0,
    }
    expect(encodeBucket(row).length).toBeLessThanOrEqual(24)
  })

  it('reads the revision without decoding, up to 2^53', () => {
    const row = { t: 0, energyWh: 1, co2G: 1, co2MarketG: 1, idleWh: 1, peakW: 1, revision: Number.MAX_SAFE_INTEGER }
    expect(revisionOf(encodeBucket(row))).toBe(Number.MAX_SAFE_INTEGER)
    expect(decodeDemand(900_000, encodeDemand({ t: 900_000, kW: 1490.2, revision: 7 }))).toEqual({
      t: 900_000,
      kW: 1490.2,
      revision: 7,
    })
  })

  it('orders keys by scope, then kind, then time', () => {
    const keys = [
      encodeKey(2, '1m', 5),
      encodeKey(1, '15m', 0),
      encodeKey(1, '1m', 0xffff_ffff),
      encodeKey(1, '1m', 256),
    ]
    const sorted = [...keys].sort(Buffer.compare)
    expect(sorted).toEqual([keys[3], keys[2], keys[1], keys[0]])
    expect(minuteOfKey(encodeKey(1, '1m', 0xffff_ffff))).toBe(0xffff_ffff)
  })
})
