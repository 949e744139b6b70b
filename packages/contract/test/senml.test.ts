import { encode as cborEncodeTagged, Encoder } from 'cbor-x'
import { describe, expect, it } from 'vitest'
import {
  type DecodeOptions,
  decodeSenml,
  encodeSenmlCbor,
  encodeSenmlJson,
  KNOWN_MEASUREMENTS,
  type Reading,
  type SenmlRecord,
} from '../src/senml.ts'

// Wall clock at receipt used throughout (2024-11-22, the contract's example time).
const NOW = 1_732_250_000
const OPTS: DecodeOptions = { receivedAt: NOW }
const BN = 'urn:dev:imei:860100000000123:'

const json = (text: string): Uint8Array => new TextEncoder().encode(text)
const decodeJson = (pack: unknown, options: DecodeOptions = OPTS) => decodeSenml(json(JSON.stringify(pack)), options)
const hex = (text: string): Buffer => Buffer.from(text.replace(/[^0-9a-f]/gi, ''), 'hex')

// Integer-keyed CBOR maps without tag 259, the way a SenML CBOR device writes them (RFC 8428 §6).
const rawCbor = new Encoder({
  useRecords: false,
  mapsAsObjects: false,
  variableMapSize: true,
  useTag259ForMaps: false,
} as ConstructorParameters<typeof Encoder>[0])
const cborOf = (records: [number | string, unknown][][]): Buffer => rawCbor.encode(records.map((r) => new Map(r)))

function reading(name: string, time: number, value: number, unit: string | undefined, field: 'v' | 's' = 'v'): Reading {
  return { name, time, value, field, unit }
}

