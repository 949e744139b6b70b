import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { plantJsonSchema, validatePlant } from '@plantwatt/contract'
import { describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { runCli } from '../../../test/support/plantwatt-process.ts'

// The plantwatt command as a user runs it (CONTRACT.md §8), in a child process.

const SECRET = 'cli-test-device-secret-0123456789abcdef'

describe('plantwatt device-token', () => {
  it('prints the HMAC-SHA256 of the device id keyed with PLANTWATT_DEVICE_SECRET, as openssl computes it', async () => {
    const result = await runCli(['device-token', '860100000000123'], { PLANTWATT_DEVICE_SECRET: SECRET })
    expect(result.code).toBe(0)
    // An independent implementation of CONTRACT.md §4's derivation.
    const openssl = execFileSync('openssl', ['dgst', '-sha256', '-hmac', SECRET, '-r'], { input: '860100000000123' })
    expect(result.stdout.trim()).toBe(openssl.toString().split(' ')[0])
    expect(result.stdout.trim()).toMatch(/^[0-9a-f]{64}$/)
  })

  it('refuses an id that is not a device id', async () => {
    const result = await runCli(['device-token', 'not a device!'], { PLANTWATT_DEVICE_SECRET: SECRET })
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/not a device id/)
  })
})

describe('plantwatt up: refusing bad start-up input', () => {
  it('refuses a plant file with three mistakes, naming each path, before writing anything', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plantwatt-cli-'))
    const plant = examplePlant() as unknown as { sites: Record<string, any>[] }
    plant.sites[0]!.areas[0].lines[1].id = 'Coating 2' // not a valid id
    plant.sites[0]!.areas[0].lines[0].equipment[0].ratedPowerW = -5 // not positive
    plant.sites[0]!.areas[0].lines[1].equipment[0].devices = ['860100000000123'] // used twice
    const file = join(dir, 'plant.json')
    await writeFile(file, JSON.stringify(plant))
    const dataDir = join(dir, 'data')

    const result = await runCli(['up', '--plant', file, '--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0'])
    expect(result.code).not.toBe(0)
    const paths = ['sites[0].areas[0].lines[1].id', 'sites[0].areas[0].lines[0].equipment[0].ratedPowerW']
    for (const path of paths) expect(result.stderr).toContain(path)
    expect(result.stderr).toMatch(/sites\[0\]\.areas\[0\]\.lines\[1\]\.equipment\[0\]\.devices\[0\]/)
    expect(result.stderr.split('\n').filter((line) => /^\s+sites\[/.test(line))).toHaveLength(3)
    // Nothing was written or bound.
    expect(existsSync(dataDir)).toBe(false)
    expect(result.stdout).not.toContain('listening')
  })

  it('refuses a bad port from the flag and from the environment', async () => {
    const flag = await runCli(['up', '--http-port', '99999'])
    expect(flag.code).not.toBe(0)
    expect(flag.stderr).toMatch(/"99999" is not a port/)
    const env = await runCli(['up'], { PLANTWATT_MQTT_PORT: 'abc' })
    expect(env.code).not.toBe(0)
    expect(env.stderr).toMatch(/"abc" is not a port/)
  })

  it('refuses an instance id that cannot be part of an MQTT client id, from the flag and the environment', async () => {
    const flag = await runCli(['processor', '--instance-id', 'a/b', '--broker', 'mqtt://127.0.0.1:1'])
    expect(flag.code).not.toBe(0)
    expect(flag.stderr).toMatch(/"a\/b" is not an instance id/)
    const env = await runCli(['gateway', '--broker', 'mqtt://127.0.0.1:1'], { PLANTWATT_INSTANCE_ID: 'x'.repeat(41) })
    expect(env.code).not.toBe(0)
    expect(env.stderr).toMatch(/is not an instance id/)
  })
})

describe('plantwatt plant generate', () => {
  it('prints a valid plant with the asked number of devices, the same for the same seed', async () => {
    const first = await runCli(['plant', 'generate', '--devices', '120', '--seed', '7'])
    const second = await runCli(['plant', 'generate', '--devices', '120', '--seed', '7'])
    expect(first.code).toBe(0)
    expect(first.stdout).toBe(second.stdout)
    const validation = validatePlant(JSON.parse(first.stdout))
    expect(validation.ok).toBe(true)
    if (!validation.ok) return
    const site = validation.plant.sites[0]!
    const devices =
      site.areas.flatMap((a) => a.lines.flatMap((l) => l.equipment.flatMap((e) => e.devices))).length +
      (site.meters?.pv?.length ?? 0) +
      (site.meters?.grid?.length ?? 0)
    expect(devices).toBe(120)
  })
})

