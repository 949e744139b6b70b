// Gateway benchmark of issue 6 (DESIGN.md "Goals": 5,000 live subscribers on 1 s frames, p99
// frame delay under 100 ms; a slow or stalled client never grows server memory past its bounded
// queue).
//
//   pnpm bench:gateway [--clients 5000] [--processes 2] [--stalled 100] [--duration 60] [--out FILE]
//   pnpm bench:gateway --help
//
// Processes (split roles, as `plantwatt broker|processor|gateway`): the processor's side
// (processor-process.ts: the broker's aedes on a TCP port, the processor's LivePublisher fed by a
// synthetic source, an alert feeder), the gateway (server-process.ts: createGateway as built, an
// MQTT client of that broker, a generated plant), and load generators (subscriber-process.ts)
// holding the WebSocket clients. Phase 1: the live subscribers connect, and after a warm-up every
// live frame's delay (arrival − its `at`, the site clock = the wall clock when the processor's
// round took the figures) is recorded for `duration` seconds. Phase 2: alert events flow (a full log of 10,000 first, then
// `alert-rate` a second), stalled clients subscribe to live and to alerts since 0 and stop reading,
// and the gateway's memory is sampled after forced GCs while the live subscribers keep measuring;
// finally the stalled clients read again and report how the gateway ended each of them.

import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import {
  addEncodedLatency,
  createLatencyHistogram,
  type LatencySummary,
  summarizeLatency,
} from '../../../simulators/fleet/src/sessions/latency.ts'
import { BenchChild } from './ipc.ts'
import { describeMachine, loadAverage, machineBusyS, tcpKernelBytes } from './machine.ts'
import { parseOptions } from './options.ts'
import type { ProcessorConfig, ProcessorSample } from './processor-process.ts'
import type { ServerSample as GatewaySample, ServerConfig, ServerReady } from './server-process.ts'
import type { ClientSpec, ConnectResult, ResumeResult, WindowResult } from './subscriber-process.ts'

const argv = process.argv.slice(2)
// `pnpm bench:gateway -- --clients 100` passes the `--` on: drop it.
if (argv[0] === '--') argv.shift()
const options = parseOptions(argv)

/** The gateway's sample and, taken with it, the processor process's. */
type ServerSample = GatewaySample & { proc: ProcessorSample }

let processorChild: BenchChild | undefined

async function sampleBoth(server: BenchChild, request: { gc?: boolean; window?: boolean }): Promise<ServerSample> {
  const [gateway, proc] = await Promise.all([
    server.ask<GatewaySample>('sample', request),
    processorChild!.ask<ProcessorSample>('sample'),
  ])
  return { ...gateway, proc }
}

const MB = 2 ** 20
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits
const log = (text: string) =>
  process.stderr.write(`[bench:gateway ${new Date().toISOString().slice(11, 19)}] ${text}\n`)

/** The live subscribers: scopes by the mix's weights, each level's scopes taken in turn. */
function liveClients(ready: ServerReady): ClientSpec[] {
  const levels = ['site', 'area', 'line', 'equipment'] as const
  const specs: ClientSpec[] = []
  let assigned = 0
  for (const [k, level] of levels.entries()) {
    const n = k === levels.length - 1 ? options.clients - assigned : Math.round(options.clients * options.mix[level])
    const scopes = ready.scopes[level]
    for (let i = 0; i < n; i++) specs.push({ scope: scopes[i % scopes.length]!, level })
    assigned += n
  }
  return specs
}

/** Server and machine figures between two samples. */
function between(from: ServerSample, to: ServerSample, machineFromS: number, machineToS: number) {
  const seconds = (to.wallMs - from.wallMs) / 1000
  return {
    seconds: round(seconds),
    serverCpuPct: round(((to.cpuUs - from.cpuUs) / 1e6 / seconds) * 100),
    processorCpuPct: round(((to.proc.cpuUs - from.proc.cpuUs) / 1e6 / seconds) * 100),
    publishCpuPct: round(((to.proc.publishCpuUs - from.proc.publishCpuUs) / 1e6 / seconds) * 100),
    machineCpuPct: round(((machineToS - machineFromS) / seconds) * 100),
    liveFramesSentPerS: round((to.liveFramesSent - from.liveFramesSent) / seconds),
    liveFramesSkippedPerS: round((to.liveFramesSkipped - from.liveFramesSkipped) / seconds),
    liveFramesHeldPerS: round((to.liveFramesHeld - from.liveFramesHeld) / seconds),
    liveFramesRephasedPerS: round((to.liveFramesRephased - from.liveFramesRephased) / seconds),
    feedUpdatesPerS: round((to.proc.batches - from.proc.batches) / seconds),
    feedKBPerS: round((to.proc.bytes - from.proc.bytes) / 1024 / seconds, 1),
    feedScopesPerS: round((to.proc.scopesSent - from.proc.scopesSent) / seconds),
    watchedScopes: to.proc.watched,
    interest: { gateways: to.proc.gateways, expiredGateways: to.proc.expiredGateways, resyncs: to.proc.resyncs },
    rssMB: round(to.rss / MB),
    heapUsedMB: round(to.heapUsed / MB),
    fanOut: {
      rounds: to.flush.rounds - from.flush.rounds,
      meanMs:
        to.flush.rounds === from.flush.rounds
          ? 0
          : round((to.flush.totalMs - from.flush.totalMs) / (to.flush.rounds - from.flush.rounds), 2),
      maxMs: round(to.flush.maxMs, 2),
    },
    loopDelayMs: { p50: round(to.loopDelay.p50, 2), p99: round(to.loopDelay.p99, 2), max: round(to.loopDelay.max, 2) },
  }
}