describe('RFC 8428 examples', () => {
  it('§5.1.1 single data point: name after the last colon, taken at receipt', () => {
    const out = decodeSenml(json('[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]'), OPTS)
    expect(out).toEqual({ readings: [reading('10e2073a01080063', NOW, 23.1, 'Cel')], rejections: [] })
  })

  it('§5.1.2 multiple data points "now" with a base name', () => {
    const out = decodeSenml(
      json('[{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},{"n":"current","u":"A","v":1.2}]'),
      OPTS,
    )
    expect(out.rejections).toEqual([])
    expect(out.readings).toEqual([reading('voltage', NOW, 120.1, 'V'), reading('current', NOW, 1.2, 'A')])
  })

  const example512 = `[
     {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,
      "bu":"A","bver":5,
      "n":"voltage","u":"V","v":120.1},
     {"n":"current","t":-5,"v":1.2},
     {"n":"current","t":-4,"v":1.3},
     {"n":"current","t":-3,"v":1.4},
     {"n":"current","t":-2,"v":1.5},
     {"n":"current","t":-1,"v":1.6},
     {"n":"current","v":1.7}
   ]`
  const bt512 = 1.276020076001e9
  const expected512 = [
    reading('voltage', bt512, 120.1, 'V'),
    reading('current', bt512 - 5, 1.2, 'A'),
    reading('current', bt512 - 4, 1.3, 'A'),
    reading('current', bt512 - 3, 1.4, 'A'),
    reading('current', bt512 - 2, 1.5, 'A'),
    reading('current', bt512 - 1, 1.6, 'A'),
    reading('current', bt512, 1.7, 'A'),
  ]

  it('§5.1.2 base time, base unit and version apply to the following records', () => {
    expect(decodeSenml(json(example512), OPTS)).toEqual({ readings: expected512, rejections: [] })
  })

  it('§6 CBOR dump of the §5.1.2 example (integer labels, half-float) gives the same readings', () => {
    const dump = hex(`
      87 a7 21 78 1b 75 72 6e 3a 64 65 76 3a 6f 77 3a
      31 30 65 32 30 37 33 61 30 31 30 38 30 30 36 3a
      22 fb 41 d3 03 a1 5b 00 10 62 23 61 41 20 05 00
      67 76 6f 6c 74 61 67 65 01 61 56 02 fb 40 5e 06
      66 66 66 66 66 a3 00 67 63 75 72 72 65 6e 74 06
      24 02 fb 3f f3 33 33 33 33 33 33 a3 00 67 63 75
      72 72 65 6e 74 06 23 02 fb 3f f4 cc cc cc cc cc
      cd a3 00 67 63 75 72 72 65 6e 74 06 22 02 fb 3f
      f6 66 66 66 66 66 66 a3 00 67 63 75 72 72 65 6e
      74 06 21 02 f9 3e 00 a3 00 67 63 75 72 72 65 6e
      74 06 20 02 fb 3f f9 99 99 99 99 99 9a a3 00 67
      63 75 72 72 65 6e 74 06 00 02 fb 3f fb 33 33 33
      33 33 33`)
    expect(dump.length).toBe(0xc3)
    expect(decodeSenml(dump, OPTS)).toEqual({ readings: expected512, rejections: [] })
  })

  const example513 = `[
     {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
      "bu":"%RH","v":20},
     {"u":"lon","v":24.30621},
     {"u":"lat","v":60.07965},
     {"t":60,"v":20.3},
     {"u":"lon","t":60,"v":24.30622},
     {"u":"lat","t":60,"v":60.07965},
     {"t":120,"v":20.7},
     {"u":"lon","t":120,"v":24.30623},
     {"u":"lat","t":120,"v":60.07966},
     {"u":"%EL","t":150,"v":98},
     {"t":180,"v":21.2},
     {"u":"lon","t":180,"v":24.30628},
     {"u":"lat","t":180,"v":60.07967}
   ]`
  const bt513 = 1.320067464e9
  const expected513 = [
    reading('10e2073a01080063', bt513, 20, '%RH'),
    reading('10e2073a01080063', bt513, 24.30621, 'lon'),
    reading('10e2073a01080063', bt513, 60.07965, 'lat'),
    reading('10e2073a01080063', bt513 + 60, 20.3, '%RH'),
    reading('10e2073a01080063', bt513 + 60, 24.30622, 'lon'),
    reading('10e2073a01080063', bt513 + 60, 60.07965, 'lat'),
    reading('10e2073a01080063', bt513 + 120, 20.7, '%RH'),
    reading('10e2073a01080063', bt513 + 120, 24.30623, 'lon'),
    reading('10e2073a01080063', bt513 + 120, 60.07966, 'lat'),
    reading('10e2073a01080063', bt513 + 150, 98, '%EL'),
    reading('10e2073a01080063', bt513 + 180, 21.2, '%RH'),
    reading('10e2073a01080063', bt513 + 180, 24.30628, 'lon'),
    reading('10e2073a01080063', bt513 + 180, 60.07967, 'lat'),
  ]

  it('§5.1.3 multiple measurements: times relative to the base time, name from bn alone', () => {
    expect(decodeSenml(json(example513), OPTS)).toEqual({ readings: expected513, rejections: [] })
  })

  it('§5.1.4 the resolved form of §5.1.3 decodes to the same readings', () => {
    const resolved = JSON.parse(example513) as SenmlRecord[]
    let bu = ''
    const records = resolved.map((r) => {
      bu = r.bu ?? bu
      return { n: 'urn:dev:ow:10e2073a01080063', u: r.u ?? bu, t: bt513 + (r.t ?? 0), v: r.v }
    })
    expect(records[9]).toEqual({ n: 'urn:dev:ow:10e2073a01080063', u: '%EL', t: 1.320067614e9, v: 98 })
    expect(decodeJson(records)).toEqual({ readings: expected513, rejections: [] })
  })

  it('§5.1.3 without a base time: the same times are relative to receipt', () => {
    const pack = (JSON.parse(example513) as SenmlRecord[]).map(({ bt: _bt, ...rest }) => rest)
    const out = decodeJson(pack)
    expect(out.rejections).toEqual([])
    expect(out.readings.map((r) => r.time - NOW)).toEqual([0, 0, 0, 60, 60, 60, 120, 120, 120, 150, 180, 180, 180])
  })

  it('§5.1.6 collection of resources: base names ending in "/" and a later bn override', () => {
    const out = decodeSenml(
      json(`[
        {"bn":"2001:db8::2/","bt":1.320078429e+09,"n":"temperature","u":"Cel","v":25.2},
        {"n":"humidity","u":"%RH","v":30},
        {"bn":"2001:db8::1/","n":"temperature","u":"Cel","v":12.3},
        {"n":"humidity","u":"%RH","v":67}
      ]`),
      OPTS,
    )
    const t = 1.320078429e9
    expect(out).toEqual({
      readings: [
        reading('temperature', t, 25.2, 'Cel'),
        reading('humidity', t, 30, '%RH'),
        reading('temperature', t, 12.3, 'Cel'),
        reading('humidity', t, 67, '%RH'),
      ],
      rejections: [],
    })
  })

  it('§5.1.5 multiple data types: only the numeric record is kept, the others are rejected', () => {
    const out = decodeSenml(
      json(`[
        {"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},
        {"n":"label","vs":"Machine Room"},
        {"n":"open","vb":false},
        {"n":"nfv-reader","vd":"aGkgCg"}
      ]`),
      OPTS,
    )
    expect(out.readings).toEqual([reading('temp', NOW, 23.1, 'Cel')])
    expect(out.rejections).toEqual(
      [1, 2, 3].map((index) => ({ index, reason: 'malformed', detail: expect.any(String) })),
    )
    for (const r of out.rejections) expect(r.detail).toMatch(/only numeric values/)
  })

  it('base value and base sum are added to v and s (RFC 8428 §4.5.4, adapted to the known measurements)', () => {
    const out = decodeJson([
      { bn: BN, bt: NOW - 120, bu: 'Wh', bs: 1_000_000, n: 'energy', s: 0 },
      { n: 'energy', t: 60, s: 12.5 },
      { n: 'energy', t: 120, s: 30 },
      { bv: 40_000, n: 'power', u: 'W', v: 1500 },
      { n: 'power', u: 'W', t: 60, v: -250 },
      { n: 'output', u: 'count', s: 7 },
    ])
    expect(out.rejections).toEqual([])
    expect(out.readings).toEqual([
      reading('energy', NOW - 120, 1_000_000, 'Wh', 's'),
      reading('energy', NOW - 60, 1_000_012.5, 'Wh', 's'),
      reading('energy', NOW, 1_000_030, 'Wh', 's'),
      reading('power', NOW - 120, 41_500, 'W'),
      reading('power', NOW - 60, 39_750, 'W'),
      // bs is a base sum, so it offsets every later sum, whatever its measurement.
      reading('output', NOW - 120, 1_000_007, 'count', 's'),
    ])
    // A base unit applies to records without their own unit, and is checked against the table there.
    expect(decodeJson([{ bu: 'Wh', n: 'output', s: 7 }]).rejections).toEqual([
      { index: 0, reason: 'unit_mismatch', detail: 'output must be in count, got "Wh"' },
    ])
  })
})

