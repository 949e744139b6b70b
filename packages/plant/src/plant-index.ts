import type { Equipment, PlantModel, Site } from '@plantwatt/contract'
import { SITE_DEFAULTS } from '@plantwatt/contract'

export type ScopeLevel = 'site' | 'area' | 'line' | 'equipment'

/** One place in the plant tree (CONTRACT.md §1 `scope`). */
export interface ScopeNode {
  scope: string
  level: ScopeLevel
  id: string
  name: string
  siteId: string
  parent: ScopeNode | undefined
  children: ScopeNode[]
  /** Every equipment at or below this node, so roll-ups need no tree walk per reading. */
  equipment: EquipmentNode[]
}

export interface EquipmentNode extends ScopeNode {
  level: 'equipment'
  spec: Equipment
  /** This equipment's scope and its line's, area's and site's, nearest first. */
  ancestors: ScopeNode[]
  /** Position in its site's equipment list, for typed-array state. */
  index: number
}

export type DeviceRole = 'equipment' | 'pv' | 'grid'

export interface DeviceInfo {
  deviceId: string
  siteId: string
  role: DeviceRole
  /** The equipment the device belongs to; undefined for site meters. */
  equipment: EquipmentNode | undefined
}

export interface SiteInfo {
  node: ScopeNode
  spec: Site
  latenessS: number
  offlineAfterS: number
  maxAgeS: number
  equipment: EquipmentNode[]
  /** Every scope of the site, the site itself first. */
  scopes: ScopeNode[]
}

export function isEquipment(node: ScopeNode): node is EquipmentNode {
  return node.level === 'equipment'
}

/**
 * The plant model indexed for the per-reading path: device → equipment → scopes are map
 * look-ups, never searches. Built once at start-up from a validated plant model.
 */
export class PlantIndex {
  readonly sites = new Map<string, SiteInfo>()
  readonly scopes = new Map<string, ScopeNode>()
  readonly devices = new Map<string, DeviceInfo>()

  constructor(readonly model: PlantModel) {
    for (const site of model.sites) this.addSite(site)
  }

  scope(scope: string): ScopeNode | undefined {
    return this.scopes.get(scope)
  }

  device(deviceId: string): DeviceInfo | undefined {
    return this.devices.get(deviceId)
  }

  private addSite(site: Site): void {
    const siteNode = this.node('site', site.id, site.name, site.id, undefined)
    const info: SiteInfo = {
      node: siteNode,
      spec: site,
      latenessS: site.latenessS ?? SITE_DEFAULTS.latenessS,
      offlineAfterS: site.offlineAfterS ?? SITE_DEFAULTS.offlineAfterS,
      maxAgeS: site.maxAgeS ?? SITE_DEFAULTS.maxAgeS,
      equipment: [],
      scopes: [],
    }
    this.sites.set(site.id, info)
    info.scopes.push(siteNode)
    for (const deviceId of site.meters?.pv ?? []) this.addDevice(deviceId, site.id, 'pv', undefined)
    for (const deviceId of site.meters?.grid ?? []) this.addDevice(deviceId, site.id, 'grid', undefined)
    for (const area of site.areas) {
      const areaNode = this.node('area', area.id, area.name, site.id, siteNode)
      for (const line of area.lines) {
        const lineNode = this.node('line', line.id, line.name, site.id, areaNode)
        for (const spec of line.equipment) {
          const node = this.node('equipment', spec.id, spec.name, site.id, lineNode) as EquipmentNode
          node.spec = spec
          node.index = info.equipment.length
          node.ancestors = [node, lineNode, areaNode, siteNode]
          for (const scope of node.ancestors) scope.equipment.push(node)
          info.equipment.push(node)
          for (const deviceId of spec.devices) this.addDevice(deviceId, site.id, 'equipment', node)
        }
      }
    }
  }

  private node(level: ScopeLevel, id: string, name: string | undefined, siteId: string, parent?: ScopeNode) {
    const scope = parent ? `${parent.scope}/${id}` : id
    const node: ScopeNode = { scope, level, id, name: name ?? id, siteId, parent, children: [], equipment: [] }
    parent?.children.push(node)
    this.scopes.set(scope, node)
    this.sites.get(siteId)?.scopes.push(node)
    return node
  }

  private addDevice(deviceId: string, siteId: string, role: DeviceRole, equipment: EquipmentNode | undefined) {
    this.devices.set(deviceId, { deviceId, siteId, role, equipment })
  }
}

/** True when `scope` is `within` itself or lies below it in the tree (`a/b` is within `a`). */
export function isWithinScope(scope: string, within: string): boolean {
  return scope === within || (scope.length > within.length && scope.startsWith(within) && scope[within.length] === '/')
}
