import { describe, expect, it } from 'vitest'
import { InternalSessionBound } from '../src/internal-sessions.ts'

const PROCESSOR = { clientId: 'plantwatt-processor-host-1a2b3c4d' }
const DEVICE = { clientId: '860100000000123' }

describe('InternalSessionBound', () => {
  it('expires an offline internal session once, at the limit; devices are never counted', () => {
    const bound = new InternalSessionBound(3, () => false)
    expect(bound.count([PROCESSOR, DEVICE])).toEqual([])
    expect(bound.count([PROCESSOR])).toEqual([])
    expect(bound.count([DEVICE, PROCESSOR])).toEqual([PROCESSOR.clientId])
    // Expired, it no longer matches messages; were it counted again, it would start afresh.
    expect(bound.count([PROCESSOR])).toEqual([])
    for (let i = 0; i < 10; i++) expect(bound.count([DEVICE])).toEqual([])
  })

  it('never counts a session connected here or at another broker, and starts afresh when it connects', () => {
    let local = true
    const bound = new InternalSessionBound(2, () => local)
    for (let i = 0; i < 5; i++) expect(bound.count([PROCESSOR])).toEqual([])
    local = false
    expect(bound.count([PROCESSOR])).toEqual([])
    bound.localConnected(PROCESSOR.clientId)
    expect(bound.count([PROCESSOR])).toEqual([])
    bound.remoteConnected('broker-b', PROCESSOR.clientId)
    for (let i = 0; i < 5; i++) expect(bound.count([PROCESSOR])).toEqual([])
    bound.remoteDisconnected('broker-b', PROCESSOR.clientId)
    expect(bound.count([PROCESSOR])).toEqual([])
    expect(bound.count([PROCESSOR])).toEqual([PROCESSOR.clientId])
  })

  it('queues nothing more for an expired session until its owner connects again, so the limit is exact', () => {
    // Removing its subscriptions takes a store round trip, and aedes may still hand over messages
    // it matched before: they would otherwise still be queued for it.
    let local = false
    const bound = new InternalSessionBound(2, () => local)
    const subscribers = [PROCESSOR, DEVICE]
    expect(bound.admit(subscribers)).toBe(subscribers)
    expect(bound.count([PROCESSOR])).toEqual([])
    expect(bound.count([PROCESSOR])).toEqual([PROCESSOR.clientId])
    for (let i = 0; i < 5; i++) expect(bound.admit(subscribers)).toEqual([DEVICE])
    // Its owner back meanwhile: it gets its messages as before.
    local = true
    expect(bound.admit(subscribers)).toBe(subscribers)
    local = false
    for (let i = 0; i < 5; i++) expect(bound.admit(subscribers)).toEqual([DEVICE])
    // It connects again (here, or at another broker): counted afresh once it leaves.
    bound.localConnected(PROCESSOR.clientId)
    expect(bound.admit(subscribers)).toBe(subscribers)
    expect(bound.count([PROCESSOR])).toEqual([])
    expect(bound.count([PROCESSOR])).toEqual([PROCESSOR.clientId])
    expect(bound.admit(subscribers)).toEqual([DEVICE])
    bound.remoteConnected('broker-b', PROCESSOR.clientId)
    expect(bound.admit(subscribers)).toBe(subscribers)
  })
})
