import { existsSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runCliExpectingRefusal } from '../../../test/support/plantwatt-process.ts'

// Issue 12, finding 19: a weak PLANTWATT_DEVICE_SECRET is brute-forced offline from one device's
// password (CONTRACT.md §4: every password is HMAC-SHA256(secret, id)) and yields every device's;
// a weak PLANTWATT_ADMIN_TOKEN is the whole API. plantwatt refuses to start with either set too
// short — naming the variable, exiting non-zero, before the data directory is made or a port bound.

const GOOD_SECRET = 'd'.repeat(32) // exactly the minimum
const GOOD_ADMIN = 'a'.repeat(24) // exactly the minimum
const SHORT_SECRET = 'short-device-secret-31-chars-xx' // 31 characters
const SHORT_ADMIN = 'short-admin-token-23-ch' // 23 characters

async function freshDataDir(): Promise<string> {
  return join(await mkdtemp(join(tmpdir(), 'plantwatt-secrets-')), 'data')
}

const ports = ['--host', '127.0.0.1', '--mqtt-port', '0', '--http-port', '0']

describe('plantwatt refuses weak secrets at start-up', () => {
  it('test values have the lengths the cases below rely on', () => {
    expect([...SHORT_SECRET]).toHaveLength(31)
    expect([...SHORT_ADMIN]).toHaveLength(23)
  })

  it('up: refuses a PLANTWATT_DEVICE_SECRET under 32 characters, before making the data directory or binding', async () => {
    const dataDir = await freshDataDir()
    const result = await runCliExpectingRefusal(['up', ...ports, '--data-dir', dataDir], {
      PLANTWATT_DEVICE_SECRET: SHORT_SECRET,
      PLANTWATT_ADMIN_TOKEN: GOOD_ADMIN,
    })
    expect(result.started).toBe(false)
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/PLANTWATT_DEVICE_SECRET/)
    expect(result.stderr).toMatch(/at least 32 characters/)
    // The secret itself is never echoed (CONTRACT.md §4: secrets are never logged).
    expect(result.stderr).not.toContain(SHORT_SECRET)
    expect(result.stderr).not.toMatch(/\n\s+at /) // a message, not a stack trace
    expect(existsSync(dataDir)).toBe(false)
  })

  it('up: refuses a PLANTWATT_ADMIN_TOKEN under 24 characters the same way', async () => {
    const dataDir = await freshDataDir()
    const result = await runCliExpectingRefusal(['up', ...ports, '--data-dir', dataDir], {
      PLANTWATT_DEVICE_SECRET: GOOD_SECRET,
      PLANTWATT_ADMIN_TOKEN: SHORT_ADMIN,
    })
    expect(result.started).toBe(false)
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/PLANTWATT_ADMIN_TOKEN/)
    expect(result.stderr).toMatch(/at least 24 characters/)
    expect(result.stderr).not.toContain(SHORT_ADMIN)
    expect(existsSync(dataDir)).toBe(false)
  })

  it('broker and gateway roles refuse them too', async () => {
    const broker = await runCliExpectingRefusal(['broker', ...ports, '--data-dir', await freshDataDir()], {
      PLANTWATT_DEVICE_SECRET: SHORT_SECRET,
    })
    expect(broker.started).toBe(false)
    expect(broker.code).toBe(2)
    expect(broker.stderr).toMatch(/PLANTWATT_DEVICE_SECRET/)

    const gatewayDir = await freshDataDir()
    const gatewayArgs = ['--host', '127.0.0.1', '--http-port', '0', '--broker', 'mqtt://127.0.0.1:1']
    const gateway = await runCliExpectingRefusal(['gateway', ...gatewayArgs, '--data-dir', gatewayDir], {
      PLANTWATT_DEVICE_SECRET: GOOD_SECRET,
      PLANTWATT_ADMIN_TOKEN: SHORT_ADMIN,
    })
    expect(gateway.started).toBe(false)
    expect(gateway.code).toBe(2)
    expect(gateway.stderr).toMatch(/PLANTWATT_ADMIN_TOKEN/)
    expect(existsSync(gatewayDir)).toBe(false)
  })

  it('device-token refuses a short secret and accepts one of exactly 32 characters', async () => {
    const dataDir = await freshDataDir()
    const short = await runCliExpectingRefusal(['device-token', '860100000000123', '--data-dir', dataDir], {
      PLANTWATT_DEVICE_SECRET: SHORT_SECRET,
    })
    expect(short.code).toBe(2)
    expect(short.stdout).toBe('')
    expect(short.stderr).toMatch(/PLANTWATT_DEVICE_SECRET/)

    const exact = await runCliExpectingRefusal(['device-token', '860100000000123', '--data-dir', dataDir], {
      PLANTWATT_DEVICE_SECRET: GOOD_SECRET,
    })
    expect(exact.code).toBe(0)
    expect(exact.stdout.trim()).toMatch(/^[0-9a-f]{64}$/)
  })

  it('up starts with both at exactly their minimum length', async () => {
    const result = await runCliExpectingRefusal(['up', ...ports, '--data-dir', await freshDataDir()], {
      PLANTWATT_DEVICE_SECRET: GOOD_SECRET,
      PLANTWATT_ADMIN_TOKEN: GOOD_ADMIN,
    })
    expect(result.started).toBe(true)
  })
})
