import { describe, expect, it } from 'vitest'
import { encodeLine, escapeKey, escapeMeasurement, quoteString } from '../src/line-protocol.ts'
import { alertPoint, bucketPoint, scopeTags } from '../src/points.ts'

describe('line protocol escaping', () => {
  it('escapes measurement commas and spaces (not =)', () => {
    expect(escapeMeasurement('a,b c=d')).toBe('a\\,b\\ c=d')
  })

  it('escapes commas, equals signs and spaces in keys and tag values', () => {
    expect(escapeKey('a,b=c d')).toBe('a\\,b\\=c\\ d')
  })

  it('escapes backslashes, so a trailing backslash cannot swallow the next delimiter', () => {
    expect(escapeKey('ends\\')).toBe('ends\\\\')
    const line = encodeLine({ measurement: 'm', tags: { a: 'x\\', b: 'y' }, fields: { v: 1 }, timeMs: 5 })
    expect(line).toBe('m,a=x\\\\,b=y v=1 5')
  })

  it('quotes string fields, escaping quotes and backslashes only', () => {
    expect(quoteString('say "hi", a=b \\o/')).toBe('"say \\"hi\\", a=b \\\\o/"')
  })

  it('writes sorted tags, float fields and integer ms', () => {
    const line = encodeLine({
      measurement: 'bucket',
      tags: { step: '1m', site: 'yibin', area: 'electrode' },
      fields: { energyWh: 1.5, peakW: 2000, tiny: 1e-7, big: 1e21, neg: -3 },
      timeMs: 1732249800000.7,
    })
    expect(line).toBe(
      'bucket,area=electrode,site=yibin,step=1m energyWh=1.5,peakW=2000,tiny=1e-7,big=1e+21,neg=-3 1732249800000',
    )
  })

  it('keeps unicode as is', () => {
    expect(encodeLine({ measurement: 'm', tags: { site: '宜宾 cell' }, fields: { v: 1 }, timeMs: 1 })).toBe(
      'm,site=宜宾\\ cell v=1 1',
    )
  })

  it('omits empty tag values', () => {
    expect(encodeLine({ measurement: 'm', tags: { a: '', b: 'x' }, fields: { v: 1 }, timeMs: 1 })).toBe('m,b=x v=1 1')
  })

  it('refuses what line protocol cannot carry, with a reason, never throwing', () => {
    const ok = { measurement: 'm', tags: {}, fields: { v: 1 }, timeMs: 1 }
    expect(encodeLine({ ...ok, fields: { v: Number.NaN } })).toBe('non_finite')
    expect(encodeLine({ ...ok, fields: { a: 1, v: Number.NEGATIVE_INFINITY } })).toBe('non_finite')
    expect(encodeLine({ ...ok, fields: {} })).toBe('no_fields')
    expect(encodeLine({ ...ok, measurement: '' })).toBe('invalid_name')
    expect(encodeLine({ ...ok, measurement: '#comment' })).toBe('invalid_name')
    expect(encodeLine({ ...ok, measurement: 'a\nb' })).toBe('invalid_name')
    expect(encodeLine({ ...ok, tags: { _measurement: 'x' } })).toBe('invalid_name')
    expect(encodeLine({ ...ok, tags: { a: 'x\r\ny' } })).toBe('invalid_name')
    expect(encodeLine({ ...ok, fields: { v: 'two\nlines' } })).toBe('invalid_value')
    expect(encodeLine({ ...ok, fields: { v: true as unknown as number } })).toBe('invalid_value')
    expect(encodeLine({ ...ok, timeMs: Number.POSITIVE_INFINITY })).toBe('invalid_time')
    expect(encodeLine({ ...ok, timeMs: '1' as unknown as number })).toBe('invalid_time')
  })
})

describe('points from the processor', () => {
  const bucket = {
    scope: 'yibin/electrode/coating-1/coater-1-oven',
    step: '15m' as const,
    t: 1732249800000,
    energyWh: 372550,
    co2G: 175100,
    co2MarketG: 138300,
    idleWh: 9100,
    peakW: 1530000,
    revision: 0,
  }

  it('turns a scope path into site/area/line/equipment tags', () => {
    expect(scopeTags('yibin')).toEqual({ site: 'yibin' })
    expect(scopeTags('yibin/electrode/coating-1/coater-1-oven')).toEqual({
      site: 'yibin',
      area: 'electrode',
      line: 'coating-1',
      equipment: 'coater-1-oven',
    })
  })

  it('puts a bucket revision in a field, so a revision lands on the same series and time', () => {
    const first = encodeLine(bucketPoint(bucket)) as string
    const revised = encodeLine(bucketPoint({ ...bucket, energyWh: 380000, revision: 1 })) as string
    expect(first).toBe(
      'bucket,area=electrode,equipment=coater-1-oven,line=coating-1,site=yibin,step=15m energyWh=372550,co2G=175100,co2MarketG=138300,idleWh=9100,peakW=1530000,revision=0 1732249800000',
    )
    const key = (line: string) => `${line.split(' ')[0]} ${line.split(' ')[2]}`
    expect(key(revised)).toBe(key(first))
    expect(revised).toContain('revision=1')
  })

  it('writes the optional bucket fields of CONTRACT.md §5 where a bucket has them, and only then', () => {
    const full = bucketPoint({
      ...bucket,
      outputUnits: 120,
      idleCo2G: 4300,
      pvWh: 91000,
      savedWh: 2100,
      savedCo2G: 990,
    })
    expect(full.fields).toMatchObject({ outputUnits: 120, idleCo2G: 4300, pvWh: 91000, savedWh: 2100, savedCo2G: 990 })
    expect(Object.keys(bucketPoint(bucket).fields).sort()).toEqual(
      ['co2G', 'co2MarketG', 'energyWh', 'idleWh', 'peakW', 'revision'].sort(),
    )
  })

  it('turns an alert event into a point at its event time with numeric data as fields', () => {
    const point = alertPoint({
      id: 'a-17',
      kind: 'idle',
      state: 'cleared',
      severity: 'warning',
      scope: 'yibin/electrode/coating-1/coater-1-oven',
      at: 1732250000000,
      since: 1732249000000,
      message: 'Coater oven idle\nfor 16 min',
      data: { durationS: 1000, wastedWh: 41000, wastedCo2G: 20000, note: 'text is not a figure' },
      seq: 121,
    })
    expect(encodeLine(point)).toBe(
      'alert,area=electrode,equipment=coater-1-oven,id=a-17,kind=idle,line=coating-1,severity=warning,site=yibin,state=cleared seq=121,since=1732249000000,message="Coater oven idle for 16 min",durationS=1000,wastedWh=41000,wastedCo2G=20000 1732250000000',
    )
  })
})
