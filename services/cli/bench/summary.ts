// The Markdown summary `pnpm bench` writes into docs/benchmarks.md between two markers, replaced
// on each run, the rest of the file left as it is. Pure: the result in, text out.

import type { LadderResult, LadderTargetResult } from './ladder.ts'

export const SUMMARY_START = '<!-- bench:summary:start -->'
export const SUMMARY_END = '<!-- bench:summary:end -->'

export interface Machine {
  cpus: number
  model: string
  memoryGiB: number
  kernel: string
  node: string
  loadAverageAtStart: number[]
  loadAverageAtEnd: number[]
}

interface Latency {
  p50Ms: number
  p99Ms: number
  maxMs: number
}

/** The figures of one bench:up-load run that the summary needs (the whole JSON is in `file`). */
export interface UpRun {
  name: string
  command: string
  file: string
  exitCode: number | null
  devices: number
  intervalS: number
  durationS: number
  packsSent: number
  packsAcked: number
  ackedPerS: number
  puback: Latency
  liveAge: Latency
  liveFrames: number
  ok: boolean
  lost: { readings: number; packs: number }
  brokerWorkers: number
  cpuMicrosPerPackTaken: number
  pssMaxMB: number
  pssPerDeviceKB: number
  upCpuPercentUnderLoad: number
  machineCpuPercentUnderLoad: number
  generatorCpuPercentUnderLoad: number
  otherCpuPercentUnderLoad: number
  loadAverageAtStart: number[]
}

/** A figure quoted from another benchmark's latest JSON result. */
export interface Quoted {
  file: string
  /** Run now by this command (--with-gateway / --with-replay) or an earlier result. */
  ranNow: boolean
  date: string | null
  commit: string | null
  machine: string | null
  loadAverageAtStart: number[] | null
  figures: Record<string, number | string | null>
}

export interface BenchResult {
  command: string
  date: string
  commit: string
  /** Files changed and not committed when the run started. */
  uncommitted: string[]
  quick: boolean
  machine: Machine
  seconds: number
  up: UpRun[]
  ladder: LadderResult | null
  gateway: Quoted | null
  replay: Quoted | null
}

const n = (value: number) => value.toLocaleString('en-US')
const lat = (l: Latency) => `${n(l.p50Ms)} / ${n(l.p99Ms)} / ${n(l.maxMs)} ms`
const met = (ok: boolean) => (ok ? 'met' : '**missed**')

function upTable(runs: UpRun[]): string[] {
  if (runs.length === 0) return ['Not run this time (`--only ladder`).']
  const head = `| | ${runs.map((r) => `${n(r.devices)} sessions, one pack every ${r.intervalS} s, ${r.durationS} s`).join(' | ')} | target (issue 16) |`
  const row = (label: string, cell: (r: UpRun) => string, target = '') =>
    `| ${label} | ${runs.map(cell).join(' | ')} | ${target} |`
  return [
    head,
    `|---|${runs.map(() => '---:|').join('')}---|`,
    row('broker workers of `up`', (r) => String(r.brokerWorkers)),
    row('packs sent / acknowledged', (r) => `${n(r.packsSent)} / ${n(r.packsAcked)} (${n(r.ackedPerS)}/s)`),
    row(
      'nothing lost (after the buckets closed)',
      (r) => (r.ok ? 'yes' : `**no**: ${n(r.lost.readings)} readings, ${n(r.lost.packs)} packs`),
      'nothing lost',
    ),
    row('PUBACK p50 / p99 / max', (r) => `${lat(r.puback)} (p99 < 50 ms: ${met(r.puback.p99Ms < 50)})`, 'p99 < 50 ms'),
    row(
      'live frame age p50 / p99 / max',
      (r) => `${lat(r.liveAge)} over ${n(r.liveFrames)} frames (${met(r.liveFrames > 0 && r.liveAge.maxMs <= 1000)})`,
      '≤ 1 s',
    ),
    row(
      'CPU per pack taken, all of `up`’s processes',
      (r) => `${r.cpuMicrosPerPackTaken} µs (${r.upCpuPercentUnderLoad} % of a core)`,
    ),
    row(
      'PSS max, all processes',
      (r) => `${n(r.pssMaxMB)} MB = ${r.pssPerDeviceKB} KB per device (${met(r.pssPerDeviceKB < 20)})`,
      '< 20 KB per device',
    ),
    row(
      'machine CPU under load: generator / other work',
      (r) =>
        `${r.machineCpuPercentUnderLoad} % of 200 %: ${r.generatorCpuPercentUnderLoad} % / ${r.otherCpuPercentUnderLoad} %`,
    ),
    row('load average at start', (r) => r.loadAverageAtStart.join(', ')),
    row('JSON', (r) => `\`${r.file}\``),
  ]
}

