#!/usr/bin/env node
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { deriveDevicePassword, type PlantModel, plantJsonSchema } from '@plantwatt/contract'
import { generatePlant, parseDuration, parseSpeed } from '@plantwatt/fleet'
import { PlantIndex } from '@plantwatt/plant'
import { createLogger, loadDeviceSecret, loadPlantFile, PlantFileError } from '@plantwatt/runtime'
import { Command, InvalidArgumentError, Option } from 'commander'
import { demoPlant } from './demo-plant.ts'
import { replayCommand, simulateCommand } from './fleet-commands.ts'
import {
  asOption,
  parseBrokerList,
  parseCount,
  parseDeviceId,
  parseFlag,
  parseHost,
  parseInstanceId,
  parsePort,
  parsePositiveNumber,
  parseTime,
  parseUrl,
  secretFromEnv,
} from './option-parsers.ts'
import { type RoleContext, type RunningRole, runBroker, runGateway, runProcessor } from './roles.ts'
import { up } from './up.ts'

// The one executable of CONTRACT.md §8. Every option also reads an environment variable
// (--http-port ↔ PLANTWATT_HTTP_PORT); values are validated here, once, before anything starts.

const DEFAULT_DATA_DIR = './.plantwatt'

function envOption(flags: string, description: string, env: string) {
  return new Option(flags, description).env(env)
}

function dataDirOption() {
  return envOption('--data-dir <dir>', 'where state that must survive a restart is kept', 'PLANTWATT_DATA_DIR').default(
    DEFAULT_DATA_DIR,
  )
}

const program = new Command('plantwatt')
  .description('Real-time energy backend for factories')
  .showHelpAfterError()
  .configureOutput({ outputError: (text, write) => write(`plantwatt: ${text.replace(/^error: /, '')}`) })

const options = {
  plant: () => envOption('--plant <file>', 'plant model file (default: the built-in demo plant)', 'PLANTWATT_PLANT'),
  host: () =>
    envOption('--host <host>', 'address to listen on', 'PLANTWATT_HOST').default('127.0.0.1').argParser(parseHost),
  mqttPort: () =>
    envOption('--mqtt-port <port>', 'MQTT TCP port', 'PLANTWATT_MQTT_PORT').default(1883).argParser(parsePort),
  // The gateway's port is 8080; a broker or processor role on the same machine must not take it.
  httpPort: (what = 'HTTP and WebSocket port', port = 8080) =>
    envOption('--http-port <port>', what, 'PLANTWATT_HTTP_PORT').default(port).argParser(parsePort),
  broker: () =>
    envOption('--broker <url>', 'the MQTT broker that joins the roles', 'PLANTWATT_BROKER')
      .default('mqtt://127.0.0.1:1883')
      .argParser(parseUrl),
  influxUrl: () =>
    envOption(
      '--influx-url <url>',
      'InfluxDB 2.x URL (history; none: in memory only)',
      'PLANTWATT_INFLUX_URL',
    ).argParser(parseUrl),
  influxOrg: () => envOption('--influx-org <org>', 'InfluxDB organisation', 'PLANTWATT_INFLUX_ORG'),
  influxBucket: () => envOption('--influx-bucket <bucket>', 'InfluxDB bucket', 'PLANTWATT_INFLUX_BUCKET'),
  influxToken: () => envOption('--influx-token <token>', 'InfluxDB token', 'PLANTWATT_INFLUX_TOKEN'),
  // CONTRACT.md §2: distinct process-variable names a device may report (tuning names do not count).
  maxProcessNames: () =>
    envOption(
      '--max-process-names <n>',
      'distinct process-variable names per device, past which records are rejected too_many_names',
      'PLANTWATT_MAX_PROCESS_NAMES',
    )
      .default(16)
      .argParser(parseCount(0, 1000)),
  // CONTRACT.md §7: readings more than maxAgeS behind the wall clock are `too_old` unless this is set.
  acceptOld: () =>
    envOption(
      '--accept-old [yes]',
      'accept readings older than maxAgeS behind the wall clock (replaying old recordings)',
      'PLANTWATT_ACCEPT_OLD',
    ).argParser(parseFlag),
  instanceId: () =>
    envOption(
      '--instance-id <id>',
      "instance part of this role's MQTT client id plantwatt-{role}-{id} (default: from the host name and data directory)",
      'PLANTWATT_INSTANCE_ID',
    ).argParser(parseInstanceId),
  // simulate and plant generate: the same meaning, so the same variables.
  devices: (what: string) => envOption('--devices <n>', what, 'PLANTWATT_DEVICES').argParser(parseCount(1, 100_000)),
  seed: (what: string) =>
    envOption('--seed <s>', what, 'PLANTWATT_SEED')
      .default(1)
      .argParser(parseCount(0, 2 ** 32 - 1)),
}

