import { deriveDevicePassword } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { DevicePolicy } from '../src/device-policy.ts'

const policy = new DevicePolicy(new PlantIndex(examplePlant()), 's3cret')
const DEVICE = '860100000000123'

describe('DevicePolicy', () => {
  it('accepts only the derived password for a known device', () => {
    const password = Buffer.from(deriveDevicePassword('s3cret', DEVICE))
    expect(policy.login(DEVICE, DEVICE, password)).toEqual({ ok: true, role: undefined })
    expect(policy.login(DEVICE, DEVICE, Buffer.from(deriveDevicePassword('other', DEVICE)))).toMatchObject({
      ok: false,
      returnCode: 4,
    })
    expect(policy.login(DEVICE, DEVICE, Buffer.from('short'))).toMatchObject({ ok: false, reason: 'bad_password' })
    expect(policy.login(DEVICE, DEVICE, undefined)).toMatchObject({ ok: false, reason: 'missing_password' })
    expect(policy.login('nobody', 'nobody', password)).toMatchObject({ ok: false, returnCode: 5 })
  })

  it("allows publishing only to the device's own up and ack topics on its own site", () => {
    expect(policy.mayPublish(DEVICE, `sites/yibin/devices/${DEVICE}/up`)).toBe(true)
    expect(policy.mayPublish(DEVICE, `sites/yibin/devices/${DEVICE}/ack`)).toBe(true)
    expect(policy.mayPublish(DEVICE, `sites/yibin/devices/${DEVICE}/down`)).toBe(false)
    expect(policy.mayPublish(DEVICE, `sites/other/devices/${DEVICE}/up`)).toBe(false)
    expect(policy.mayPublish(DEVICE, `sites/yibin/devices/${DEVICE}/up/extra`)).toBe(false)
    expect(policy.mayPublish(DEVICE, 'sites/yibin/devices/860100000000124/up')).toBe(false)
  })

  it("allows subscribing only to the device's own down topic, without wildcards", () => {
    expect(policy.maySubscribe(DEVICE, `sites/yibin/devices/${DEVICE}/down`)).toBe(true)
    expect(policy.maySubscribe(DEVICE, `sites/yibin/devices/${DEVICE}/up`)).toBe(false)
    expect(policy.maySubscribe(DEVICE, 'sites/yibin/devices/+/down')).toBe(false)
    expect(policy.maySubscribe(DEVICE, `sites/+/devices/${DEVICE}/down`)).toBe(false)
    expect(policy.maySubscribe(DEVICE, '#')).toBe(false)
  })
})
