import { createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { DEVICE_ID_PATTERN, deriveDevicePassword, NODE_ID_PATTERN } from '../src/device-auth.ts'
import { encodeSetpointCommand, parseSetpointAck, parseSetpointCommand } from '../src/setpoint.ts'
import { deviceTopic, parseDeviceTopic } from '../src/topics.ts'
import { parseClientFrame } from '../src/ws-frames.ts'

describe('device topics (CONTRACT.md §2, §3)', () => {
  it('builds and parses up, down and ack topics', () => {
    for (const kind of ['up', 'down', 'ack'] as const) {
      const topic = deviceTopic('yibin', '860100000000123', kind)
      expect(topic).toBe(`sites/yibin/devices/860100000000123/${kind}`)
      expect(parseDeviceTopic(topic)).toEqual({ site: 'yibin', deviceId: '860100000000123', kind })
    }
  })

  it.each([
    'sites/yibin/devices/860100000000123',
    'sites/yibin/devices/860100000000123/up/more',
    'sites/yibin/devices//up',
    'sites//devices/1/up',
    'site/yibin/devices/1/up',
    'sites/yibin/device/1/up',
    'sites/yibin/devices/1/UP',
    '',
  ])('refuses %j', (topic) => {
    expect(parseDeviceTopic(topic)).toBeUndefined()
  })
})

describe('device password (CONTRACT.md §4)', () => {
  it('is the lowercase hex HMAC-SHA256 of the id keyed with the secret', () => {
    const expected = createHmac('sha256', Buffer.from('s3cret', 'utf8')).update('860100000000123').digest('hex')
    expect(deriveDevicePassword('s3cret', '860100000000123')).toBe(expected)
    expect(deriveDevicePassword('s3cret', '860100000000124')).not.toBe(expected)
    expect(deriveDevicePassword('s3cret', 'x')).toMatch(/^[0-9a-f]{64}$/)
  })

  it('has the id patterns of CONTRACT.md §1', () => {
    expect(DEVICE_ID_PATTERN.test('860100000000123')).toBe(true)
    expect(DEVICE_ID_PATTERN.test('a'.repeat(65))).toBe(false)
    expect(DEVICE_ID_PATTERN.test('dev/1')).toBe(false)
    expect(NODE_ID_PATTERN.test('coating-1')).toBe(true)
    expect(NODE_ID_PATTERN.test('-coating')).toBe(false)
    expect(NODE_ID_PATTERN.test('Coating')).toBe(false)
  })
})

describe('setpoint messages (CONTRACT.md §3)', () => {
  it('encodes a command as the contract shows it', () => {
    const command = { type: 'setpoint' as const, id: '7f0c', name: 'fan_hz', value: 42, issuedAt: 1732250000 }
    expect(JSON.parse(encodeSetpointCommand(command).toString())).toEqual(command)
  })

  it('parses a command as a device receives it and refuses anything else', () => {
    const command = { type: 'setpoint' as const, id: '7f0c', name: 'fan_hz', value: 42, issuedAt: 1732250000 }
    expect(parseSetpointCommand(encodeSetpointCommand(command))).toEqual(command)
    for (const bad of ['', '{}', '{"type":"setpoint","id":"x","name":"fan_hz","value":"42"}', '{"type":"reboot"}']) {
      expect(parseSetpointCommand(Buffer.from(bad))).toBeUndefined()
    }
  })

  it('parses applied and rejected acks and refuses anything else', () => {
    expect(parseSetpointAck(Buffer.from('{"id":"7f0c","status":"applied"}'))).toEqual({ id: '7f0c', status: 'applied' })
    expect(parseSetpointAck(Buffer.from('{"id":"7f0c","status":"rejected","reason":"out of range"}'))).toEqual({
      id: '7f0c',
      status: 'rejected',
      reason: 'out of range',
    })
    for (const bad of ['', 'null', '[]', '{"id":"x"}', '{"id":1,"status":"applied"}', '{"id":"x","status":"done"}']) {
      expect(parseSetpointAck(Buffer.from(bad))).toBeUndefined()
    }
  })
})

describe('WebSocket client frames (CONTRACT.md §5)', () => {
  it('accepts the four subscribe forms and unsubscribe of the contract', () => {
    expect(
      parseClientFrame('{"op":"subscribe","id":"a","channel":"live","scope":"yibin/electrode/coating-1"}'),
    ).toEqual({
      ok: true,
      frame: { op: 'subscribe', id: 'a', channel: 'live', scope: 'yibin/electrode/coating-1' },
    })
    expect(
      parseClientFrame('{"op":"subscribe","id":"b","channel":"alerts","scope":"yibin","since":120}'),
    ).toMatchObject({
      ok: true,
      frame: { since: 120 },
    })
    expect(parseClientFrame('{"op":"subscribe","id":"c","channel":"setpoints","scope":"yibin"}').ok).toBe(true)
    expect(
      parseClientFrame('{"op":"subscribe","id":"d","channel":"buckets","scope":"yibin","step":"15m"}'),
    ).toMatchObject({
      ok: true,
      frame: { step: '15m' },
    })
    expect(parseClientFrame('{"op":"unsubscribe","id":"a"}')).toEqual({
      ok: true,
      frame: { op: 'unsubscribe', id: 'a' },
    })
  })

  it.each([
    ['not json', /JSON/],
    ['[]', /object/],
    ['{"op":"subscribe","channel":"live","scope":"y"}', /"id"/],
    ['{"op":"jump","id":"a"}', /"op"/],
    ['{"op":"subscribe","id":"a","channel":"news","scope":"y"}', /"channel"/],
    ['{"op":"subscribe","id":"a","channel":"live"}', /"scope"/],
    ['{"op":"subscribe","id":"a","channel":"live","scope":"y","since":3}', /"since"/],
    ['{"op":"subscribe","id":"a","channel":"alerts","scope":"y","since":-1}', /"since"/],
    ['{"op":"subscribe","id":"a","channel":"alerts","scope":"y","since":"5"}', /"since"/],
    ['{"op":"subscribe","id":"a","channel":"buckets","scope":"y","step":"5m"}', /"step"/],
  ])('refuses %s, naming the field', (text, message) => {
    const parsed = parseClientFrame(text)
    expect(parsed.ok).toBe(false)
    if (!parsed.ok) expect(parsed.message).toMatch(message)
  })
})