describe('JSON and CBOR give identical readings', () => {
  const pack: SenmlRecord[] = [
    { bn: BN, bt: NOW - 600.25, bu: 'W', bver: 10, n: 'power', v: 153_200.5 },
    { n: 'power', t: 60, v: 151_000 },
    { n: 'energy', u: 'Wh', t: 60, s: 8_123_000.125 },
    { n: 'output', u: 'count', t: 60, s: 4711 },
    { n: 'solvent_ppm', u: 'ppm', t: 60, v: 312.7 },
    { bs: 10, n: 'energy', u: 'Wh', t: 120, s: -3, ut: 600 },
    { n: 'fan_hz', u: 'Hz', t: -2.5e8, v: 42 },
  ]

  it('round-trips through both encoders', () => {
    const fromJson = decodeSenml(encodeSenmlJson(pack), OPTS)
    const fromCbor = decodeSenml(encodeSenmlCbor(pack), OPTS)
    expect(fromJson.rejections).toEqual([])
    expect(fromJson.readings).toHaveLength(pack.length)
    expect(fromCbor).toEqual(fromJson)
    expect(fromJson.readings[5]).toEqual(reading('energy', NOW - 480.25, 7, 'Wh', 's'))
  })

  it('encodes JSON starting with "[" and CBOR with the integer labels of Table 4', () => {
    const jsonBytes = encodeSenmlJson(pack)
    expect(jsonBytes[0]).toBe(0x5b)
    expect(JSON.parse(jsonBytes.toString('utf8'))).toEqual(pack)

    const cbor = encodeSenmlCbor([{ bn: 'a:', bs: 1, n: 'energy', s: 2 }])
    expect(cbor[0]).not.toBe(0x5b)
    // [ {-2: "a:", -6: 1, 0: "energy", 5: 2} ] with a bare map (no tag 259) and a short header.
    expect(cbor.toString('hex')).toBe('81a4' + '21' + '62613a' + '2501' + '00' + '66656e65726779' + '0502')
    expect(cbor.includes(Buffer.from('bn'))).toBe(false)
  })

  it('decodes a hand-built CBOR pack with integer labels', () => {
    const bytes = cborOf([
      [
        [-2, BN],
        [-3, NOW],
        [-4, 'W'],
        [0, 'power'],
        [2, 1200],
      ],
      [
        [0, 'energy'],
        [1, 'Wh'],
        [5, 5000.5],
        [6, -30],
      ],
      [
        [0, 'fan_hz'],
        [2, 44],
        [7, 300],
      ],
    ])
    expect(decodeSenml(bytes, OPTS)).toEqual({
      readings: [
        reading('power', NOW, 1200, 'W'),
        reading('energy', NOW - 30, 5000.5, 'Wh', 's'),
        reading('fan_hz', NOW, 44, 'W'),
      ],
      rejections: [],
    })
  })

  it('accepts string labels in CBOR and tag-259 maps', () => {
    const stringLabels = rawCbor.encode([{ bn: BN, n: 'power', u: 'W', v: 5, t: -1 }])
    expect(decodeSenml(stringLabels, OPTS).readings).toEqual([reading('power', NOW - 1, 5, 'W')])
    const tagged = cborEncodeTagged([
      new Map<number, unknown>([
        [0, 'power'],
        [2, 6],
      ]),
    ])
    expect(tagged.subarray(1, 4).toString('hex')).toBe('d90103')
    expect(decodeSenml(tagged, OPTS).readings).toEqual([reading('power', NOW, 6, undefined)])
  })

  it('accepts CBOR decimal fractions and 64-bit integers as numbers (RFC 8428 §6)', () => {
    // [{0: "x", 2: 4([-2, 1234]), 6: 1b 00000000 00000005}]
    const bytes = hex('81 a3 00 61 78 02 c4 82 21 19 04d2 06 1b 0000000000000005')
    expect(decodeSenml(bytes, OPTS)).toEqual({ readings: [reading('x', NOW + 5, 12.34, undefined)], rejections: [] })
  })

  it('decodes a plain Uint8Array as well as a Buffer', () => {
    const cbor = encodeSenmlCbor([{ n: 'power', v: 1 }])
    const jsonBytes = encodeSenmlJson([{ n: 'power', v: 1 }])
    expect(decodeSenml(new Uint8Array(cbor), OPTS).readings).toEqual([reading('power', NOW, 1, undefined)])
    expect(decodeSenml(new Uint8Array(jsonBytes), OPTS).readings).toEqual([reading('power', NOW, 1, undefined)])
  })
})

