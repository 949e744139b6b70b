import type { DecodedPack, Reading, RecordRejection, RejectReason } from './senml.ts'

// A decoded SenML pack in binary (issue 16): the broker worker of `plantwatt up --workers N` that
// received an uplink decodes and validates it there and hands the owner of the site's state this,
// not the JSON or CBOR to parse again. Rejections keep their index and reason (what is counted);
// their human-readable detail stays behind ('' here). Little-endian throughout:
//
//   u32 readings | u32 rejections
//   per reading:   f64 time | f64 value | u8 field (0 v, 1 s) | u16 name bytes | name
//                  | u16 unit bytes (0xffff: none) | unit
//   per rejection: i32 index | u8 reason

const REASONS: readonly RejectReason[] = [
  'malformed',
  'non_finite',
  'unit_mismatch',
  'future',
  'too_old',
  'out_of_range',
]
const REASON_CODE = new Map(REASONS.map((reason, code) => [reason, code]))
const NO_UNIT = 0xffff

export function encodeDecodedPack(pack: DecodedPack): Buffer {
  let size = 8 + pack.rejections.length * 5
  for (const reading of pack.readings) {
    size += 8 + 8 + 1 + 2 + Buffer.byteLength(reading.name) + 2
    if (reading.unit !== undefined) size += Buffer.byteLength(reading.unit)
  }
  const bytes = Buffer.allocUnsafe(size)
  bytes.writeUInt32LE(pack.readings.length, 0)
  bytes.writeUInt32LE(pack.rejections.length, 4)
  let offset = 8
  for (const reading of pack.readings) {
    bytes.writeDoubleLE(reading.time, offset)
    bytes.writeDoubleLE(reading.value, offset + 8)
    bytes.writeUInt8(reading.field === 's' ? 1 : 0, offset + 16)
    const nameBytes = bytes.write(reading.name, offset + 19, 'utf8')
    bytes.writeUInt16LE(nameBytes, offset + 17)
    offset += 19 + nameBytes
    if (reading.unit === undefined) {
      bytes.writeUInt16LE(NO_UNIT, offset)
      offset += 2
    } else {
      const unitBytes = bytes.write(reading.unit, offset + 2, 'utf8')
      bytes.writeUInt16LE(unitBytes, offset)
      offset += 2 + unitBytes
    }
  }
  for (const rejection of pack.rejections) {
    bytes.writeInt32LE(rejection.index, offset)
    bytes.writeUInt8(REASON_CODE.get(rejection.reason) ?? 0, offset + 4)
    offset += 5
  }
  return bytes
}

/** The pack of encodeDecodedPack; throws RangeError on bytes it did not write. */
export function decodeDecodedPack(bytes: Uint8Array): DecodedPack {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const readingCount = buffer.readUInt32LE(0)
  const rejectionCount = buffer.readUInt32LE(4)
  let offset = 8
  const readings: Reading[] = new Array(readingCount)
  for (let k = 0; k < readingCount; k++) {
    const time = buffer.readDoubleLE(offset)
    const value = buffer.readDoubleLE(offset + 8)
    const field = buffer.readUInt8(offset + 16) === 1 ? 's' : 'v'
    const nameBytes = buffer.readUInt16LE(offset + 17)
    const name = buffer.toString('utf8', offset + 19, offset + 19 + nameBytes)
    offset += 19 + nameBytes
    const unitBytes = buffer.readUInt16LE(offset)
    let unit: string | undefined
    if (unitBytes === NO_UNIT) offset += 2
    else {
      unit = buffer.toString('utf8', offset + 2, offset + 2 + unitBytes)
      offset += 2 + unitBytes
    }
    readings[k] = { name, time, value, field, unit }
  }
  const rejections: RecordRejection[] = new Array(rejectionCount)
  for (let k = 0; k < rejectionCount; k++) {
    const reason = REASONS[buffer.readUInt8(offset + 4)]
    if (reason === undefined) throw new RangeError('decoded pack: unknown rejection reason')
    rejections[k] = { index: buffer.readInt32LE(offset), reason, detail: '' }
    offset += 5
  }
  if (offset > buffer.length) throw new RangeError('decoded pack: truncated')
  return { readings, rejections }
}