/**
 * Loads the plant and the device secret (refusing a bad file or a short secret before anything is
 * written or bound) and the logger.
 */
async function roleContext(opts: { plant?: string; dataDir: string }): Promise<RoleContext> {
  const deviceSecret = secretFromEnv('PLANTWATT_DEVICE_SECRET')
  const plant = opts.plant ? await loadPlantFile(resolve(opts.plant)) : demoPlant()
  // A serving role writes only into its data directory, which is for its own user (issue 12,
  // finding 19): files made without a mode (LevelDB's in the session store) get 0600, not 0644.
  process.umask(0o077)
  return {
    plant,
    dataDir: resolve(opts.dataDir),
    deviceSecret,
    internalSecret: secretFromEnv('PLANTWATT_INTERNAL_SECRET'),
    logger: createLogger(),
  }
}

/**
 * `up --workers` by default: one broker worker per core, and enough that none holds more than
 * 15,000 device sessions — one process may hold at most 20,000 descriptors here (issue 16), and a
 * worker's share of round-robin connections is only about even. A one-core machine runs the single
 * process. (Small plants and the demo stayed in one process while a reading's first live frame
 * came up to 2 s after it with workers: the processor's pacing sent a moved site clock ahead of
 * the figures it made stale; paced per site since, docs/decisions.md.)
 */
function defaultWorkers(plant: PlantModel): number {
  const devices = new PlantIndex(plant).devices.size
  return Math.max(availableParallelism(), Math.ceil(devices / 15_000))
}

/**
 * Stops a running role on SIGINT or SIGTERM, in reverse order of start, then exits. Given the
 * role's start (a promise), the handlers are in place before anything listens: a signal that
 * comes right after the `listening` record (a supervisor or a test stopping it at once) waits for
 * the start to finish instead of killing the process with Node's default action.
 */
