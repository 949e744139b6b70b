import { once } from 'node:events'
import { connect, createServer, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { EarliestWake, type Schedule, timeoutAfterIo, unrefTimeout } from '../src/earliest-wake.ts'

/** A schedule on a hand-moved clock: what is armed, and a way to fire what is due. */
function manualSchedule() {
  const clock = { ms: 0 }
  const armed: { at: number; fn: () => void; cancelled: boolean }[] = []
  const schedule: Schedule = (fn, delayMs) => {
    const entry = { at: clock.ms + delayMs, fn, cancelled: false }
    armed.push(entry)
    return () => {
      entry.cancelled = true
    }
  }
  const advance = (ms: number) => {
    clock.ms = ms
    for (const entry of armed.splice(0)) {
      if (entry.cancelled) continue
      if (entry.at <= ms) entry.fn()
      else armed.push(entry)
    }
  }
  const live = () => armed.filter((entry) => !entry.cancelled)
  return { clock, schedule, advance, live }
}

describe('EarliestWake', () => {
  it('keeps one timer, for the earliest due time, and wakes once when it is up', () => {
    const { clock, schedule, advance, live } = manualSchedule()
    let wakes = 0
    const wake = new EarliestWake(
      schedule,
      () => clock.ms,
      () => wakes++,
    )
    wake.at(500)
    wake.at(800) // later: the armed timer fires as early already
    expect(live().map((entry) => entry.at)).toEqual([500])
    wake.at(200) // earlier: replaces it
    expect(live().map((entry) => entry.at)).toEqual([200])
    advance(199)
    expect(wakes).toBe(0)
    advance(200)
    expect(wakes).toBe(1)
    expect(live()).toEqual([])
    // Disarmed after it fired: a later due time arms a new one.
    wake.at(900)
    expect(live().map((entry) => entry.at)).toEqual([900])
  })

  it('arms a due time already past at once, and a cancelled one never wakes', () => {
    const { clock, schedule, advance, live } = manualSchedule()
    let wakes = 0
    const wake = new EarliestWake(
      schedule,
      () => clock.ms,
      () => wakes++,
    )
    clock.ms = 1000
    wake.at(400)
    expect(live().map((entry) => entry.at)).toEqual([1000])
    wake.cancel()
    advance(2000)
    expect(wakes).toBe(0)
  })
})

describe('timeoutAfterIo', () => {
  /** Order in which a due timer and data that arrived while the loop was busy are handled. */
  async function orderAfterBusyLoop(schedule: Schedule): Promise<string[]> {
    const server = createServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as { port: number }).port
    const accepted = once(server, 'connection') as Promise<[Socket]>
    const client = connect(port, '127.0.0.1')
    await once(client, 'connect')
    const [peer] = await accepted
    const order: string[] = []
    const done = new Promise<void>((resolve) => {
      client.on('data', () => {
        order.push('io')
        if (order.length === 2) resolve()
      })
      schedule(() => {
        order.push('timer')
        if (order.length === 2) resolve()
      }, 1)
    })
    peer.write('x')
    // The loop is busy past the timer's due time while the data arrives.
    const until = Date.now() + 30
    while (Date.now() < until) {}
    await done
    client.destroy()
    peer.destroy()
    server.close()
    return order
  }

  it('runs after the I/O that arrived while the loop was busy; a plain timer runs before it', async () => {
    expect(await orderAfterBusyLoop(timeoutAfterIo)).toEqual(['io', 'timer'])
    expect(await orderAfterBusyLoop(unrefTimeout)).toEqual(['timer', 'io'])
  })

  it('can be cancelled before it fires', async () => {
    let ran = false
    const cancel = timeoutAfterIo(() => {
      ran = true
    }, 1)
    cancel()
    await new Promise<void>((resolve) => timeoutAfterIo(resolve, 5))
    expect(ran).toBe(false)
  })
})