const memory = (sample: GatewaySample) => ({
  rssMB: round(sample.rss / MB),
  heapUsedMB: round(sample.heapUsed / MB),
  heapTotalMB: round(sample.heapTotal / MB),
  externalMB: round(sample.external / MB),
  arrayBuffersMB: round(sample.arrayBuffers / MB),
  clients: sample.clients,
})

/** Measures the live subscribers for `seconds`, sampling the server every 10 s (no forced GC: it would be timed). */
async function liveWindow(server: BenchChild, generators: BenchChild[], seconds: number, during?: () => Promise<void>) {
  await Promise.all(generators.map((generator) => generator.ask('measure')))
  const first = await sampleBoth(server, { window: true })
  const firstMachine = machineBusyS()
  const segments: (ReturnType<typeof between> & { delayMs: { p50: number; p99: number; max: number } })[] = []
  let previous = first
  let previousMachine = firstMachine
  const ends = Date.now() + seconds * 1000
  const duringDone = during?.()
  while (Date.now() < ends) {
    await sleep(Math.min(10_000, ends - Date.now()))
    const [sample, ...parts] = await Promise.all([
      sampleBoth(server, { window: true }),
      ...generators.map((generator) => generator.ask<string>('segment')),
    ])
    const machine = machineBusyS()
    const delay = createLatencyHistogram()
    for (const part of parts) addEncodedLatency(delay, part)
    const { p50Ms, p99Ms, maxMs } = summarizeLatency(delay)
    segments.push({
      ...between(previous, sample!, previousMachine, machine),
      delayMs: { p50: p50Ms, p99: p99Ms, max: maxMs },
    })
    previous = sample!
    previousMachine = machine
  }
  await duringDone
  const windows = await Promise.all(generators.map((generator) => generator.ask<WindowResult>('collect')))
  return { first, last: previous, firstMachine, lastMachine: previousMachine, segments, windows }
}

function summarizeWindows(windows: WindowResult[], subscriptions: number) {
  const all = createLatencyHistogram()
  const byLevel = new Map<string, ReturnType<typeof createLatencyHistogram>>()
  for (const window of windows) {
    for (const [level, encoded] of Object.entries(window.histograms)) {
      addEncodedLatency(all, encoded)
      let histogram = byLevel.get(level)
      if (!histogram) {
        histogram = createLatencyHistogram()
        byLevel.set(level, histogram)
      }
      addEncodedLatency(histogram, encoded)
    }
  }
  const seconds = Math.max(...windows.map((window) => window.windowMs)) / 1000
  const frames = windows.reduce((sum, window) => sum + window.frames, 0)
  const delayByLevel: Record<string, LatencySummary> = {}
  for (const [level, histogram] of byLevel) delayByLevel[level] = summarizeLatency(histogram)
  const closed: Record<string, number> = {}
  for (const window of windows) {
    for (const [code, n] of Object.entries(window.closed)) closed[code] = (closed[code] ?? 0) + n
  }
  return {
    windowS: round(seconds),
    subscriptions,
    framesPerS: round(frames / seconds),
    // CONTRACT.md §5: at most one frame per second per subscription.
    framesAtMostPerS: subscriptions,
    framesPerSubscriptionPerS: round(frames / seconds / subscriptions, 3),
    silentSubscriptions: windows.reduce((sum, window) => sum + window.silent, 0),
    framesPerSubscription: {
      min: Math.min(...windows.map((window) => window.perSubscription.min)),
      max: Math.max(...windows.map((window) => window.perSubscription.max)),
    },
    delayMs: summarizeLatency(all),
    delayMsByLevel: delayByLevel,
    generatorCpuPct: round((windows.reduce((sum, window) => sum + window.cpuUs, 0) / 1e6 / seconds) * 100),
    closedClients: closed,
  }
}

