import { Command, InvalidArgumentError } from 'commander'

// The benchmark's command line, parsed and checked once (STYLE.md: errors name the bad option).

export interface BenchOptions {
  clients: number
  processes: number
  stalled: number
  duration: number
  stallDuration: number
  warmup: number
  devices: number
  seed: number
  mix: { site: number; area: number; line: number; equipment: number }
  equipmentShare: number
  feedIntervalMs: number
  alertRate: number
  heartbeatMs: number
  concurrency: number
  flushOnUpdate: boolean
  /** Extra node flags of the gateway's process (e.g. a CPU profile). */
  serverNodeArgs: string
  out: string | undefined
}

function count(min: number, max: number) {
  return (value: string): number => {
    const number = Number(value)
    if (!/^\d+$/.test(value) || number < min || number > max) {
      throw new InvalidArgumentError(`"${value}" is not a whole number from ${min} to ${max}`)
    }
    return number
  }
}

function share(value: string): number {
  const number = Number(value)
  if (!Number.isFinite(number) || number < 0 || number > 1)
    throw new InvalidArgumentError(`"${value}" is not from 0 to 1`)
  return number
}

function mix(value: string): BenchOptions['mix'] {
  const parts = value.split(',').map(Number)
  if (parts.length !== 4 || parts.some((part) => !Number.isFinite(part) || part < 0) || parts.every((p) => p === 0)) {
    throw new InvalidArgumentError(`"${value}" is not four weights site,area,line,equipment (e.g. 70,10,10,10)`)
  }
  const total = parts.reduce((sum, part) => sum + part, 0)
  const [site, area, line, equipment] = parts.map((part) => part / total) as [number, number, number, number]
  return { site, area, line, equipment }
}

export function parseOptions(argv: string[]): BenchOptions {
  const program = new Command('bench:gateway')
    .description(
      'Gateway benchmark (issue 6): live WebSocket subscribers fed from a separate process, then stalled clients.',
    )
    .option('--clients <n>', 'live subscribers', count(1, 19_000), 5000)
    .option('--processes <n>', 'load-generator processes for the live subscribers', count(1, 16), 2)
    .option('--stalled <n>', 'stalled clients in the second phase (0: skip it)', count(0, 5000), 100)
    .option('--duration <s>', 'seconds of live frames measured', count(1, 3600), 60)
    .option('--stall-duration <s>', 'seconds the stalled clients are held', count(1, 3600), 60)
    .option('--warmup <s>', 'seconds after all are connected before measuring', count(0, 600), 5)
    .option('--devices <n>', 'devices of the generated plant', count(1, 100_000), 40_000)
    .option('--seed <n>', 'plant generator seed', count(0, 2 ** 31), 1)
    .option('--mix <weights>', 'live subscriptions by scope level: site,area,line,equipment', mix, mix('70,10,10,10'))
    .option('--equipment-share <x>', 'share of the equipment whose figures change per feed round', share, 0.2)
    .option(
      '--feed-interval-ms <ms>',
      "the feeder's publish interval (the processor's is 200 ms)",
      count(10, 10_000),
      200,
    )
    .option('--alert-rate <n>', 'alert events per second during the stalled phase', count(1, 100_000), 250)
    .option('--heartbeat-ms <ms>', "the gateway's ping round (its default is 30 s)", count(100, 3_600_000), 30_000)
    .option('--concurrency <n>', 'connections waiting for their upgrade at once, per process', count(1, 10_000), 100)
    .option(
      '--flush-on-update',
      'experiment: a fan-out round right after each update instead of every 100 ms (not the gateway as built)',
      false,
    )
    .option(
      '--server-node-args <flags>',
      'extra node flags of the gateway process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof-gw"',
      '',
    )
    .option('--out <file>', 'also write the JSON summary here')
    .showHelpAfterError()
  program.parse(argv, { from: 'user' })
  return Object.freeze(program.opts<BenchOptions>())
}