function stopOnSignals(running: RunningRole | Promise<RunningRole>, logger: RoleContext['logger']): void {
  const shutdown = (signal: string) => {
    logger.info({ signal }, 'shutting down')
    Promise.resolve(running)
      .then((role) => role.stop())
      .then(
        () => process.exit(0),
        (error) => {
          logger.error({ err: error }, 'shutdown failed')
          process.exit(1)
        },
      )
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
}

program
  .command('up')
  .description('broker, processor and gateway in one process (the embedded default)')
  .addOption(options.plant())
  .addOption(
    envOption('--demo [yes]', 'also start simulated devices for the plant', 'PLANTWATT_DEMO').argParser(parseFlag),
  )
  .addOption(
    envOption(
      '--demo-history <hours>',
      "with --demo: hours of the plant's history simulated through the pipeline before the devices go live (0: none)",
      'PLANTWATT_DEMO_HISTORY',
    )
      .default(48)
      .argParser(parseCount(0, 24 * 31)),
  )
  .addOption(dataDirOption())
  .addOption(options.host())
  .addOption(options.mqttPort())
  .addOption(options.httpPort())
  .addOption(options.influxUrl())
  .addOption(options.influxOrg())
  .addOption(options.influxBucket())
  .addOption(options.influxToken())
  .addOption(options.acceptOld())
  .addOption(options.maxProcessNames())
  .addOption(
    // Issue 16: one process holds at most 20,000 descriptors here and uses one core.
    envOption(
      '--workers <n>',
      'broker processes sharing the MQTT port (1: everything in one process)',
      'PLANTWATT_WORKERS',
    )
      .default(undefined, 'one per core, at least one per 15,000 devices')
      .argParser(parseCount(1, 64)),
  )
  .action(async (opts) => {
    const adminToken = secretFromEnv('PLANTWATT_ADMIN_TOKEN')
    const context = await roleContext(opts)
    const system = up(
      {
        plant: context.plant,
        demo: opts.demo === true,
        dataDir: context.dataDir,
        host: opts.host,
        mqttPort: opts.mqttPort,
        httpPort: opts.httpPort,
        adminToken,
        deviceSecret: context.deviceSecret,
        influx: { url: opts.influxUrl, org: opts.influxOrg, bucket: opts.influxBucket, token: opts.influxToken },
        acceptOld: opts.acceptOld === true,
        maxProcessNames: opts.maxProcessNames,
        demoHistoryHours: opts.demoHistory,
        workers: opts.workers ?? defaultWorkers(context.plant),
      },
      context.logger,
    )
    stopOnSignals(system, context.logger)
    await system
  })

program
  .command('broker')
  .description('the MQTT broker role: alone, or one of several on Redis (--redis)')
  .addOption(options.plant())
  .addOption(dataDirOption())
  .addOption(options.host())
  .addOption(options.mqttPort())
  .addOption(options.httpPort('HTTP port for /healthz, /readyz, /metrics and MQTT over WebSocket at /mqtt', 8081))
  .addOption(
    envOption('--redis <url>', 'Redis that joins several brokers into one', 'PLANTWATT_REDIS').argParser(parseUrl),
  )
  .action(async (opts) => {
    const context = await roleContext(opts)
    const running = await runBroker(context, {
      host: opts.host,
      mqttPort: opts.mqttPort,
      httpPort: opts.httpPort,
      redisUrl: opts.redis,
    })
    stopOnSignals(running, context.logger)
  })

program
  .command('processor')
  .description('the stream processor role, a client of the broker')
  .addOption(options.plant())
  .addOption(dataDirOption())
  .addOption(options.broker())
  .addOption(options.influxUrl())
  .addOption(options.influxOrg())
  .addOption(options.influxBucket())
  .addOption(options.influxToken())
  .addOption(options.host())
  .addOption(options.httpPort('HTTP port for /healthz, /readyz and /metrics', 8082))
  .addOption(options.acceptOld())
  .addOption(options.maxProcessNames())
  .addOption(options.instanceId())
  .action(async (opts) => {
    const context = await roleContext(opts)
    const influx = { url: opts.influxUrl, org: opts.influxOrg, bucket: opts.influxBucket, token: opts.influxToken }
    const running = await runProcessor(context, {
      brokerUrl: opts.broker,
      influx,
      host: opts.host,
      httpPort: opts.httpPort,
      acceptOld: opts.acceptOld === true,
      maxProcessNames: opts.maxProcessNames,
      instanceId: opts.instanceId,
    })
    stopOnSignals(running, context.logger)
  })

program
  .command('gateway')
  .description('the HTTP and WebSocket gateway role, a client of the broker')
  .addOption(options.plant())
  .addOption(dataDirOption())
  .addOption(options.broker())
  .addOption(options.host())
  .addOption(options.httpPort())
  .addOption(options.instanceId())
  .action(async (opts) => {
    const adminToken = secretFromEnv('PLANTWATT_ADMIN_TOKEN')
    const context = await roleContext(opts)
    const running = await runGateway(context, {
      brokerUrl: opts.broker,
      host: opts.host,
      httpPort: opts.httpPort,
      adminToken,
      instanceId: opts.instanceId,
    })
    stopOnSignals(running, context.logger)
  })

program
  .command('device-token')
  .description("print a device's MQTT password (HMAC-SHA256 of its id with the device secret)")
  .argument('<id>', 'device id', parseDeviceId)
  .addOption(dataDirOption())
  .action(async (id: string, opts) => {
    const secret = await loadDeviceSecret(resolve(opts.dataDir), secretFromEnv('PLANTWATT_DEVICE_SECRET'))
    process.stdout.write(`${deriveDevicePassword(secret, id)}\n`)
  })

/** Options that simulate and replay share. */
function fleetOptions(command: Command): Command {
  return command
    .addOption(
      envOption(
        '--speed <x>',
        'simulated time per wall-clock time: a number, or max (as fast as the broker takes)',
        'PLANTWATT_SPEED',
      )
        .default(1)
        .argParser(asOption(parseSpeed)),
    )
    .addOption(
      envOption(
        '--broker <urls>',
        'MQTT broker(s), comma-separated (sessions shared round-robin), or none',
        'PLANTWATT_BROKER',
      )
        .default([{ host: '127.0.0.1', port: 1883 }], 'mqtt://127.0.0.1:1883')
        .argParser(parseBrokerList),
    )
    .addOption(dataDirOption().default(DEFAULT_DATA_DIR, `${DEFAULT_DATA_DIR} (the broker's, for the device secret)`))
    .addOption(
      envOption('--workers <n>', 'worker processes (default: one per 10,000 devices)', 'PLANTWATT_WORKERS').argParser(
        parseCount(1, 64),
      ),
    )
    .addOption(
      envOption(
        '--connect-rate <n>',
        'new connections per second over the fleet (default 2000)',
        'PLANTWATT_CONNECT_RATE',
      ).argParser(parseCount(1, 100_000)),
    )
}

fleetOptions(
  program
    .command('simulate')
    .description('the NB-IoT fleet simulator: every device its own MQTT session, a JSON summary at the end')
    .addOption(options.plant())
    .addOption(options.devices('simulate about N devices of the plant (whole lines)'))
    .addOption(options.seed('random seed: the same seed gives the same run'))
    .addOption(
      envOption(
        '--duration <d>',
        'simulated time to run: 600, 10m, 24h (default: until Ctrl-C at speed ≤ 1, else 1h)',
        'PLANTWATT_DURATION',
      ).argParser(asOption(parseDuration)),
    )
    .addOption(
      envOption(
        '--start <time>',
        'simulated start, ISO 8601 or epoch seconds (default: so that no reading lies in the future)',
        'PLANTWATT_START',
      ).argParser(parseTime),
    )
    .addOption(
      envOption('--interval <s>', "seconds between a device's readings", 'PLANTWATT_INTERVAL')
        .default(1)
        .argParser(parsePositiveNumber),
    )
    .addOption(
      envOption(
        '--faults <preset|file>',
        'NB-IoT behaviour: none, nbiot, or a JSON file of fault options',
        'PLANTWATT_FAULTS',
      ).default('nbiot'),
    )
    .addOption(
      envOption(
        '--record <file>',
        'write every message as sent (gzip NDJSON, docs/recording-format.md)',
        'PLANTWATT_RECORD',
      ),
    )
    .addOption(
      envOption(
        '--truth <file>',
        'write the ground truth (JSON): energy per minute, idle episodes, feasible setpoints',
        'PLANTWATT_TRUTH',
      ),
    ),
).action(async (opts) => {
  const plant = opts.plant ? await loadPlantFile(resolve(opts.plant)) : demoPlant()
  await simulateCommand({ ...opts, plant })
})

fleetOptions(
  program
    .command('replay')
    .description('replay a recording byte for byte, each device its own MQTT session')
    .argument('<file>', 'a recording of plantwatt simulate --record'),
).action(async (file: string, opts) => {
  await replayCommand(file, opts)
})

const plantCommand = program.command('plant').description('plant model tools')
plantCommand
  .command('generate')
  .description('print a realistic plant model')
  .addOption(options.devices('number of devices').makeOptionMandatory())
  .addOption(options.seed('random seed: the same seed gives the same plant'))
  .action((opts) => {
    process.stdout.write(`${JSON.stringify(generatePlant({ devices: opts.devices, seed: opts.seed }), null, 2)}\n`)
  })

plantCommand
  .command('schema')
  .description('print the JSON Schema of plant.json, for editors ("$schema") and checks of plant files')
  .action(() => {
    process.stdout.write(`${JSON.stringify(plantJsonSchema(), null, 2)}\n`)
  })

// A service keeps running through a stray rejection in a library (one was seen in a Redis
// client during an outage), but says so: it is a bug to find, not a reason to stop ingesting.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`plantwatt: unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}\n`)
})

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof InvalidArgumentError) {
    // A bad value found in an action (a short secret): the message names it; nothing has started.
    process.stderr.write(`plantwatt: ${error.message}\n`)
    process.exit(2)
  }
  if (error instanceof PlantFileError) {
    // Every problem, each with its JSON path, before anything is written or bound (CONTRACT.md §1).
    process.stderr.write(`plantwatt: ${error.message}\n`)
    process.exit(2)
  }
  const code = (error as NodeJS.ErrnoException).code
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    // A port taken or not allowed: say which, without a stack trace.
    process.stderr.write(`plantwatt: cannot listen: ${(error as Error).message}\n`)
    process.exit(1)
  }
  process.stderr.write(`plantwatt: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