function overall(run: Awaited<ReturnType<typeof liveWindow>>) {
  const whole = between(run.first, run.last, run.firstMachine, run.lastMachine)
  // Fan-out and loop figures of the whole window, from the segments.
  const rounds = run.segments.reduce((sum, segment) => sum + segment.fanOut.rounds, 0)
  const meanMs = rounds === 0 ? 0 : run.segments.reduce((sum, s) => sum + s.fanOut.meanMs * s.fanOut.rounds, 0) / rounds
  return {
    ...whole,
    fanOut: { rounds, meanMs: round(meanMs, 2), maxMs: Math.max(...run.segments.map((s) => s.fanOut.maxMs)) },
    loopDelayMs: {
      p99Max: Math.max(...run.segments.map((s) => s.loopDelayMs.p99)),
      max: Math.max(...run.segments.map((s) => s.loopDelayMs.max)),
    },
  }
}

/**
 * Phase 2: alert events flow (a full log first), stalled clients subscribe to live and alerts since
 * 0 and stop reading; the gateway's memory is sampled after forced GCs while they are held and the
 * live subscribers keep measuring; then the stalled clients read again and report how they ended.
 */
async function stalledPhase(
  server: BenchChild,
  generators: BenchChild[],
  children: BenchChild[],
  url: string,
  siteScope: string,
  liveSubscriptions: number,
) {
  const { lastSeq: afterPrefill } = await processorChild!.ask<{ lastSeq: number }>('alerts', {
    ratePerS: options.alertRate,
    prefill: 10_000,
  })
  await sleep(3000)
  const before = await server.ask<GatewaySample>('sample', { gc: true })
  const tcpBefore = tcpKernelBytes()
  const staller = BenchChild.start('stalled', './subscriber-process.ts')
  children.push(staller)
  const samples: (ReturnType<typeof memory> & { s: number; tcpKernelMB: number; closedLagging: number })[] = []
  let connect: ConnectResult | undefined
  const holdMs = options.stallDuration * 1000
  log(`holding ${options.stalled} stalled clients for ${options.stallDuration} s`)
  const phase = await liveWindow(server, generators, options.stallDuration, async () => {
    const t0 = Date.now()
    connect = await staller.ask<ConnectResult>('connect', {
      url,
      clients: Array.from({ length: options.stalled }, () => ({ scope: siteScope, level: 'site' })),
      concurrency: options.concurrency,
      stalled: true,
    })
    // Memory after forced GCs every 10 s while they are held (these GCs fall in the live window),
    // the last one 5 s before its end.
    while (Date.now() - t0 < holdMs - 5000) {
      await sleep(Math.min(10_000, holdMs - 5000 - (Date.now() - t0)))
      const sample = await server.ask<GatewaySample>('sample', { gc: true })
      samples.push({
        s: round((Date.now() - t0) / 1000),
        ...memory(sample),
        tcpKernelMB: round(tcpKernelBytes() / MB),
        closedLagging: sample.closedLagging,
      })
    }
  })
  const heldEnd = await server.ask<GatewaySample>('sample', { gc: true })
  const tcpAtEnd = tcpKernelBytes()
  const targetSeq = await processorChild!.ask<number>('lastSeq')
  const resumed = await staller.ask<ResumeResult>('resume', { targetSeq, timeoutMs: 20_000 })
  const afterResume = await server.ask<GatewaySample>('sample', { gc: true })
  const peak = samples.reduce((max, sample) => Math.max(max, sample.rssMB), heldEnd.rss / MB)
  const peakHeap = samples.reduce((max, sample) => Math.max(max, sample.heapUsedMB), heldEnd.heapUsed / MB)
  const peakTcp = samples.reduce((max, sample) => Math.max(max, sample.tcpKernelMB), tcpAtEnd / MB)
  const perClientKB = (mb: number, baseBytes: number) => round(((mb - baseBytes / MB) * 1024) / options.stalled)
  const result = {
    clients: options.stalled,
    connect,
    alertRatePerS: options.alertRate,
    alertSeq: { afterPrefill, atResume: targetSeq },
    heartbeatMs: options.heartbeatMs,
    before: { ...memory(before), tcpKernelMB: round(tcpBefore / MB) },
    samples,
    atEnd: { ...memory(heldEnd), tcpKernelMB: round(tcpAtEnd / MB), closedLagging: heldEnd.closedLagging },
    peakRssMB: round(peak),
    peakHeapUsedMB: round(peakHeap),
    perStalledClientKB: {
      rssAtPeak: perClientKB(peak, before.rss),
      heapAtPeak: perClientKB(peakHeap, before.heapUsed),
      tcpKernelAtPeak: perClientKB(peakTcp, tcpBefore),
    },
    closedLaggingWhileStalled: heldEnd.closedLagging - before.closedLagging,
    resumed,
    afterResume: { ...memory(afterResume), closedLagging: afterResume.closedLagging },
    liveDuring: {
      ...summarizeWindows(phase.windows, liveSubscriptions),
      server: overall(phase),
      segments: phase.segments,
    },
  }
  log(`stalled: ${JSON.stringify({ samples, resumed })}`)
  return result
}

