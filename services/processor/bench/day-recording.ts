// A long recording of a generated plant, with its ground truth, made in process and cached on disk
// for the replay benchmark (replay-day.ts). It is what
//
//   plantwatt plant generate --devices N --seed S > plant.json
//   plantwatt simulate --plant plant.json --broker none --speed max --duration Dh --interval I \
//     --start T --faults F --seed S --record recording.ndjson.gz --truth truth.json
//
// writes, without the worker processes and their lock-step horizon: with no broker, those only
// split the work. The same PlantSimulation makes the messages, the recording format's own header
// and line encoder write them, and the truth is the simulation's own. Per-device order and every payload are
// byte-identical to the command's recording (simulation.ts: a simulation of the whole plant gives
// each device the same bytes as a worker's share of it); only the order between different devices'
// messages sent in the same millisecond may differ (the command merges worker parts by `t`, then
// part), which neither the format nor the processor depends on.
//
//
// Lines go to gzip a megabyte at a time (ChunkedGzipLines) rather than through the simulator's
// RecordingWriter, which hands zlib each line as its own write: a thread-pool round trip per
// message, 45 µs per message here, which made a 40,000-device day take most of an hour. The
// decompressed file is the same byte for byte.
//
// Cache: one directory per parameter set; `meta.json` is written last, so a directory without it
// (a run killed half-way) is made again.

import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createGzip } from 'node:zlib'
import type { PlantModel } from '@plantwatt/contract'
import { PlantSimulation } from '../../../simulators/fleet/src/model/index.ts'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import {
  encodeRecordLine,
  RECORDING_FORMAT,
  RECORDING_VERSION,
  type RecordingHeader,
} from '../../../simulators/fleet/src/recording/index.ts'
import { FAULT_PRESETS } from '../../../simulators/fleet/src/run/faults.ts'
import { fleetDevicesOf } from '../../../simulators/fleet/src/sessions/devices.ts'
import { truthMinutesFile, writeTruthFile } from './truth-file.ts'

export interface DaySpec {
  devices: number
  seed: number
  /** Simulated seconds recorded. */
  durationS: number
  /** Seconds between a device's readings (`--interval`). */
  intervalS: number
  /** A preset of FAULT_PRESETS (`--faults`). */
  faults: string
  /** Simulated start, epoch seconds (`--start`). */
  startS: number
}

export interface DayFiles {
  dir: string
  plant: string
  recording: string
  truth: string
  meta: DayMeta
}

/** What was made and what it cost, kept beside the files. */
export interface DayMeta {
  spec: DaySpec
  messages: number
  uplinks: number
  recordingBytes: number
  truthBytes: number
  generateSeconds: number
  createdAt: string
}

const STEP_S = 60
const PROGRESS_MS = 30_000

export function dayDirName(spec: DaySpec): string {
  return `${spec.devices}dev-${spec.durationS}s-every${spec.intervalS}s-${spec.faults}-seed${spec.seed}-from${spec.startS}`
}