function ladderTable(ladder: LadderResult): string[] {
  const rates = ladder.rates
  const byTarget = (name: string) => ladder.targets.find((t) => t.target === name)
  const plantwatt = byTarget('plantwatt')
  const mosquitto = byTarget('mosquitto')
  const cell = (target: LadderTargetResult | undefined, rate: number) => {
    const step = target?.steps.find((s) => s.offeredPerS === rate)
    if (!step) return ['—', '—', '—']
    const passed = step.deliveredPerS === null ? '?' : n(step.deliveredPerS)
    const acked = `${n(step.ackedPerS)} (${target?.target === 'mosquitto' ? 'relayed' : 'processed'} ${passed})${step.behind ? ' **behind**' : ''}`
    return [
      acked,
      `${n(step.puback.p99Ms)} ms`,
      `${step.targetCpuMicrosPerPack} µs (gen. ${step.generatorCpuPercent} %, other ${step.otherCpuPercent} %)`,
    ]
  }
  const lines = [
    '| offered packs/s | plantwatt acknowledged/s | PUBACK p99 | CPU per pack | Mosquitto acknowledged/s | PUBACK p99 | CPU per pack |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...rates.map((rate) => `| ${n(rate)} | ${[...cell(plantwatt, rate), ...cell(mosquitto, rate)].join(' | ')} |`),
  ]
  const ceiling = (t: LadderTargetResult | undefined) =>
    t
      ? `${n(t.ceilingPerS)} packs/s (${t.cpuMicrosPerPackAtCeiling} µs CPU per pack there, ${t.processes} process${t.processes === 1 ? '' : 'es'})`
      : 'not run'
  lines.push(
    '',
    `- ceiling of \`plantwatt up\`: ${ceiling(plantwatt)}; of Mosquitto: ${ceiling(mosquitto)}`,
    `- ratio plantwatt / Mosquitto: ceiling **${ladder.ceilingRatio ?? '—'}** (target ≥ 0.5), CPU per pack **${ladder.cpuPerPackRatio ?? '—'}** (target ≤ 2)`,
  )
  const highest = rates.at(-1) ?? 0
  for (const t of [plantwatt, mosquitto]) {
    if (t && t.ceilingPerS === highest && t.steps.length === rates.length) {
      lines.push(`- ${t.target} kept pace at every step: its ceiling is at least ${n(highest)}/s, not measured above`)
    }
    if (t && t.problems.length > 0) lines.push(`- ${t.target}: ${t.problems.slice(0, 5).join('; ')}`)
  }
  return lines
}

function quoted(label: string, q: Quoted | null, flag: string): string[] {
  if (!q) return [`- ${label}: no result found.`]
  const figures = Object.entries(q.figures)
    .filter(([, value]) => value !== null)
    .map(([key, value]) => `${key} ${typeof value === 'number' ? n(value) : value}`)
    .join(', ')
  const origin = q.ranNow ? 'run by this command' : `latest result, not rerun; \`${flag}\` reruns it`
  return [
    `- ${label} (${origin}). \`${q.file}\`, ${q.date ?? 'date unknown'}, commit ${q.commit?.slice(0, 7) ?? 'unknown'}, ` +
      `${q.machine ?? 'machine unknown'}, load average at start ${q.loadAverageAtStart?.join(', ') ?? 'unknown'}: ${figures}.`,
  ]
}

/** The text between the markers (markers excluded). */
export function renderSummary(result: BenchResult, resultFile: string): string {
  const m = result.machine
  const lines = [
    `Generated by \`${result.command}\` on ${result.date} at commit ${result.commit.slice(0, 7)}` +
      `${result.uncommitted.length > 0 ? ` (with ${result.uncommitted.length} uncommitted files)` : ''}` +
      `${result.quick ? ', **quick mode: a small version, not the figures of issue 16**' : ''}; it took ${Math.round(result.seconds / 60)} min. ` +
      `Machine: ${m.cpus} cores (${m.model}), ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}; load average ` +
      `${m.loadAverageAtStart.join(', ')} at the start and ${m.loadAverageAtEnd.join(', ')} at the end. The generator runs on the ` +
      'same machine; where other work shared it (the "other work" columns), the figures are upper bounds. ' +
      `All figures: \`${resultFile}\`.`,
    '',
    '**`plantwatt up` under load** (`bench:up-load`: every device its own MQTT session, one 4-reading SenML pack per turn at QoS 1)',
    '',
    ...upTable(result.up),
    '',
  ]
  if (result.ladder) {
    const l = result.ladder
    lines.push(
      `**Ceiling ladder**: ${n(l.sessions)} sessions, the same generator, plant and sessions against \`plantwatt up\` and ` +
        `then Debian's Mosquitto (\`/usr/sbin/mosquitto\`, anonymous, relaying QoS 1 to one subscriber), each step ${l.stepS} s ` +
        `measured after ${l.warmupS} s at its rate; ${l.criterion}. In brackets, the packs passed on per second: taken by ` +
        "`up`'s processor from its journal, received by Mosquitto's subscriber. " +
        '**`plantwatt up` fsyncs its ingest journal before each ' +
        'PUBACK; that Mosquitto keeps nothing (`persistence false`)**: a pack it acknowledged is gone if it stops before relaying it.',
      '',
      ...ladderTable(l),
      '',
    )
  } else {
    lines.push('**Ceiling ladder**: not run this time (`--only up`).', '')
  }
  lines.push(
    '**Gateway and replay**',
    '',
    ...quoted('`bench:gateway`', result.gateway, '--with-gateway'),
    ...quoted('`bench:replay-day`', result.replay, '--with-replay'),
  )
  return lines.join('\n')
}

/**
 * `document` with the text between the markers replaced by `summary`; the markers are added at the
 * end when the document has none. Everything outside them is kept byte for byte.
 */
export function replaceSummary(document: string, summary: string): string {
  const start = document.indexOf(SUMMARY_START)
  const end = document.indexOf(SUMMARY_END)
  const block = `${SUMMARY_START}\n${summary}\n${SUMMARY_END}`
  if (start === -1 || end === -1 || end < start) {
    return `${document.replace(/\n*$/, '\n')}\n${block}\n`
  }
  return document.slice(0, start) + block + document.slice(end + SUMMARY_END.length)
}
