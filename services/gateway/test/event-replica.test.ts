import { describe, expect, it } from 'vitest'
import { EventReplica } from '../src/event-replica.ts'

// The replica's bookkeeping without sockets: duplicates, holes, lost ranges and open events.

interface Ev {
  id: string
  scope: string
  state: 'raised' | 'cleared'
}

function replica(capacity = 5) {
  const syncs: number[] = []
  const lost: [number, number][] = []
  let clock = 0
  const r = new EventReplica<Ev>({
    capacity,
    idOf: (e) => e.id,
    scopeOf: (e) => e.scope,
    isOpen: (e) => e.state === 'raised',
    requestSync: (after) => syncs.push(after),
    now: () => clock,
    syncRetryMs: 1000,
  })
  r.listen({ appended: () => {}, lost: (from, to) => lost.push([from, to]) })
  return { r, syncs, lost, advance: (ms: number) => (clock += ms) }
}

const ev = (seq: number, id = `a${seq}`, state: Ev['state'] = 'raised', scope = 's/l1') => ({
  seq,
  event: { id, scope, state },
})

describe('EventReplica', () => {
  it('keeps the first of repeated events and counts the repeats', () => {
    const { r } = replica()
    r.receive([ev(1), ev(2)])
    r.receive([ev(2, 'other'), ev(3)])
    expect(r.lastSeq).toBe(3)
    expect(r.at(2)?.event.id).toBe('a2')
    expect(r.duplicates).toBe(1)
  })

  it('stops at a hole and asks for a sync once, again only after the retry time', () => {
    const { r, syncs, advance } = replica()
    r.receive([ev(1)])
    r.receive([ev(3)])
    r.receive([ev(4)])
    expect(r.lastSeq).toBe(1)
    expect(syncs).toEqual([1])
    advance(1000)
    r.receive([ev(5)])
    expect(syncs).toEqual([1, 1])
    r.receive([ev(2), ev(3), ev(4), ev(5)], { after: 1, firstHeldSeq: 1, lastSeq: 5, open: [] })
    expect(r.lastSeq).toBe(5)
  })

  it('names the range the sender no longer holds, once, and serves a gap for it', () => {
    const { r, lost } = replica()
    r.receive([ev(1)])
    r.receive([ev(9), ev(10)], { after: 1, firstHeldSeq: 9, lastSeq: 10, open: [] })
    expect(lost).toEqual([[2, 8]])
    const { gap, events } = r.since(0, () => true)
    expect(gap).toEqual({ from: 1, to: 8 })
    expect(events.map((e) => e.seq)).toEqual([9, 10])
  })

  it('holds only the newest `capacity` events and reports the older ones as a gap', () => {
    const { r } = replica(3)
    r.receive([1, 2, 3, 4, 5].map((seq) => ev(seq)))
    expect(r.firstHeldSeq).toBe(3)
    expect(r.since(1, () => true).gap).toEqual({ from: 2, to: 2 })
    expect(r.at(2)).toBeUndefined()
  })

  it('tracks open events from the stream and takes the sender’s open set at a sync', () => {
    const { r } = replica(3)
    r.receive([ev(1, 'x'), ev(2, 'y'), ev(3, 'x', 'cleared')])
    expect(r.open(() => true).map((e) => e.event.id)).toEqual(['y'])
    // Open long ago, older than anything held: known only from the sync answer.
    r.receive([], {
      after: 3,
      firstHeldSeq: 2,
      lastSeq: 3,
      open: [
        { seq: 2, event: ev(2, 'y').event },
        { seq: 0, event: ev(0, 'old').event },
      ],
    })
    expect(
      r
        .open(() => true)
        .map((e) => e.event.id)
        .sort(),
    ).toEqual(['old', 'y'])
    expect(r.find('x')?.event.state).toBe('cleared')
    expect(r.latest(() => true).map((e) => e.event.id)).toEqual(['x', 'y', 'old'])
  })
})