describe('plantwatt simulate', () => {
  it('records a run at full speed without a broker, with its ground truth and a JSON summary', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plantwatt-cli-'))
    const generated = await runCli(['plant', 'generate', '--devices', '40', '--seed', '5'])
    const plantFile = join(dir, 'plant.json')
    await writeFile(plantFile, generated.stdout)
    const record = join(dir, 'run.ndjson.gz')
    const truth = join(dir, 'truth.json')
    const args = ['simulate', '--plant', plantFile, '--speed', 'max', '--duration', '5m', '--broker', 'none']
    const result = await runCli([...args, '--record', record, '--truth', truth, '--start', '2025-03-04T02:00:00Z'])
    expect(result.code).toBe(0)
    const summary = JSON.parse(result.stdout)
    expect(summary).toMatchObject({ command: 'simulate', devices: 40, speed: 'max', record: { file: record } })
    expect(summary.simulated.start).toBe('2025-03-04T02:00:00.000Z')
    expect(summary.record.messages).toBeGreaterThan(40 * 60)
    const truthJson = JSON.parse(await readFile(truth, 'utf8'))
    expect(truthJson.equipment.length).toBeGreaterThan(0)
    expect(truthJson.untilS).toBeGreaterThanOrEqual(Date.UTC(2025, 2, 4, 2, 5) / 1000 - 1)
  })

  it('refuses a bad speed and an unknown fault preset', async () => {
    const badSpeed = await runCli(['simulate', '--speed', 'fast', '--duration', '1m', '--broker', 'none'])
    expect(badSpeed.code).not.toBe(0)
    expect(badSpeed.stderr).toMatch(/fast/)
    const badFaults = await runCli(['simulate', '--faults', 'sometimes', '--duration', '1m', '--broker', 'none'])
    expect(badFaults.code).not.toBe(0)
    expect(badFaults.stderr).toMatch(/sometimes/)
  })
})

describe('plantwatt plant schema', () => {
  it('prints the JSON Schema of plant.json that generated plants validate against', async () => {
    const result = await runCli(['plant', 'schema'])
    expect(result.code).toBe(0)
    const schema = JSON.parse(result.stdout)
    expect(schema).toEqual(plantJsonSchema())
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema')
    expect(schema.properties.sites.items.properties.areas).toBeDefined()
  })
})

// CONTRACT.md §8: every option also reads an environment variable.
describe('plantwatt simulate and plant generate: options from the environment', () => {
  it('plant generate reads --devices and --seed from PLANTWATT_DEVICES and PLANTWATT_SEED', async () => {
    const byFlag = await runCli(['plant', 'generate', '--devices', '60', '--seed', '9'])
    const byEnv = await runCli(['plant', 'generate'], { PLANTWATT_DEVICES: '60', PLANTWATT_SEED: '9' })
    expect(byEnv.stderr).toBe('')
    expect(byEnv.code).toBe(0)
    expect(byEnv.stdout).toBe(byFlag.stdout)
    const bad = await runCli(['plant', 'generate'], { PLANTWATT_DEVICES: 'many' })
    expect(bad.code).not.toBe(0)
    expect(bad.stderr).toMatch(/"many" is not a whole number/)
  })

  it('simulate reads --record, --duration and --faults from the environment', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plantwatt-simulate-env-'))
    const record = join(dir, 'run.ndjson.gz')
    const result = await runCli(['simulate', '--broker', 'none', '--speed', 'max', '--devices', '10'], {
      PLANTWATT_RECORD: record,
      PLANTWATT_DURATION: '2m',
      PLANTWATT_FAULTS: 'none',
      PLANTWATT_DATA_DIR: join(dir, 'data'),
    })
    expect(result.stderr).not.toMatch(/error/i)
    expect(result.code).toBe(0)
    expect(existsSync(record)).toBe(true)
    const summary = JSON.parse(result.stdout)
    expect(summary.simulated.seconds).toBe(120)
    // The default preset is nbiot; PLANTWATT_FAULTS=none leaves every fault off.
    expect(summary.faults).toEqual({})
  })
})

describe('plantwatt: every option of every command names its environment variable', () => {
  it('shows an env: PLANTWATT_* for each option in each command help', async () => {
    const commands = [
      ['up'],
      ['broker'],
      ['processor'],
      ['gateway'],
      ['simulate'],
      ['replay'],
      ['device-token'],
      ['plant', 'generate'],
    ]
    // Eight CLI starts under tsx: a few seconds each on a busy CI machine, so side by side.
    const helps = await Promise.all(commands.map((command) => runCli([...command, '--help'])))
    for (const [k, command] of commands.entries()) {
      const help = helps[k]!
      expect(help.code, command.join(' ')).toBe(0)
      // One entry per option: its first line starts with the flag, continuation lines are indented further.
      const entries = help.stdout
        .split('\n')
        .reduce<string[]>((list, line) => {
          if (/^ {2}-/.test(line)) list.push(line)
          else if (/^ {3,}\S/.test(line) && list.length > 0) list[list.length - 1] += ` ${line.trim()}`
          return list
        }, [])
        .filter((entry) => !entry.includes('--help'))
      expect(entries.length, command.join(' ')).toBeGreaterThan(0)
      for (const entry of entries) expect(entry, command.join(' ')).toMatch(/env:\s+PLANTWATT_[A-Z_]+/)
    }
  }, 120_000)
})
