// What the parts of the engine share (accounting.ts composes them): every site's state and scope
// index, each device's retained readings, the scratch that spreading works in, the counters, the
// state store's port for minutes older than the ring and the snapshot generation.

import type { DeviceInfo, PlantIndex } from '@plantwatt/plant'
import type { AccountingCounters, AccountingOptions } from './accounting-types.ts'
import { DEFAULT_HISTORY_MINUTES } from './bucket-store.ts'
import type { ColdPort } from './cold-minutes.ts'
import { DEFAULT_MAX_POWER_GAP_S, DeviceEnergy, type DeviceSink, EnergyContext } from './device-energy.ts'
import type { OutputMinutes } from './output-minutes.ts'
import { meterLimitW } from './reading-ranges.ts'
import { type ScopeRef, SiteState } from './site-state.ts'
import { MinuteScratch } from './spread.ts'

export class AccountingCore {
  readonly sites = new Map<string, SiteState>()
  /** Per site id, units produced per minute; only for sites whose equipment report `output`. */
  readonly outputs = new Map<string, OutputMinutes>()
  readonly scopes = new Map<string, ScopeRef>()
  readonly devices = new Map<string, DeviceEnergy>()
  readonly scratch = new MinuteScratch()
  readonly context = new EnergyContext(this.scratch)
  readonly maxRetained: number
  readonly counters: AccountingCounters = {
    accepted: 0,
    duplicate: 0,
    too_old: 0,
    out_of_range: 0,
    approximated: 0,
    beyondHistory: 0,
    coldPlaced: 0,
  }
  /**
   * The processor's state store and history store, for minutes older than the ring
   * (cold-minutes.ts); without it their pieces are counted `beyondHistory`.
   */
  cold: ColdPort | undefined
  /** Snapshot generation: changes are tagged with it, snapshot() moves it on. */
  generation = 0

  constructor(plant: PlantIndex, options: AccountingOptions) {
    const history = options.historyMinutes ?? DEFAULT_HISTORY_MINUTES
    if (!Number.isInteger(history) || history < 1441) throw new RangeError('historyMinutes must be an integer ≥ 1441')
    this.context.maxPowerGapS = options.maxPowerGapS ?? DEFAULT_MAX_POWER_GAP_S
    this.maxRetained = options.maxRetained ?? 65_536
    for (const [id, info] of plant.sites) {
      const site = new SiteState(info, history, options.retentionS, meterLimitW(info))
      this.sites.set(id, site)
      for (const ref of site.refs) this.scopes.set(ref.scope, ref)
    }
  }

  deviceOf(device: DeviceInfo): DeviceEnergy {
    let dev = this.devices.get(device.deviceId)
    if (dev === undefined) {
      const sink: DeviceSink =
        device.role === 'equipment' && device.equipment
          ? { kind: 'equipment', eq: device.equipment.index }
          : device.role === 'grid'
            ? { kind: 'grid' }
            : { kind: 'pv' }
      dev = new DeviceEnergy(device.deviceId, sink)
      this.devices.set(device.deviceId, dev)
    }
    return dev
  }
}
