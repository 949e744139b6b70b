import type { LiveInterest } from '@plantwatt/bus'
import { describe, expect, it } from 'vitest'
import { InterestBook } from '../src/live-interests.ts'

// The processor's book of the gateways' live interests (issue 14): pure, wall time passed in.

const all = () => true
const message = (gateway: string, kind: LiveInterest['kind'], version: number, scopes?: string[]): LiveInterest => ({
  gateway,
  kind,
  version,
  leaseMs: 1000,
  ...(scopes ? { scopes } : {}),
})

describe('InterestBook', () => {
  it('keeps the union of the gateways’ scopes, a scope watched while any gateway watches it', () => {
    const book = new InterestBook()
    expect(book.apply(message('g1', 'full', 1, ['a', 'b']), 0, all)).toEqual({
      added: ['a', 'b'],
      dropped: [],
      resync: false,
    })
    expect(book.apply(message('g2', 'add', 1, ['b', 'c']), 0, all).resync).toBe(true) // never sent its full set
    expect([...book.scopes()].sort()).toEqual(['a', 'b', 'c'])
    expect(book.apply(message('g1', 'remove', 2, ['b']), 0, all)).toEqual({ added: [], dropped: [], resync: false })
    expect(book.has('b')).toBe(true)
    expect(book.apply(message('g2', 'remove', 2, ['b']), 0, all).dropped).toEqual(['b'])
    expect(book.has('b')).toBe(false)
  })

  it('asks for a full set when a change was missed, and a full set replaces the old one', () => {
    const book = new InterestBook()
    book.apply(message('g1', 'full', 1, ['a']), 0, all)
    expect(book.apply(message('g1', 'add', 3, ['b']), 0, all).resync).toBe(true)
    expect(book.apply(message('g1', 'heartbeat', 3), 0, all).resync).toBe(false)
    expect(book.apply(message('g1', 'heartbeat', 4), 0, all).resync).toBe(true)
    const change = book.apply(message('g1', 'full', 5, ['c']), 0, all)
    expect(change.dropped.sort()).toEqual(['a', 'b'])
    expect(change.added).toEqual(['c'])
    expect(book.apply(message('g9', 'heartbeat', 7), 0, all)).toEqual({ added: [], dropped: [], resync: true })
    expect(book.gatewayCount).toBe(1)
  })

  it('forgets a gateway whose lease ran out, and scopes not in the plant', () => {
    const book = new InterestBook()
    book.apply(message('g1', 'full', 1, ['a', 'nowhere']), 0, (scope) => scope !== 'nowhere')
    book.apply(message('g2', 'full', 1, ['a', 'b']), 500, all)
    expect(book.has('nowhere')).toBe(false)
    book.apply(message('g1', 'heartbeat', 1), 900, all)
    expect(book.expire(1700)).toEqual(['b'])
    expect([...book.scopes()]).toEqual(['a'])
    expect(book.expire(1900)).toEqual(['a'])
    expect(book.gatewayCount).toBe(0)
  })
})