describe('time', () => {
  it('a record without any time was measured at receipt', () => {
    expect(decodeJson([{ n: 'power', v: 1 }]).readings[0]?.time).toBe(NOW)
  })

  it('resolved times below 2^28 are relative to receipt, from 2^28 on absolute (RFC 8428 §4.5.3)', () => {
    const out = decodeJson(
      [
        { n: 'a', t: 2 ** 28, v: 1 },
        { n: 'b', bt: 2 ** 28 - 10, t: 9, v: 1 },
        { n: 'c', bt: 2 ** 28 - 10, t: 10, v: 1 },
        { n: 'd', bt: 0, t: 1_500_000_000.5, v: 1 },
        { n: 'e', bt: 1_000_000_000, t: -999_999_000, v: 1 },
      ],
      { receivedAt: NOW, maxFutureS: 2 ** 28 },
    )
    expect(out.rejections).toEqual([])
    expect(out.readings.map((r) => [r.name, r.time])).toEqual([
      ['a', 2 ** 28],
      ['b', NOW + 2 ** 28 - 1],
      ['c', 2 ** 28],
      ['d', 1_500_000_000.5],
      ['e', NOW + 1000],
    ])
  })

  it('negative relative times are in the past, base time and time add up', () => {
    const out = decodeJson([
      { n: 'power', t: -30, v: 1 },
      { bt: -60, n: 'power', t: -5, v: 2 },
      { n: 'power', v: 3 },
      { n: 'power', t: -0.25, v: 4 },
    ])
    expect(out.readings.map((r) => r.time)).toEqual([NOW - 30, NOW - 65, NOW - 60, NOW - 60.25])
  })

  it('future: exactly maxFutureS ahead is accepted, beyond is rejected (default 300 s)', () => {
    const out = decodeJson([
      { n: 'power', t: 300, v: 1 },
      { n: 'power', t: 300.001, v: 2 },
      { n: 'power', t: NOW + 300, v: 3 },
      { n: 'power', t: NOW + 301, v: 4 },
    ])
    expect(out.readings.map((r) => r.value)).toEqual([1, 3])
    expect(out.rejections.map((r) => [r.index, r.reason])).toEqual([
      [1, 'future'],
      [3, 'future'],
    ])
    expect(out.rejections[0]?.detail).toBe('time is 300.001 s ahead of receipt')
    const custom = decodeJson(
      [
        { n: 'power', t: 10, v: 1 },
        { n: 'power', t: 11, v: 2 },
      ],
      { receivedAt: NOW, maxFutureS: 10 },
    )
    expect(custom.readings.map((r) => r.value)).toEqual([1])
    expect(custom.rejections).toEqual([{ index: 1, reason: 'future', detail: expect.any(String) }])
  })

  it('too_old: exactly notBefore is accepted, earlier is rejected; no limit by default', () => {
    const notBefore = NOW - 604_800
    const pack = [
      { n: 'energy', s: 1, t: notBefore },
      { n: 'energy', s: 2, t: notBefore - 0.001 },
      { n: 'energy', s: 3, t: -604_800 },
      { n: 'energy', s: 4, t: -604_801 },
    ]
    const out = decodeJson(pack, { receivedAt: NOW, notBefore })
    expect(out.readings.map((r) => r.value)).toEqual([1, 3])
    expect(out.rejections.map((r) => [r.index, r.reason])).toEqual([
      [1, 'too_old'],
      [3, 'too_old'],
    ])
    expect(decodeJson(pack).readings).toHaveLength(4)
    expect(decodeJson([{ n: 'energy', s: 1, t: 2 ** 28 }]).readings).toHaveLength(1)
  })

  it('non-finite times are rejected as non_finite', () => {
    const out = decodeSenml(
      json('[{"n":"power","v":1,"t":1e999},{"n":"power","v":2,"t":-1e999},{"bt":1e999},{"n":"power","v":3}]'),
      OPTS,
    )
    expect(out.readings).toEqual([])
    expect(out.rejections.map((r) => [r.index, r.reason])).toEqual([
      [0, 'non_finite'],
      [1, 'non_finite'],
      [3, 'non_finite'],
    ])
    const cbor = decodeSenml(encodeSenmlCbor([{ n: 'power', v: 1, t: Number.NaN }]), OPTS)
    expect(cbor.rejections).toEqual([{ index: 0, reason: 'non_finite', detail: expect.stringMatching(/time/) }])
  })
})

