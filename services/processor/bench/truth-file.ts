// The simulator's truth of a cached recording, on disk: the per-minute energy of every equipment and
// site meter in a binary file beside a JSON file that holds the rest.
//
// Why not one JSON file, as `plantwatt simulate --truth` writes: the per-minute figures grow by
// about 75 MB of JSON per simulated day of the 10,000-device plant, and a whole JSON text must fit
// in one V8 string (at most 2^29 − 24 characters, about 537 million) to be written by
// JSON.stringify or read by JSON.parse. Seven days of that plant would be 526 MB, a few percent
// under the limit. As float64 rows the same figures take 8 bytes a minute whatever their digits,
// and are read back as views of one buffer, not parsed.
//
// The numbers are the ones toJSON() gives (rounded to 4 decimals), so a score read from here equals
// one read from the JSON form. A truth file without the binary part (made before it) reads as before.

import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import type { TruthJson } from '../../../simulators/fleet/src/model/index.ts'

/**
 * The JSON part: the truth with every `wh` empty, and the lengths of the rows of the binary part
 * (which lies at truthMinutesFile() of the JSON's path).
 */
interface TruthHead extends TruthJson {
  minutes?: { equipment: number[]; meters: number[] }
}

/** A truth whose per-minute rows may be typed arrays (views of the binary part). */
export type TruthFigures = Omit<TruthJson, 'equipment' | 'meters'> & {
  equipment: { scope: string; totalWh: number; wh: ArrayLike<number> }[]
  meters: { device: string; site: string; kind: 'pv' | 'grid'; wh: ArrayLike<number> }[]
}

/** The binary part of the truth file `jsonPath`. */
export const truthMinutesFile = (jsonPath: string) => `${jsonPath.replace(/\.json$/, '')}-minutes.f64`

export async function writeTruthFile(jsonPath: string, truth: TruthJson): Promise<void> {
  const binaryPath = truthMinutesFile(jsonPath)
  const out = createWriteStream(binaryPath)
  const rows = [...truth.equipment.map((e) => e.wh), ...truth.meters.map((m) => m.wh)]
  for (const wh of rows) {
    const bytes = Buffer.from(Float64Array.from(wh).buffer)
    if (!out.write(bytes)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
  const head: TruthHead = {
    ...truth,
    equipment: truth.equipment.map((e) => ({ ...e, wh: [] })),
    meters: truth.meters.map((m) => ({ ...m, wh: [] })),
    minutes: {
      equipment: truth.equipment.map((e) => e.wh.length),
      meters: truth.meters.map((m) => m.wh.length),
    },
  }
  await writeFile(jsonPath, `${JSON.stringify(head)}\n`)
}

export async function readTruthFile(jsonPath: string): Promise<TruthFigures> {
  const head = JSON.parse(await readFile(jsonPath, 'utf8')) as TruthHead
  const layout = head.minutes
  if (layout === undefined) return head
  const binaryPath = truthMinutesFile(jsonPath)
  const bytes = await readFile(binaryPath)
  // Float64Array views need an 8-byte aligned offset: a large read is its own allocation (offset
  // 0); a small one may lie in Node's shared pool, so it is copied into a buffer of its own.
  const aligned = bytes.byteOffset % 8 === 0 ? bytes : new Uint8Array(bytes)
  const all = new Float64Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 8)
  const expected = [...layout.equipment, ...layout.meters].reduce((sum, n) => sum + n, 0)
  if (expected !== all.length) {
    throw new RangeError(`${binaryPath}: ${all.length} minutes, the truth's rows need ${expected}`)
  }
  let at = 0
  const take = (n: number) => {
    const row = all.subarray(at, at + n)
    at += n
    return row
  }
  const { minutes: _layout, ...rest } = head
  return {
    ...rest,
    equipment: head.equipment.map((e, i) => ({ ...e, wh: take(layout.equipment[i]!) })),
    meters: head.meters.map((m, i) => ({ ...m, wh: take(layout.meters[i]!) })),
  }
}
