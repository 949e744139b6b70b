// Alert lifecycle, ids, flapping marks, and the event log's seq / since / gap (CONTRACT.md §5).

import type { Alert } from '@plantwatt/contract'
import { describe, expect, it } from 'vitest'
import { AlertBook, alertId, EventLog } from '../src/index.ts'

const book = () => new AlertBook(new EventLog<Alert>(100), 600)
const raise = (b: AlertBook, scope = 's/a/l/e', sinceS = 1000, atS = 1300) =>
  b.raise({ kind: 'idle', scope, sinceS, atS, severity: 'warning', message: 'idle', data: { powerW: 5 } })

describe('alert lifecycle', () => {
  it('raised → acked → cleared keeps one id; ack rules give error results, never throws', () => {
    const b = book()
    const raised = raise(b)!
    expect(raised).toMatchObject({ state: 'raised', since: 1_000_000, at: 1_300_000, data: { powerW: 5 } })
    const acked = b.ack(raised.id, 1_400_000, 'ann')
    expect(acked).toMatchObject({ ok: true, alert: { id: raised.id, state: 'acked', at: 1_400_000 } })
    expect(b.ack(raised.id, 1_401_000)).toMatchObject({ ok: false, code: 'already_acked' })
    expect(b.open()).toHaveLength(1)
    const cleared = b.clear('idle', 's/a/l/e', undefined, 1500, { durationS: 500 })!
    expect(cleared).toMatchObject({
      id: raised.id,
      state: 'cleared',
      at: 1_500_000,
      data: { powerW: 5, durationS: 500, ackedBy: 'ann' },
    })
    expect(b.ack(raised.id, 1_600_000)).toMatchObject({ ok: false, code: 'already_cleared' })
    expect(b.ack('nope', 1_600_000)).toMatchObject({ ok: false, code: 'not_found' })
    expect(b.open()).toEqual([])
    expect(b.take().map((e) => [e.seq, e.event.state])).toEqual([
      [1, 'raised'],
      [2, 'acked'],
      [3, 'cleared'],
    ])
  })

  it('one open alert per (scope, kind, key)', () => {
    const b = book()
    expect(raise(b)).toBeDefined()
    expect(raise(b, 's/a/l/e', 2000, 2300)).toBeUndefined()
    expect(raise(b, 's/a/l/f')).toBeDefined()
    const offline = (key: string) =>
      b.raise({
        kind: 'offline',
        scope: 's/a/l/e',
        key,
        sinceS: 1,
        atS: 901,
        severity: 'warning',
        message: '',
        data: {},
      })
    expect(offline('d1')).toBeDefined()
    expect(offline('d2')).toBeDefined()
    expect(offline('d1')).toBeUndefined()
    expect(b.open('s/a/l/e').map((a) => a.kind)).toEqual(['offline', 'offline', 'idle'])
  })

  it('ids are deterministic: kind, scope, key and since', () => {
    expect(raise(book())!.id).toBe(raise(book())!.id)
    expect(raise(book(), 's/a/l/e', 1001)!.id).not.toBe(raise(book())!.id)
    expect(alertId('idle', 'x', '', 1)).toMatch(/^idle-[0-9a-f]{16}$/)
    // FNV-1a 64 against a BigInt reference.
    const text = 'idle|s/a/l/e||1000000'
    let h = 0xcbf29ce484222325n
    for (const c of text) h = ((h ^ BigInt(c.charCodeAt(0))) * 0x100000001b3n) & 0xffffffffffffffffn
    expect(alertId('idle', 's/a/l/e', '', 1_000_000)).toBe(`idle-${h.toString(16).padStart(16, '0')}`)
  })

  it('a re-raise soon after a clear is marked flapping, never dropped', () => {
    const b = book()
    const first = raise(b)!
    b.clear('idle', 's/a/l/e', undefined, 1400, {})
    const second = raise(b, 's/a/l/e', 1500, 1800)!
    expect(second.data).toMatchObject({ flapping: true, previousId: first.id })
    b.clear('idle', 's/a/l/e', undefined, 1900, {})
    const third = raise(b, 's/a/l/e', 9000, 9300)!
    expect(third.data.flapping).toBeUndefined()
  })
})

describe('event log', () => {
  const ev = (scope: string, n: number) => ({ scope, n })

  it('numbers events from 1 across scopes; since(N, scope) replays with holes where other scopes were', () => {
    const log = new EventLog<{ scope: string; n: number }>(10)
    for (let i = 1; i <= 6; i++) log.append(ev(i % 2 ? 'a/x' : 'b', i))
    expect(log.lastSeq).toBe(6)
    const r = log.since(2, 'a')
    expect(r.gap).toBeUndefined()
    expect(r.events.map((e) => e.seq)).toEqual([3, 5])
    expect(log.since(0).events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6])
    expect(log.since(6).events).toEqual([])
  })

  it('reports the discarded range as a gap', () => {
    const log = new EventLog<{ scope: string; n: number }>(5)
    for (let i = 1; i <= 12; i++) log.append(ev('a', i))
    expect(log.since(0)).toMatchObject({ gap: { from: 1, to: 7 } })
    expect(log.since(0).events.map((e) => e.seq)).toEqual([8, 9, 10, 11, 12])
    expect(log.since(7).gap).toBeUndefined()
    expect(log.since(3).gap).toEqual({ from: 4, to: 7 })
  })

  it('survives its JSON form, also into a larger ring', () => {
    const log = new EventLog<{ scope: string; n: number }>(5)
    for (let i = 1; i <= 12; i++) log.append(ev('a', i))
    const json = JSON.parse(JSON.stringify(log))
    const back = EventLog.fromJSON<{ scope: string; n: number }>(json)
    expect(back.since(0)).toEqual(log.since(0))
    const bigger = EventLog.fromJSON<{ scope: string; n: number }>(json, 100)
    expect(bigger.since(0)).toEqual(log.since(0))
    expect(bigger.append(ev('a', 13)).seq).toBe(13)
    expect(bigger.since(0).events.length).toBe(6)
    const smaller = EventLog.fromJSON<{ scope: string; n: number }>(json, 3)
    expect(smaller.since(0)).toMatchObject({ gap: { from: 1, to: 9 } })
  })

  it('holds 10,000 events per channel by default', () => {
    const log = new EventLog<{ scope: string; n: number }>()
    for (let i = 1; i <= 10_500; i++) log.append(ev('a', i))
    expect(log.since(0).events.length).toBe(10_000)
  })
})
