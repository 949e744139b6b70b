import { describe, expect, it } from 'vitest'
import {
  filterCovers,
  internalClientId,
  internalMayPublish,
  internalMaySubscribe,
  isInternalClientId,
} from '../src/internal-clients.ts'

describe('internal clients: namespace and least privilege', () => {
  it('covers a requested filter only when the allowed one matches every topic it can match', () => {
    expect(filterCovers('sites/+/devices/+/up', 'sites/+/devices/+/up')).toBe(true)
    expect(filterCovers('sites/+/devices/+/up', 'sites/yibin/devices/860100000000123/up')).toBe(true)
    expect(filterCovers('sites/+/devices/+/up', 'sites/#')).toBe(false)
    expect(filterCovers('sites/+/devices/+/up', 'sites/+/devices/+/+')).toBe(false)
    expect(filterCovers('sites/+/devices/+/up', 'sites/+/devices/+/up/more')).toBe(false)
    expect(filterCovers('sites/+/devices/+/up', 'sites/+/devices/up')).toBe(false)
    expect(filterCovers('a/#', 'a/b/c')).toBe(true)
    expect(filterCovers('plantwatt/v1/alerts', '#')).toBe(false)
  })

  it('lets each role do only its side of the internal bus', () => {
    expect(internalMayPublish('processor', 'sites/yibin/devices/860100000000123/down')).toBe(true)
    expect(internalMayPublish('gateway', 'sites/yibin/devices/860100000000123/down')).toBe(false)
    expect(internalMayPublish('processor', 'sites/yibin/devices/860100000000123/up')).toBe(false)
    expect(internalMayPublish('gateway', 'plantwatt/v1/alerts-sync')).toBe(true)
    expect(internalMayPublish('gateway', 'plantwatt/v1/alerts')).toBe(false)
    expect(internalMayPublish('processor', 'plantwatt/v1/query-reply/+')).toBe(false)
    expect(internalMaySubscribe('gateway', 'plantwatt/v1/query-reply/4f2a')).toBe(true)
    expect(internalMaySubscribe('gateway', 'sites/+/devices/+/up')).toBe(false)
    expect(internalMaySubscribe('processor', 'sites/+/devices/+/ack')).toBe(true)
    expect(internalMaySubscribe('processor', '$SYS/#')).toBe(false)
  })

  it('gives internal clients their own client-id namespace, host names with dots included', () => {
    expect(internalClientId('processor', 'ip-10-0-1-23.eu-west-1')).toBe('plantwatt-processor-ip-10-0-1-23.eu-west-1')
    expect(isInternalClientId('processor', 'plantwatt-processor-ip-10-0-1-23.eu-west-1')).toBe(true)
    expect(isInternalClientId('gateway', 'plantwatt-processor-a')).toBe(false)
    expect(isInternalClientId('processor', 'plantwatt-processor-')).toBe(false)
    expect(isInternalClientId('processor', 'plantwatt-processor-a/b')).toBe(false)
    expect(() => internalClientId('gateway', 'x'.repeat(41))).toThrow(RangeError)
  })
})