describe('whole-payload rejections', () => {
  const refused = { readings: [], rejections: [{ index: -1, reason: 'malformed', detail: expect.any(String) }] }

  it.each([
    ['an empty payload', new Uint8Array(0)],
    ['an empty JSON pack', json('[]')],
    ['an empty JSON pack with spaces', json('[ ]')],
    ['an empty CBOR pack', hex('80')],
    ['truncated JSON', json('[{"n":"power","v":1}')],
    ['JSON with trailing garbage', json('[{"n":"power","v":1}] x')],
    ['a JSON object (not a pack; "{" is not "[" so it is tried as CBOR)', json('{"n":"power","v":1}')],
    ['JSON with leading whitespace (the first byte decides)', json(' [{"n":"power","v":1}]')],
    ['invalid UTF-8 in JSON', new Uint8Array([0x5b, 0x22, 0xff, 0xfe, 0x22, 0x5d])],
    ['garbage bytes', new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x00, 0x13, 0x37])],
    ['a CBOR map instead of an array', encodeSenmlCbor([{ n: 'power', v: 1 }]).subarray(1)],
    ['a CBOR string', hex('65 68656c6c6f')],
    ['two CBOR items', Buffer.concat([encodeSenmlCbor([{ n: 'power', v: 1 }]), hex('01')])],
    ['a lone CBOR break code', hex('ff')],
  ])('refuses %s', (_what, payload) => {
    expect(decodeSenml(payload, OPTS)).toEqual(refused)
  })

  it('never throws on random bytes', () => {
    let seed = 12345
    const next = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return seed
    }
    let refusedCount = 0
    for (let round = 0; round < 2000; round++) {
      const bytes = new Uint8Array(1 + (next() % 64))
      for (let i = 0; i < bytes.length; i++) bytes[i] = next() & 0xff
      if (round % 2 === 0) bytes[0] = 0x5b
      const out = decodeSenml(bytes, OPTS)
      expect(out.readings.length + out.rejections.length).toBeGreaterThanOrEqual(0)
      if (out.rejections[0]?.index === -1) refusedCount++
    }
    expect(refusedCount).toBeGreaterThan(1000)
    // The shared module-level CBOR decoder is still sound after all those failures.
    expect(decodeSenml(encodeSenmlCbor([{ n: 'power', v: 1 }]), OPTS).readings).toEqual([
      reading('power', NOW, 1, undefined),
    ])
  })

  it('refuses the whole pack for a must-understand field (RFC 8428 §4.4) but ignores other unknown fields', () => {
    expect(
      decodeJson([
        { n: 'power', v: 1 },
        { n: 'power', v: 2, foo_: 1 },
      ]),
    ).toEqual({
      readings: [],
      rejections: [{ index: -1, reason: 'malformed', detail: expect.stringMatching(/foo_/) }],
    })
    expect(
      decodeSenml(
        cborOf([
          [
            [0, 'power'],
            [2, 1],
            ['bx_', 1],
          ],
        ]),
        OPTS,
      ).rejections[0]?.index,
    ).toBe(-1)
    expect(decodeJson([{ n: 'power', v: 1, extra: 'x', 9: 1 }]).readings).toEqual([reading('power', NOW, 1, undefined)])
  })

  it('refuses a pack with a SenML version above 10 (RFC 8428 §4.4), accepts 10 and below', () => {
    expect(decodeJson([{ bver: 11, n: 'power', v: 1 }])).toEqual(refused)
    expect(decodeJson([{ n: 'power', v: 1 }, { bver: 26 }]).rejections[0]?.index).toBe(-1)
    expect(decodeJson([{ bver: 10, n: 'power', v: 1 }]).readings).toHaveLength(1)
    expect(
      decodeJson([
        { bver: '10', n: 'power', v: 1 },
        { n: 'power', v: 2 },
      ]),
    ).toEqual({
      readings: [reading('power', NOW, 2, undefined)],
      rejections: [{ index: 0, reason: 'malformed', detail: expect.stringMatching(/bver/) }],
    })
  })
})