async function main() {
  const startedAt = new Date()
  const loadAtStart = loadAverage()
  log(`machine ${JSON.stringify(describeMachine())}, load ${loadAtStart.join(' ')}`)
  const children: BenchChild[] = []
  const stopAll = () => Promise.all(children.map((child) => child.stop()))
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)))
  try {
    processorChild = BenchChild.start('processor', './processor-process.ts')
    children.push(processorChild)
    const processorConfig: ProcessorConfig = {
      devices: options.devices,
      seed: options.seed,
      feedIntervalMs: options.feedIntervalMs,
      equipmentShare: options.equipmentShare,
    }
    const { brokerUrl } = await processorChild.ask<{ brokerUrl: string }>('start', processorConfig)
    const server = BenchChild.start('server', './server-process.ts', [
      '--expose-gc',
      ...options.serverNodeArgs.split(' ').filter((flag) => flag !== ''),
    ])
    children.push(server)
    const config: ServerConfig = {
      brokerUrl,
      devices: options.devices,
      seed: options.seed,
      heartbeatMs: options.heartbeatMs,
      flushOnUpdate: options.flushOnUpdate,
    }
    const ready = await server.ask<ServerReady>('start', config)
    log(`gateway on port ${ready.port}, plant ${JSON.stringify(ready.counts)}`)
    await sleep(2000)
    const idle = await server.ask<GatewaySample>('sample', { gc: true })

    // Phase 1: the live subscribers.
    const specs = liveClients(ready)
    const url = `ws://127.0.0.1:${ready.port}/ws?token=${ready.token}`
    const generators = Array.from({ length: options.processes }, (_, k) =>
      BenchChild.start(`subscribers-${k + 1}`, './subscriber-process.ts'),
    )
    children.push(...generators)
    const connectStarted = Date.now()
    const connects = await Promise.all(
      generators.map((generator, k) =>
        generator.ask<ConnectResult>('connect', {
          url,
          clients: specs.filter((_, i) => i % options.processes === k),
          concurrency: options.concurrency,
          stalled: false,
        }),
      ),
    )
    const connectMs = Date.now() - connectStarted
    const connected = connects.reduce((sum, result) => sum + result.connected, 0)
    log(`${connected} of ${specs.length} live subscribers connected in ${connectMs} ms`)
    await sleep(options.warmup * 1000)
    const withClients = await server.ask<GatewaySample>('sample', { gc: true })
    log(`measuring live frames for ${options.duration} s`)
    const phase1 = await liveWindow(server, generators, options.duration)
    const live = { ...summarizeWindows(phase1.windows, connected), server: overall(phase1), segments: phase1.segments }
    log(`live: ${JSON.stringify(live.delayMs)}; server CPU ${live.server.serverCpuPct} %`)

    // Phase 2: stalled clients while alerts flow.
    const stalled =
      options.stalled > 0
        ? await stalledPhase(server, generators, children, url, ready.scopes.site[0]!, connected)
        : undefined

    const summary = {
      benchmark: 'gateway live subscribers and stalled clients (issue 6)',
      command: `pnpm bench:gateway ${argv.join(' ')}`.trim(),
      startedAt: startedAt.toISOString(),
      machine: describeMachine(),
      loadAverage: { atStart: loadAtStart, atEnd: loadAverage() },
      options,
      plant: { devices: options.devices, scopes: ready.counts },
      connect: {
        clients: specs.length,
        connected,
        failed: connects.reduce((sum, result) => sum + result.failed, 0),
        wallMs: connectMs,
        upgradeMs: connects.map((result) => result.openMs),
        errors: connects.flatMap((result) => result.errors),
      },
      serverMemory: {
        idle: memory(idle),
        withLiveClients: memory(withClients),
        perLiveClientKB: round((withClients.rss - idle.rss) / 1024 / Math.max(1, connected)),
        perLiveClientHeapKB: round((withClients.heapUsed - idle.heapUsed) / 1024 / Math.max(1, connected)),
      },
      live,
      stalled,
    }
    const text = JSON.stringify(summary, null, 2)
    process.stdout.write(`${text}\n`)
    if (options.out) {
      const out = resolve(options.out)
      mkdirSync(dirname(out), { recursive: true })
      writeFileSync(out, `${text}\n`)
      log(`written to ${out}`)
    }
  } finally {
    await stopAll()
  }
}

await main()