/** The cached recording of `spec` under `root`, made first when it is missing or incomplete. */
export async function ensureDayRecording(
  spec: DaySpec,
  root: string,
  log: (line: string) => void,
): Promise<{ files: DayFiles; generated: boolean }> {
  const dir = join(root, dayDirName(spec))
  const files = {
    dir,
    plant: join(dir, 'plant.json'),
    recording: join(dir, 'recording.ndjson.gz'),
    truth: join(dir, 'truth.json'),
  }
  try {
    const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as DayMeta
    return { files: { ...files, meta }, generated: false }
  } catch {
    // Not made yet, or made only in part: make it again from scratch.
  }
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  const meta = await generate(spec, files, log)
  await writeFile(join(dir, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`)
  return { files: { ...files, meta }, generated: true }
}

async function generate(spec: DaySpec, files: Omit<DayFiles, 'meta'>, log: (line: string) => void): Promise<DayMeta> {
  const faults = FAULT_PRESETS[spec.faults]
  if (!faults) throw new RangeError(`faults: ${spec.faults} is not a preset (${Object.keys(FAULT_PRESETS).join(', ')})`)
  const started = performance.now()
  const plant: PlantModel = generatePlant({ devices: spec.devices, seed: spec.seed })
  await writeFile(files.plant, `${JSON.stringify(plant, null, 2)}\n`)
  const fleet = fleetDevicesOf(plant)
  const sites: Record<string, string[]> = {}
  for (const device of fleet) {
    sites[device.site] ??= []
    sites[device.site]!.push(device.id)
  }

  const simulation = new PlantSimulation({
    plant,
    seed: spec.seed,
    startS: spec.startS,
    reportIntervalS: spec.intervalS,
    faults,
  })
  // The header simulate.ts writes; the file is renamed into place only when complete.
  const partial = `${files.recording}.partial`
  const writer = new ChunkedGzipLines(partial, {
    format: RECORDING_FORMAT,
    version: RECORDING_VERSION,
    createdAt: new Date().toISOString(),
    startS: spec.startS,
    devices: fleet.length,
    seed: spec.seed,
    note: `plantwatt simulate --broker none --interval ${spec.intervalS} --faults ${spec.faults} (made in process by services/processor/bench/day-recording.ts)`,
    sites,
  })
  const endS = spec.startS + spec.durationS
  let uplinks = 0
  let messages = 0
  let lastLog = performance.now()
  for (let t = spec.startS; t < endS; ) {
    t = Math.min(endS, t + STEP_S)
    for (const message of simulation.advanceTo(t)) {
      if (message.kind === 'up') uplinks++
      messages++
      writer.add(
        encodeRecordLine({
          t: message.sendAtS,
          site: message.site,
          deviceId: message.deviceId,
          kind: message.kind,
          payload: message.payload,
        }),
      )
    }
    await writer.flushIfFull()
    if (performance.now() - lastLog >= PROGRESS_MS) {
      lastLog = performance.now()
      const doneShare = (t - spec.startS) / spec.durationS
      log(
        `generating: ${(doneShare * 100).toFixed(1)} % of simulated time, ${messages} messages, ` +
          `${Math.round((lastLog - started) / 1000)} s, rss ${Math.round(process.memoryUsage.rss() / 2 ** 20)} MB`,
      )
    }
  }
  await writer.close()
  await rename(partial, files.recording)
  // The truth as simulate.ts makes it at the end of a run (messages still in flight are not sent),
  // its per-minute rows in a binary file beside it (truth-file.ts).
  await writeTruthFile(files.truth, simulation.truth.toJSON())
  return {
    spec,
    messages,
    uplinks,
    recordingBytes: (await stat(files.recording)).size,
    truthBytes: (await stat(files.truth)).size + (await stat(truthMinutesFile(files.truth))).size,
    generateSeconds: Math.round((performance.now() - started) / 100) / 10,
    createdAt: new Date().toISOString(),
  }
}

/** Gzip NDJSON written in chunks of about a megabyte: one zlib job per chunk, not per line. */
class ChunkedGzipLines {
  private static readonly CHUNK_CHARS = 1 << 20
  private readonly gzip = createGzip({ level: 6, chunkSize: 64 * 1024 })
  private readonly file
  private lines: string[] = []
  private chars = 0

  constructor(path: string, header: RecordingHeader) {
    this.file = createWriteStream(path)
    this.gzip.pipe(this.file)
    this.add(JSON.stringify(header))
  }

  add(line: string): void {
    this.lines.push(line)
    this.chars += line.length + 1
  }

  /** Hands a full chunk to gzip, and waits while gzip and the file lag (bounded memory). */
  async flushIfFull(): Promise<void> {
    if (this.chars < ChunkedGzipLines.CHUNK_CHARS) return
    this.flush()
    if (this.gzip.writableLength > 4 * ChunkedGzipLines.CHUNK_CHARS) await once(this.gzip, 'drain')
  }

  async close(): Promise<void> {
    this.flush()
    const closed = once(this.file, 'close')
    this.gzip.end()
    await closed
  }

  private flush(): void {
    if (this.lines.length === 0) return
    this.gzip.write(`${this.lines.join('\n')}\n`)
    this.lines = []
    this.chars = 0
  }
}
