import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Bus } from '../src/bus.ts'

/**
 * The behaviour every Bus implementation must have (STYLE.md: one abstract suite per interface,
 * as aedes-persistence's abstract.js). `open` gives a bus and a second one on the same broker.
 */
export function busSuite(name: string, open: () => Promise<{ a: Bus; b: Bus; close: () => Promise<void> }>) {
  describe(`Bus contract: ${name}`, () => {
    let a: Bus
    let b: Bus
    let close: () => Promise<void>

    beforeEach(async () => {
      ;({ a, b, close } = await open())
    })
    afterEach(async () => {
      await close()
    })

    const nextMessage = (bus: Bus, filter: string) =>
      new Promise<[string, string]>((resolve) => {
        void bus.subscribe(filter, (topic, payload) => resolve([topic, payload.toString()]))
      })

    it('delivers a message to a subscriber of a wildcard filter, across buses', async () => {
      const received = new Promise<[string, string]>((resolve) => {
        void b.subscribe('plantwatt/test/+/x', (topic, payload) => resolve([topic, payload.toString()]))
      })
      // subscribe resolves once active; wait for it before publishing
      await b.subscribe('plantwatt/test/+/x', () => {})
      await a.publish('plantwatt/test/site-1/x', Buffer.from('hello'), { qos: 1 })
      expect(await received).toEqual(['plantwatt/test/site-1/x', 'hello'])
    })

    it('keeps per-publisher order', async () => {
      const seen: string[] = []
      const done = new Promise<void>((resolve) => {
        void b
          .subscribe('plantwatt/order/#', (_topic, payload) => {
            seen.push(payload.toString())
            if (seen.length === 50) resolve()
          })
          .then(async () => {
            for (let i = 0; i < 50; i++) await a.publish('plantwatt/order/n', Buffer.from(String(i)), { qos: 1 })
          })
      })
      await done
      expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => String(i)))
    })

    it('stops delivering after unsubscribe, and a throwing handler does not stop others', async () => {
      const seen: string[] = []
      const unsubscribe = await b.subscribe('plantwatt/unsub', (_topic, payload) => seen.push(`gone:${payload}`))
      await unsubscribe()
      await b.subscribe('plantwatt/unsub', () => {
        throw new Error('faulty consumer')
      })
      const survivor = nextMessage(b, 'plantwatt/unsub')
      await b.subscribe('plantwatt/unsub', () => {})
      await a.publish('plantwatt/unsub', Buffer.from('1'), { qos: 1 })
      expect(await survivor).toEqual(['plantwatt/unsub', '1'])
      expect(seen).toEqual([])
    })
  })
}
