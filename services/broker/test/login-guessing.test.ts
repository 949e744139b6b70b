import { deriveDevicePassword } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { type Broker, createBroker } from '../src/broker.ts'
import { metricValue } from './metric-value.ts'
import { connectPacket, RawClient } from './raw-client.ts'

// Credential guessing (CONTRACT.md §4 v1.1) on real sockets, from two source addresses on
// loopback (127.0.0.1 and 127.0.0.2): the lockout is per device id and source address, so a
// stranger can never lock a device out elsewhere.

const SECRET = 'login-guessing-secret'
const A = '860100000000123'
const C = '860100000000223'
const STRANGER = '127.0.0.1'
const ELSEWHERE = '127.0.0.2'

/** One CONNECT from `address`; resolves with the CONNACK's return code (-1: closed without one). */
async function connectFrom(port: number, address: string, clientId: string, password: string): Promise<number> {
  const raw = await RawClient.openFrom(port, address)
  try {
    raw.send(connectPacket(clientId, clientId, password))
    const connack = await Promise.race([raw.next('connack'), raw.whenClosed().then(() => undefined)])
    return connack && connack.cmd === 'connack' ? (connack.returnCode ?? -1) : -1
  } finally {
    raw.destroy()
  }
}

describe('credential guessing', () => {
  let broker: Broker | undefined

  afterEach(async () => {
    await broker?.close()
    broker = undefined
  })

  async function start(limits: Parameters<typeof createBroker>[0]['limits'] = {}): Promise<number> {
    broker = await createBroker({
      plant: new PlantIndex(examplePlant()),
      deviceSecret: SECRET,
      logger: pino({ level: 'silent' }),
      limits,
    })
    return broker.listen({ host: '127.0.0.1', port: 0 })
  }
  const refused = (reason: string) => metricValue(broker!.metrics.refusals, { reason })

  it('locks a device id out only at the address that guessed: the device connects from elsewhere', async () => {
    const port = await start({
      login: { maxFailures: 5, windowMs: 60_000, lockoutMs: 60_000, delayStepMs: 1, maxDelayMs: 10, maxEntries: 1000 },
    })
    const right = deriveDevicePassword(SECRET, A)
    for (let i = 0; i < 5; i++) expect(await connectFrom(port, STRANGER, A, `guess-${i}`)).toBe(4)
    // The stranger's address is refused even with the right password…
    expect(await connectFrom(port, STRANGER, A, right)).toBe(5)
    expect(await refused('locked_out')).toBe(1)
    // …but the device itself, at another address, is not locked out.
    expect(await connectFrom(port, ELSEWHERE, A, right)).toBe(0)
    // Nor does its success there lift the stranger's lockout.
    expect(await connectFrom(port, STRANGER, A, right)).toBe(5)
  })

  it('a flood of bad CONNECTs from one address uses no connect budget: good devices still connect, there too', async () => {
    const port = await start({
      // A small overall budget: 3,000 failed logins would spend it 150 times over if they counted.
      connectRatePerS: 5,
      connectBurst: 20,
      login: {
        maxFailures: 5,
        windowMs: 60_000,
        lockoutMs: 60_000,
        delayStepMs: 1,
        maxDelayMs: 10,
        addressFailureRatePerS: 10,
        addressFailureBurst: 50,
        overBudgetDelayMs: 50,
        maxEntries: 10_000,
      },
    })
    const answers = new Map<number, number>()
    const FLOOD = 3000
    const PARALLEL = 100
    for (let sent = 0; sent < FLOOD; sent += PARALLEL) {
      const batch = Array.from({ length: PARALLEL }, (_, i) =>
        connectFrom(port, STRANGER, `stranger-${sent + i}`, 'guess'),
      )
      for (const code of await Promise.all(batch)) answers.set(code, (answers.get(code) ?? 0) + 1)
    }
    // Every guess was answered as a failed login (unknown id: CONNACK 5), none as "server busy".
    expect(answers.get(5)).toBe(FLOOD)
    expect(await refused('connect_rate')).toBe(0)
    // A good device elsewhere connects, and so does one behind the guessing address (a shared NAT).
    expect(await connectFrom(port, ELSEWHERE, A, deriveDevicePassword(SECRET, A))).toBe(0)
    // Behind the guessing address it waits longer for its answer (past the budget), but gets in.
    const started = Date.now()
    expect(await connectFrom(port, STRANGER, C, deriveDevicePassword(SECRET, C))).toBe(0)
    expect(Date.now() - started).toBeGreaterThanOrEqual(45)
  })

  it('charges the overall connect rate for successful logins, and refuses one past it with CONNACK 3', async () => {
    const port = await start({ connectRatePerS: 0.001, connectBurst: 3 })
    const password = deriveDevicePassword(SECRET, A)
    for (let i = 0; i < 3; i++) expect(await connectFrom(port, ELSEWHERE, A, password)).toBe(0)
    expect(await connectFrom(port, ELSEWHERE, A, password)).toBe(3)
    expect(await refused('connect_rate')).toBe(1)
  })
})