describe('record rejections', () => {
  it('rejects non-map records one by one', () => {
    const out = decodeSenml(json('[1, null, [], "x", true, {"n":"power","v":1}]'), OPTS)
    expect(out.readings).toEqual([reading('power', NOW, 1, undefined)])
    expect(out.rejections.map((r) => [r.index, r.reason])).toEqual([
      [0, 'malformed'],
      [1, 'malformed'],
      [2, 'malformed'],
      [3, 'malformed'],
      [4, 'malformed'],
    ])
  })

  it('rejects NaN and Infinity values as non_finite', () => {
    const fromJson = decodeSenml(
      json('[{"n":"power","v":1e999},{"n":"energy","s":-1e999},{"n":"x","bv":1e308,"v":1e308},{"n":"power","v":1}]'),
      OPTS,
    )
    expect(fromJson.rejections.map((r) => [r.index, r.reason])).toEqual([
      [0, 'non_finite'],
      [1, 'non_finite'],
      [2, 'non_finite'],
    ])
    // The bv of record 2 (finite) still applies to record 3.
    expect(fromJson.readings).toEqual([reading('power', NOW, 1e308 + 1, undefined)])
    const fromCbor = decodeSenml(
      encodeSenmlCbor([
        { n: 'power', v: Number.NaN },
        { n: 'power', v: Number.POSITIVE_INFINITY },
        { n: 'energy', s: Number.NEGATIVE_INFINITY },
        { n: 'power', v: 2 },
      ]),
      OPTS,
    )
    expect(fromCbor.readings).toEqual([reading('power', NOW, 2, undefined)])
    expect(fromCbor.rejections.map((r) => [r.index, r.reason])).toEqual([
      [0, 'non_finite'],
      [1, 'non_finite'],
      [2, 'non_finite'],
    ])
  })

  it('rejects strings, booleans, null and objects where numbers or strings belong', () => {
    const pack = [
      { n: 'power', v: '12' },
      { n: 'power', v: null },
      { n: 'power', v: true },
      { n: 'power', v: { x: 1 } },
      { n: 'energy', s: '5' },
      { n: 'power', v: 1, t: '5' },
      { n: 'power', v: 1, t: null },
      { n: 7, v: 1 },
      { n: 'power', u: 5, v: 1 },
      { n: 'power', v: 1, ut: 'soon' },
      { n: 'power', v: 1 },
    ]
    const out = decodeJson(pack)
    expect(out.readings).toEqual([reading('power', NOW, 1, undefined)])
    expect(out.rejections.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    for (const r of out.rejections) expect(r.reason).toBe('malformed')
    expect(out.rejections[0]?.detail).toMatch(/\bv\b.*number/)
    expect(out.rejections[5]?.detail).toMatch(/\bt\b.*number/)
  })

  it('a record with base fields only yields nothing and is not a rejection', () => {
    const out = decodeJson([{ bn: BN, bt: NOW - 10, bu: 'W' }, { n: 'power', v: 5 }, { bver: 10 }, {}])
    expect(out).toEqual({ readings: [reading('power', NOW - 10, 5, 'W')], rejections: [] })
  })

  it('a record with regular fields but no value is malformed', () => {
    const out = decodeJson([{ n: 'power' }, { bn: BN, t: -5 }, { n: 'power', u: 'W' }])
    expect(out.readings).toEqual([])
    expect(out.rejections.map((r) => [r.index, r.reason])).toEqual([
      [0, 'malformed'],
      [1, 'malformed'],
      [2, 'malformed'],
    ])
  })

  it('a wrong-typed base field rejects its record and every later record that depends on it', () => {
    const out = decodeJson([
      { bn: BN, bt: 'yesterday', n: 'power', v: 1 },
      { n: 'power', t: -10, v: 2 },
      { bt: NOW - 100, n: 'power', t: -10, v: 3 },
      { bn: 42, n: 'power', v: 4 },
      { n: 'power', v: 5 },
      { bn: BN, bu: ['W'], n: 'power', u: 'W', v: 6 },
      { n: 'power', u: 'W', v: 7 },
      { n: 'power', v: 8 },
      { bu: 'W', bv: 'x', n: 'energy', s: 9 },
      { n: 'power', v: 10 },
      { n: 'energy', s: 11 },
    ])
    expect(out.readings).toEqual([reading('power', NOW - 110, 3, undefined), reading('power', NOW - 100, 7, 'W')])
    expect(out.rejections.map((r) => [r.index, r.reason])).toEqual([
      [0, 'malformed'],
      [1, 'malformed'],
      [3, 'malformed'],
      [4, 'malformed'],
      [5, 'malformed'],
      [7, 'malformed'],
      [8, 'malformed'],
      [9, 'malformed'],
      [10, 'unit_mismatch'],
    ])
    expect(out.rejections[0]?.detail).toMatch(/bt/)
    expect(out.rejections[1]?.detail).toMatch(/base time of record 0/)
    expect(out.rejections[5]?.detail).toMatch(/base unit of record 5/)
    expect(out.rejections[7]?.detail).toMatch(/bv of record 8/)
  })

  it('keeps duplicate records (the processor dedups)', () => {
    const record = { bn: BN, bt: NOW - 60, n: 'power', u: 'W', v: 1000 }
    const out = decodeJson([record, record])
    expect(out.readings).toEqual([reading('power', NOW - 60, 1000, 'W'), reading('power', NOW - 60, 1000, 'W')])
  })

  it('rejects a unit that contradicts the table, per known measurement; absent units and other names are fine', () => {
    const out = decodeJson([
      { n: 'power', u: 'kW', v: 1 },
      { n: 'energy', u: 'kWh', s: 1 },
      { n: 'output', u: 'pcs', s: 1 },
      { bu: 'Wh', n: 'power', v: 1 },
      { n: 'energy', s: 2 },
      { n: 'power', u: 'W', v: 3 },
      { bu: undefined, n: 'output', u: 'count', s: 4 },
      { n: 'solvent_ppm', u: 'ppm', v: 5 },
      { n: 'dewpoint', u: 'Cel', v: 6 },
      { bn: 'x:', n: 'power', u: 'w', v: 7 },
      { n: 'power', u: '', bu: '', v: 8 },
    ])
    expect(out.rejections.map((r) => [r.index, r.reason])).toEqual([
      [0, 'unit_mismatch'],
      [1, 'unit_mismatch'],
      [2, 'unit_mismatch'],
      [3, 'unit_mismatch'],
      [9, 'unit_mismatch'],
    ])
    expect(out.rejections[0]?.detail).toMatch(/power must be in W, got "kW"/)
    expect(out.readings).toEqual([
      reading('energy', NOW, 2, 'Wh', 's'),
      reading('power', NOW, 3, 'W'),
      reading('output', NOW, 4, 'count', 's'),
      reading('solvent_ppm', NOW, 5, 'ppm'),
      reading('dewpoint', NOW, 6, 'Cel'),
      reading('power', NOW, 8, undefined),
    ])
    const noUnits = decodeJson([
      { n: 'power', v: 1 },
      { n: 'energy', s: 1 },
      { n: 'output', s: 1 },
    ])
    expect(noUnits.rejections).toEqual([])
    expect(noUnits.readings.map((r) => r.unit)).toEqual([undefined, undefined, undefined])
  })

  it('rejects a known measurement without its field (energy sent as v)', () => {
    const out = decodeJson([
      { n: 'energy', u: 'Wh', v: 100 },
      { n: 'output', v: 3 },
      { n: 'power', s: 3 },
      { n: 'solvent_ppm', s: 3 },
      { n: 'energy', v: 1, s: 100 },
      { n: 'power', v: 2, s: 100 },
    ])
    expect(out.rejections.map((r) => [r.index, r.reason])).toEqual([
      [0, 'malformed'],
      [1, 'malformed'],
      [2, 'malformed'],
      [3, 'malformed'],
    ])
    expect(out.rejections[0]?.detail).toMatch(/energy needs a numeric s field/)
    expect(out.readings).toEqual([reading('energy', NOW, 100, undefined, 's'), reading('power', NOW, 2, undefined)])
  })

  it('rejects vs/vb/vd-only records and records with more than one value field', () => {
    const out = decodeSenml(
      encodeSenmlCbor([
        { n: 'power', vs: '12' },
        { n: 'power', vb: true },
        { n: 'power', v: 1, vs: '1' },
        { n: 'energy', s: 5, vs: 'counter' },
      ]),
      OPTS,
    )
    expect(out.rejections).toEqual([
      { index: 0, reason: 'malformed', detail: 'only numeric values are supported' },
      { index: 1, reason: 'malformed', detail: 'only numeric values are supported' },
      { index: 2, reason: 'malformed', detail: expect.stringMatching(/more than one value/) },
    ])
    expect(out.readings).toEqual([reading('energy', NOW, 5, undefined, 's')])
    const vd = decodeSenml(
      cborOf([
        [
          [0, 'power'],
          [8, new Uint8Array([1, 2])],
        ],
      ]),
      OPTS,
    )
    expect(vd.rejections).toEqual([{ index: 0, reason: 'malformed', detail: 'only numeric values are supported' }])
  })

  it('keeps the good records of a mixed pack in order, with the indices of the bad ones', () => {
    const out = decodeJson([
      { bn: BN, bt: NOW - 300, n: 'power', u: 'W', v: 100 },
      { n: 'power', u: 'kW', v: 0.1 },
      { n: 'energy', u: 'Wh', t: 60, s: 10 },
      { n: 'power', v: 'lots' },
      { n: 'power', t: 1000, v: 300 },
      { n: 'power', t: 120, v: 200 },
      { n: 'bad name', v: 1 },
      { n: 'solvent_ppm', t: 120, v: 350 },
    ])
    expect(out.readings).toEqual([
      reading('power', NOW - 300, 100, 'W'),
      reading('energy', NOW - 240, 10, 'Wh', 's'),
      reading('power', NOW - 180, 200, undefined),
      reading('solvent_ppm', NOW - 180, 350, undefined),
    ])
    expect(out.rejections.map((r) => [r.index, r.reason])).toEqual([
      [1, 'unit_mismatch'],
      [3, 'malformed'],
      [4, 'future'],
      [6, 'malformed'],
    ])
  })

  it('decodes a pack of 20,000 records and keeps them all, in JSON and in CBOR', () => {
    const pack: SenmlRecord[] = [{ bn: BN, bt: NOW - 20_000, bu: 'W' }]
    for (let i = 0; i < 20_000; i++) pack.push({ n: i % 2 === 0 ? 'power' : 'fan_hz', t: i, v: i })
    for (const payload of [encodeSenmlJson(pack), encodeSenmlCbor(pack)]) {
      const out = decodeSenml(payload, OPTS)
      expect(out.rejections).toEqual([])
      expect(out.readings).toHaveLength(20_000)
      expect(out.readings[19_999]).toEqual(reading('fan_hz', NOW - 1, 19_999, 'W'))
      expect(out.readings.every((r, i) => r.value === i && r.time === NOW - 20_000 + i)).toBe(true)
    }
  })
})

describe('names', () => {
  it('uses the part after the last ":" or "/" of bn + n', () => {
    const out = decodeJson([
      { bn: BN, n: 'power', v: 1 },
      { bn: '', n: 'power', v: 2 },
      { bn: 'site/line-1/oven/', n: 'solvent_ppm', v: 3 },
      { bn: 'urn:dev:mac:0024befffe804ff1/', n: 'dewpoint', v: 4 },
      { bn: 'urn:dev:imei:', n: '860100000000123:fan_hz', v: 5 },
      { bn: 'a', n: 'b/c.d-e_f', v: 6 },
      { bn: 'urn:dev:imei:860100000000123:power', v: 7 },
      { bn: 'power', v: 8 },
    ])
    expect(out.rejections).toEqual([])
    expect(out.readings.map((r) => r.name)).toEqual([
      'power',
      'power',
      'solvent_ppm',
      'dewpoint',
      'fan_hz',
      'c.d-e_f',
      'power',
      'power',
    ])
  })

  it('rejects empty and invalid names (RFC 8428 §4.5.1)', () => {
    const pack = [
      { v: 1 },
      { n: '', v: 1 },
      { n: 'power meter', v: 1 },
      { n: '-power', v: 1 },
      { n: '_power', v: 1 },
      { n: 'énergie', v: 1 },
      { n: 'power;drop', v: 1 },
      { bn: 'urn:dev:imei:860100000000123:', v: 1 },
      { bn: 'site/', v: 1 },
      { bn: 'bad name:', n: 'power', v: 1 },
      { bn: '', n: ':power', v: 1 },
      { bn: '', n: 'power', v: 9 },
    ]
    const out = decodeJson(pack)
    expect(out.readings).toEqual([reading('power', NOW, 9, undefined)])
    expect(out.rejections.map((r) => [r.index, r.reason])).toEqual(
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => [i, 'malformed']),
    )
    expect(out.rejections[0]?.detail).toBe('record has no name')
    expect(out.rejections[2]?.detail).toMatch(/invalid SenML name/)
    expect(out.rejections[7]?.detail).toMatch(/nothing after/)
  })

  it('treats names that exist on Object.prototype as ordinary process variables', () => {
    const out = decodeJson([
      { n: 'constructor', u: 'x', v: 1 },
      { n: 'toString', v: 2 },
    ])
    expect(out.readings).toEqual([reading('constructor', NOW, 1, 'x'), reading('toString', NOW, 2, undefined)])
  })
})

describe('KNOWN_MEASUREMENTS', () => {
  it('is the table of CONTRACT.md §2 and cannot be changed', () => {
    expect(KNOWN_MEASUREMENTS).toEqual({
      power: { unit: 'W', field: 'v' },
      energy: { unit: 'Wh', field: 's' },
      output: { unit: 'count', field: 's' },
    })
    expect(Object.isFrozen(KNOWN_MEASUREMENTS)).toBe(true)
    expect(Object.isFrozen(KNOWN_MEASUREMENTS.power)).toBe(true)
  })
})
