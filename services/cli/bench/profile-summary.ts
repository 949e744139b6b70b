// Self time of the .cpuprofile files `node --cpu-prof` wrote (issue 16's profile of the whole
// path): one table per process, by function and by module (a package of node_modules, a plantwatt
// workspace package, node's own internals, GC, idle), so the CPU a bench measured can be split
// into what each process spent it on.
//
//   pnpm bench:up-load --devices 4000 --interval-s 2 --duration-s 60 \
//     --up-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof-up"
//   node --import tsx services/cli/bench/profile-summary.ts /tmp/prof-up [--top 25] [--json]
//     [--window HH:MM:SS-HH:MM:SS] [--long-tasks MS]

import { readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import { parseArgs } from 'node:util'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}
interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}
interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

/** Where a frame's code lives, coarse enough to add up: a package, node internals, or a pseudo-frame. */
export function moduleOf(frame: CallFrame): string {
  const { url, functionName } = frame
  if (url === '') {
    // V8's pseudo-frames: (garbage collector), (idle), (program), (root); natives without a script.
    return functionName.startsWith('(') ? functionName : '(native)'
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`
  const path = url.replace(/^file:\/\//, '')
  const nm = path.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const rest = path.slice(nm + '/node_modules/'.length).split('/')
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  const workspace = /\/(packages|services|simulators)\/([^/]+)\//.exec(path)
  if (workspace) return `plantwatt:${workspace[1]}/${workspace[2]}`
  return path
}

export interface ProfileSummary {
  file: string
  wallMs: number
  sampledMs: number
  /** Sampled time outside (idle): what the process spent on CPU, near enough. */
  busyMs: number
  byFunction: { name: string; module: string; selfMs: number }[]
  byModule: { module: string; selfMs: number }[]
  /** Time in each function and all it called (a function on the stack twice counts once). */
  byFunctionInclusive: { name: string; module: string; totalMs: number }[]
  /** With `longTasks`: how long each run of busy samples that was kept lasted, ms. */
  longTasksMs?: number[]
}

/**
 * The samples inside runs of busy (not idle) samples that last at least `minMs`: near enough, the
 * turns of the event loop that held it that long, which a loop-delay figure shows but cannot name.
 */
export function longTaskSamples(profile: CpuProfile, minMs: number): { keep: Set<number>; runsMs: number[] } {
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id))
  const keep = new Set<number>()
  const runsMs: number[] = []
  let run: number[] = []
  let runUs = 0
  const close = () => {
    if (runUs >= minMs * 1000) {
      for (const k of run) keep.add(k)
      runsMs.push(Math.round(runUs / 1000))
    }
    run = []
    runUs = 0
  }
  for (let k = 0; k + 1 < profile.samples.length; k++) {
    if (idle.has(profile.samples[k]!)) close()
    else {
      run.push(k)
      runUs += profile.timeDeltas[k + 1] ?? 0
    }
  }
  close()
  return { keep, runsMs }
}

/**
 * Self time by function and module; `window` (µs since the profile's start) keeps only the samples
 * taken inside it, e.g. a bench's load phase without the start and the connects.
 */
export function summarise(
  file: string,
  profile: CpuProfile,
  window?: { fromUs: number; toUs: number },
  longTasks?: ReturnType<typeof longTaskSamples>,
): ProfileSummary {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]))
  const selfUs = new Map<number, number>()
  // Sample k's time is the delta to the next sample (the last one's is unknown: dropped).
  let atUs = 0
  for (let k = 0; k + 1 < profile.samples.length; k++) {
    atUs += profile.timeDeltas[k] ?? 0
    if (window && (atUs < window.fromUs || atUs > window.toUs)) continue
    if (longTasks && !longTasks.keep.has(k)) continue
    const id = profile.samples[k]!
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[k + 1] ?? 0))
  }
  const byFunction = new Map<string, { name: string; module: string; selfMs: number }>()
  const byModule = new Map<string, number>()
  let sampledUs = 0
  let idleUs = 0
  for (const [id, us] of selfUs) {
    const frame = nodes.get(id)!.callFrame
    const module = moduleOf(frame)
    sampledUs += us
    if (module === '(idle)') idleUs += us
    const where = frame.url === '' ? '' : `${basename(frame.url)}:${frame.lineNumber + 1}`
    const name = `${frame.functionName || '(anonymous)'} ${where}`.trim()
    const key = `${module} ${name}`
    const entry = byFunction.get(key) ?? { name, module, selfMs: 0 }
    entry.selfMs += us / 1000
    byFunction.set(key, entry)
    byModule.set(module, (byModule.get(module) ?? 0) + us / 1000)
  }
  // Inclusive time: each sample's time to every function on its stack, once per function.
  const parents = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id)
  const inclusive = new Map<string, { name: string; module: string; totalMs: number }>()
  for (const [id, us] of selfUs) {
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parents.get(at)) {
      const frame = nodes.get(at)!.callFrame
      const module = moduleOf(frame)
      if (module === '(idle)' || module === '(root)') continue
      const where = frame.url === '' ? '' : `${basename(frame.url)}:${frame.lineNumber + 1}`
      const name = `${frame.functionName || '(anonymous)'} ${where}`.trim()
      const key = `${module} ${name}`
      if (seen.has(key)) continue
      seen.add(key)
      const entry = inclusive.get(key) ?? { name, module, totalMs: 0 }
      entry.totalMs += us / 1000
      inclusive.set(key, entry)
    }
  }
  return {
    file,
    wallMs: window ? (window.toUs - window.fromUs) / 1000 : (profile.endTime - profile.startTime) / 1000,
    sampledMs: sampledUs / 1000,
    busyMs: (sampledUs - idleUs) / 1000,
    byFunction: [...byFunction.values()].sort((a, b) => b.selfMs - a.selfMs),
    byModule: [...byModule].map(([module, selfMs]) => ({ module, selfMs })).sort((a, b) => b.selfMs - a.selfMs),
    byFunctionInclusive: [...inclusive.values()].sort((a, b) => b.totalMs - a.totalMs),
    ...(longTasks ? { longTasksMs: longTasks.runsMs } : {}),
  }
}

const secondsOfDay = (hhmmss: string) => {
  const digits = hhmmss.replace(/:/g, '')
  return Number(digits.slice(0, 2)) * 3600 + Number(digits.slice(2, 4)) * 60 + Number(digits.slice(4, 6))
}

/** The window in µs since the profile's start (its file name's second; the TZ of the run must be UTC). */
function windowOf(file: string, window: string): { fromUs: number; toUs: number } {
  const started = /CPU\.\d{8}\.(\d{6})\./.exec(basename(file))
  if (!started) throw new Error(`${file}: not named as node --cpu-prof names its files`)
  const [from, to] = window.split('-')
  const startS = secondsOfDay(started[1]!)
  return { fromUs: (secondsOfDay(from!) - startS) * 1e6, toUs: (secondsOfDay(to!) - startS) * 1e6 }
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: 'string', default: '25' },
      json: { type: 'boolean', default: false },
      // Wall-clock window (UTC, HH:MM:SS-HH:MM:SS, e.g. a bench log's load phase): node names each
      // profile CPU.<yyyymmdd>.<hhmmss>.<pid>…, the second its profile started (local time).
      window: { type: 'string' },
      // Only the runs of busy samples of at least this many ms (the turns that held the loop that
      // long, e.g. a stall a loop-delay figure shows): what they were made of.
      'long-tasks': { type: 'string' },
    },
  })
  const top = Number(values.top)
  const files = positionals.flatMap((path) =>
    statSync(path).isDirectory()
      ? readdirSync(path)
          .filter((name) => name.endsWith('.cpuprofile'))
          .map((name) => join(path, name))
      : [path],
  )
  const summaries = files.map((file) => {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
    const longTasks =
      values['long-tasks'] === undefined ? undefined : longTaskSamples(profile, Number(values['long-tasks']))
    return summarise(file, profile, values.window ? windowOf(file, values.window) : undefined, longTasks)
  })
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summaries, null, 2)}\n`)
    return
  }
  const ms = (value: number) => value.toFixed(0).padStart(8)
  const share = (value: number, busy: number) => `${((100 * value) / Math.max(1, busy)).toFixed(1).padStart(5)} %`
  for (const s of summaries) {
    const lines = [
      '',
      `${basename(s.file)}: wall ${s.wallMs.toFixed(0)} ms, busy (not idle) ${s.busyMs.toFixed(0)} ms`,
      ...(s.longTasksMs
        ? [`  only the runs of busy samples of at least --long-tasks ms: ${s.longTasksMs.join(', ')} ms`]
        : []),
      '  by module (self ms, share of busy)',
      ...s.byModule
        .filter((m) => m.module !== '(idle)')
        .slice(0, top)
        .map((m) => `  ${ms(m.selfMs)} ${share(m.selfMs, s.busyMs)}  ${m.module}`),
      '  by function',
      ...s.byFunction
        .filter((f) => f.module !== '(idle)')
        .slice(0, top)
        .map((f) => `  ${ms(f.selfMs)} ${share(f.selfMs, s.busyMs)}  ${f.name}  [${f.module}]`),
      '  by function with what it called (inclusive ms, share of busy)',
      ...s.byFunctionInclusive
        .slice(0, top)
        .map((f) => `  ${ms(f.totalMs)} ${share(f.totalMs, s.busyMs)}  ${f.name}  [${f.module}]`),
    ]
    process.stdout.write(`${lines.join('\n')}\n`)
  }
}

if (import.meta.filename === process.argv[1]) main()
