import { describe, expect, it } from 'vitest'
import { InternalSessionBound } from '../src/internal-sessions.ts'

const PROCESSOR = { clientId: 'plantwatt-processor-host-1a2b3c4d' }
const DEVICE = { clientId: '860100000000123' }

describe('InternalSessionBound', () => {
  it('admits up to the limit for an offline internal session, then drops and reports it once', () => {
    const bound = new InternalSessionBound(2)
    expect(bound.admit([PROCESSOR, DEVICE]).admitted).toEqual([PROCESSOR, DEVICE])
    expect(bound.admit([PROCESSOR]).dropped).toBe(0)
    expect(bound.admit([DEVICE, PROCESSOR])).toEqual({ admitted: [DEVICE], dropped: 1, full: [PROCESSOR.clientId] })
    expect(bound.admit([PROCESSOR, DEVICE])).toEqual({ admitted: [DEVICE], dropped: 1, full: [] })
  })

  it('never bounds a connected session, and starts counting afresh when it leaves again', () => {
    const bound = new InternalSessionBound(1)
    bound.connected(PROCESSOR.clientId)
    for (let i = 0; i < 5; i++) expect(bound.admit([PROCESSOR]).dropped).toBe(0)
    // A takeover: the new connection is announced before the old one's end.
    bound.connected(PROCESSOR.clientId)
    bound.disconnected(PROCESSOR.clientId)
    expect(bound.admit([PROCESSOR]).dropped).toBe(0)
    bound.disconnected(PROCESSOR.clientId)
    expect(bound.admit([PROCESSOR]).dropped).toBe(0)
    expect(bound.admit([PROCESSOR]).dropped).toBe(1)
  })
})
