import type { LiveFigures } from '@plantwatt/contract'
import { gridIntensityAt } from './local-time.ts'
import type { DeviceInfo, EquipmentNode, PlantIndex, ScopeNode } from './plant-index.ts'

function roundTenth(value: number): number {
  return Math.round(value * 10) / 10
}

export type EquipmentState = 'off' | 'idle' | 'running' | 'unknown'

interface DeviceLatest {
  timeS: number
  powerW: number
}

/**
 * Latest power per device and its roll-up to every scope, on event time (CONTRACT.md §5 `live`,
 * §7). Pure: the caller passes each reading with its own timestamp; nothing here reads a clock.
 *
 * Roll-ups are recomputed from the equipment values for the scopes that changed, rather than
 * kept as running sums, so that floating-point drift can never creep into a site's total.
 */
export class LiveState {
  private readonly latestByDevice = new Map<string, DeviceLatest>()
  private readonly equipmentPowerW = new Map<EquipmentNode, number>()
  private readonly siteClockS = new Map<string, number>()
  private readonly dirtyEquipment = new Set<EquipmentNode>()
  private readonly dirtySites = new Set<string>()

  constructor(private readonly plant: PlantIndex) {}

  /** The site clock in epoch seconds: the latest reading time accepted from its devices. */
  siteClock(siteId: string): number | undefined {
    return this.siteClockS.get(siteId)
  }

  /** Advances the site clock with an accepted reading's time. */
  observeTime(siteId: string, timeS: number): void {
    const current = this.siteClockS.get(siteId)
    if (current === undefined || timeS > current) {
      this.siteClockS.set(siteId, timeS)
      this.dirtySites.add(siteId)
    }
  }

  /**
   * Applies a power reading. Only the newest reading by event time counts as "latest", so a
   * batch uploaded late by a sleeping device never overwrites a fresher value.
   */
  applyPower(device: DeviceInfo, timeS: number, powerW: number): void {
    const latest = this.latestByDevice.get(device.deviceId)
    if (latest !== undefined && timeS < latest.timeS) return
    if (latest === undefined) this.latestByDevice.set(device.deviceId, { timeS, powerW })
    else {
      latest.timeS = timeS
      latest.powerW = powerW
    }
    const equipment = device.equipment
    if (equipment === undefined) return
    let sum = 0
    for (const deviceId of equipment.spec.devices) sum += this.latestByDevice.get(deviceId)?.powerW ?? 0
    this.equipmentPowerW.set(equipment, sum)
    this.dirtyEquipment.add(equipment)
  }

  /** Marks an equipment's figures (and its scopes') as changed by a reading other than power. */
  touch(equipment: EquipmentNode): void {
    this.dirtyEquipment.add(equipment)
  }

  devicePower(deviceId: string): DeviceLatest | undefined {
    return this.latestByDevice.get(deviceId)
  }

  equipmentPower(equipment: EquipmentNode): number | undefined {
    return this.equipmentPowerW.get(equipment)
  }

  /** off / idle / running from the plant model's thresholds; unknown without power or thresholds. */
  equipmentState(equipment: EquipmentNode): EquipmentState {
    const powerW = this.equipmentPowerW.get(equipment)
    const idle = equipment.spec.idle
    if (powerW === undefined || idle === undefined) return 'unknown'
    if (powerW < idle.offBelowW) return 'off'
    if (powerW < idle.runAboveW) return 'idle'
    return 'running'
  }

  figures(node: ScopeNode): LiveFigures {
    const clockS = this.siteClockS.get(node.siteId)
    const at = clockS === undefined ? null : Math.round(clockS * 1000)
    let powerW = 0
    let idleCount = 0
    let idlePowerW = 0
    for (const equipment of node.equipment) {
      const power = this.equipmentPowerW.get(equipment) ?? 0
      powerW += power
      if (this.equipmentState(equipment) === 'idle') {
        idleCount++
        idlePowerW += power
      }
    }
    return {
      scope: node.scope,
      at,
      // Sums of readings at 0.1 W resolution, shown at that resolution (no float noise).
      powerW: roundTenth(powerW),
      // Energy, carbon and demand accounting arrive with the event-time engine (issue 5);
      // until then these stand at zero rather than at an invented figure.
      energyTodayWh: 0,
      co2TodayG: 0,
      co2MarketTodayG: 0,
      gridGPerKWh: this.siteGridIntensity(node.siteId),
      pvShare: 0,
      idle: { count: idleCount, powerW: roundTenth(idlePowerW) },
      demand: null,
    }
  }

  /**
   * What changed since the last call, and forgets it: the sites whose clock moved, and per site
   * the scopes whose figures may differ. The clock is published per site rather than per scope,
   * so that time passing does not resend every scope of a 40,000-device plant each second.
   */
  takeChanges(): { sites: Set<string>; scopes: Map<string, ScopeNode[]> } {
    const scopes = new Map<string, ScopeNode[]>()
    const seen = new Set<ScopeNode>()
    for (const equipment of this.dirtyEquipment) {
      let list = scopes.get(equipment.siteId)
      if (!list) {
        list = []
        scopes.set(equipment.siteId, list)
      }
      for (const scope of equipment.ancestors) {
        if (seen.has(scope)) continue
        seen.add(scope)
        list.push(scope)
      }
    }
    const sites = new Set(this.dirtySites)
    for (const siteId of scopes.keys()) sites.add(siteId)
    this.dirtySites.clear()
    this.dirtyEquipment.clear()
    return { sites, scopes }
  }

  /** Grid intensity in force at the site clock (gCO2e/kWh), 0 before the first reading. */
  siteGridIntensity(siteId: string): number {
    const site = this.plant.sites.get(siteId)
    const clockS = this.siteClockS.get(siteId)
    if (!site || clockS === undefined) return 0
    return gridIntensityAt(site.spec.carbon?.gridGPerKWh, site.spec.timezone, clockS * 1000)
  }
}
