// The breakdown by area and line: one table row per scope, built once per site, whose cells are
// updated in place when that scope's live frame changes. Equipment is never listed here: a plant
// of 40,000 devices would make the table useless and the page slow.

import * as fmt from './format.js'

function cell(row, className) {
  const td = document.createElement('td')
  td.className = className
  row.appendChild(td)
  return td
}

/** Sets text only when it changed: unchanged text costs no layout. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text
}

export class Breakdown {
  constructor(tbody) {
    this.tbody = tbody
    /** @type {Map<string, {row: HTMLTableRowElement, power: HTMLElement, bar: HTMLElement, energy: HTMLElement, co2: HTMLElement, idle: HTMLElement}>} */
    this.rows = new Map()
  }

  /** @param {{scope: string, name: string, level: 'area' | 'line', detail: string}[]} entries in display order */
  build(entries) {
    this.rows.clear()
    const fragment = document.createDocumentFragment()
    for (const entry of entries) {
      const row = document.createElement('tr')
      row.className = entry.level
      row.dataset.scope = entry.scope
      const name = cell(row, 'name')
      name.textContent = entry.name
      name.title = `${entry.scope}${entry.detail ? ` · ${entry.detail}` : ''}`
      const power = cell(row, 'num power')
      const shareCell = cell(row, 'share')
      const bar = document.createElement('span')
      bar.className = 'bar'
      shareCell.appendChild(bar)
      const energy = cell(row, 'num')
      const co2 = cell(row, 'num')
      const idle = cell(row, 'num idle')
      for (const node of [power, energy, co2, idle]) node.textContent = '—'
      this.rows.set(entry.scope, { row, power, bar, energy, co2, idle })
      fragment.appendChild(row)
    }
    this.tbody.replaceChildren(fragment)
  }

  update(scope, figures) {
    const row = this.rows.get(scope)
    if (!row) return
    setText(row.power, fmt.power(figures.powerW))
    setText(row.energy, fmt.energy(figures.energyTodayWh))
    setText(row.co2, fmt.co2(figures.co2TodayG))
    const idle = figures.idle ?? { count: 0, powerW: 0 }
    setText(row.idle, idle.count > 0 ? `${idle.count} · ${fmt.power(idle.powerW)}` : '—')
    row.row.classList.toggle('has-idle', idle.count > 0)
  }

  /** Each row's share of the site's power, as a bar. */
  shares(sitePowerW, powerOf) {
    for (const [scope, row] of this.rows) {
      const ratio = sitePowerW > 0 ? Math.min(1, (powerOf(scope) ?? 0) / sitePowerW) : 0
      const width = `${(ratio * 100).toFixed(1)}%`
      if (row.bar.style.width !== width) row.bar.style.width = width
    }
  }
}
