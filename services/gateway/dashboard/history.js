// The history view (issue 17): a day, week, month or year of one scope, local to the site, with
// previous/next; energy and idle energy, both CO2 figures, and the 15-minute demand with the
// month's peak, from GET /api/v1/energy; the scope's children with their share of the period,
// a click on one drilling down (site → area → line → equipment) and a breadcrumb back up. The
// selection lives in the URL hash, so a reload or a shared link shows the same figures.

import * as fmt from './format.js'
import { hashOf, readHash } from './hash.js'
import { DemandChart, SlotChart } from './history-chart.js'
import { bucketsBySlot, demandOf, monthsAround, peakOf, slotsOf, totalsOf } from './history-data.js'
import { civilOf, formatDate, periodOf, shiftDate } from './range.js'

/** Children whose figures are fetched; past this the rest are listed without them. */
const MAX_CHILDREN = 48
/** Requests in flight at once: the gateway allows 1,200 a minute per token. */
const CONCURRENCY = 4
/** While the period holds the site clock its figures grow: reloaded this often. */
const REFRESH_MS = 60_000
/** …and when the site clock has moved this far since the last load, but not more often than: */
const QUARTER_MS = 15 * 60_000
const MIN_RELOAD_MS = 5_000

const $ = (id) => document.getElementById(id)

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text
}

/** Runs `task` over `items` with at most `limit` in flight; results in the items' order. */
async function pooled(items, limit, task) {
  const results = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      results[i] = await task(items[i])
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

export class HistoryView {
  /**
   * @param {object} context
   * @param {() => import('./api.js').Api} context.api
   * @param {() => number | undefined} context.clock the site clock (ms), for "today"
   * @param {(scope: string) => {scope: string, name: string, level: string}[]} context.childrenOf
   * @param {(scope: string) => string} context.nameOf
   * @param {(scope: string, period: object) => void} context.onChange the selection changed
   */
  constructor(context) {
    this.context = context
    this.site = undefined
    this.siteTime = undefined
    this.timeZone = undefined
    this.scope = undefined
    this.kind = 'day'
    this.date = undefined
    /** Bumped per load: answers of an older selection are dropped. */
    this.generation = 0
    this.timer = undefined
    /** Site clock and wall time of the latest load. */
    this.loadedAt = undefined
    /** True while no period was picked: the view follows the site clock's day. */
    this.followsClock = true
    /** The latest answers, drawn again when the width changes. */
    this.answers = undefined
    this.root = $('history')
    this.energyChart = new SlotChart($('history-energy'), {
      series: [
        { label: 'energy', className: 'energy', value: (b) => b.energyWh },
        { label: 'idle', className: 'idle', value: (b) => b.idleWh },
      ],
      format: fmt.energy,
      overlay: true,
    })
    this.co2Chart = new SlotChart($('history-co2'), {
      series: [
        { label: 'CO₂ location-based', className: 'co2', value: (b) => b.co2G },
        { label: 'CO₂ market-based', className: 'co2-market', value: (b) => b.co2MarketG },
      ],
      format: fmt.co2,
    })
    this.demandChart = new DemandChart($('history-demand'), fmt.powerKW)
    for (const button of this.root.querySelectorAll('[data-range]')) {
      button.addEventListener('click', () => this.select({ kind: button.dataset.range }))
    }
    $('history-prev').addEventListener('click', () => this.select({ date: shiftDate(this.kind, this.date, -1) }))
    $('history-next').addEventListener('click', () => this.select({ date: shiftDate(this.kind, this.date, 1) }))
    window.addEventListener('hashchange', () => {
      if (this.site && location.hash !== this.hash()) this.fromHash()
    })
  }

  /** A site was opened: the hash's selection where it names this site, else today's day of it. */
  open(site, siteTime) {
    this.site = site
    this.siteTime = siteTime
    this.timeZone = site.timezone
    this.fromHash()
  }

  close() {
    this.site = undefined
    this.answers = undefined
    this.generation++
    clearTimeout(this.timer)
  }

  fromHash() {
    const wanted = readHash(location.hash)
    const inSite = wanted.scope === this.site.scope || wanted.scope?.startsWith(`${this.site.scope}/`)
    this.scope = inSite && this.context.nameOf(wanted.scope) !== undefined ? wanted.scope : this.site.scope
    this.kind = wanted.range ?? 'day'
    this.date = wanted.at ?? civilOf(this.context.clock() ?? Date.now(), this.timeZone)
    this.followsClock = wanted.at === undefined
    this.load()
  }

  /**
   * The site clock moved. Until someone picks a period, the view shows the site's own today: a
   * plant replaying a recording, or whose clock is a day off the browser's, shows its figures.
   */
  clockMoved(clock) {
    if (!this.site || clock === undefined) return
    const period = this.period
    if (clock >= period.from && clock < period.to) {
      // The period being shown grows: loaded again once a quarter hour more of it has passed
      // (a replay at full speed moves the clock far faster than REFRESH_MS).
      const loaded = this.loadedAt
      if (loaded && clock - loaded.clock >= QUARTER_MS && Date.now() - loaded.wall >= MIN_RELOAD_MS) this.load()
      return
    }
    if (!this.followsClock) return
    this.date = civilOf(clock, this.timeZone)
    this.load()
  }

  select({ kind = this.kind, date, scope = this.scope }) {
    if (date) this.followsClock = false
    this.kind = kind
    this.date = date ?? this.date
    this.scope = scope
    history.replaceState(null, '', this.hash())
    this.load()
  }

  get period() {
    return periodOf(this.kind, this.date, this.timeZone)
  }

  hash() {
    return hashOf({ range: this.kind, at: formatDate(this.period.date), scope: this.scope })
  }

  async load() {
    clearTimeout(this.timer)
    this.loadedAt = { clock: this.context.clock() ?? 0, wall: Date.now() }
    const generation = ++this.generation
    const { scope, kind } = this
    const period = this.period
    if (location.hash !== this.hash()) history.replaceState(null, '', this.hash())
    this.renderHead(period)
    Object.assign(this.root.dataset, {
      state: 'loading',
      scope,
      range: kind,
      from: String(period.from),
      to: String(period.to),
      step: period.step,
    })
    this.context.onChange(scope, period)
    const api = this.context.api()
    const energy = (target, step, from, to) => api.get('/api/v1/energy', { scope: target, step, from, to })
    const children = this.context.childrenOf(scope)
    try {
      const [rows, demandMonths, childRows, report] = await Promise.all([
        energy(scope, period.step, period.from, period.to),
        // Whole months, so that the month's peak is the month's even when a day is shown.
        pooled(monthsAround(period, this.timeZone), CONCURRENCY, (month) =>
          energy(scope, '15m', month.from, month.to).then((rows15) => ({ ...month, rows: rows15 })),
        ),
        // A child the token may not see (403) or that fails is listed without figures.
        pooled(children.slice(0, MAX_CHILDREN), CONCURRENCY, (child) =>
          energy(child.scope, period.step, period.from, period.to).catch(() => undefined),
        ),
        // The figures the buckets alone do not give (PV share, energy per unit, the period
        // before); the view stands without them.
        api.get('/api/v1/reports', { scope, period: kind, at: period.from }).catch(() => undefined),
      ])
      if (generation !== this.generation) return
      this.render(period, rows, demandMonths, children, childRows, report)
      this.root.dataset.state = 'ready'
      setText($('history-note'), '')
    } catch (error) {
      if (generation !== this.generation) return
      // A token scoped below this scope sees the way down to its own (CONTRACT.md §4): where the
      // way is one child, go down it rather than show the 403.
      const only = children.length === 1 ? children[0] : undefined
      if (error.status === 403 && only) {
        this.select({ scope: only.scope })
        return
      }
      this.root.dataset.state = 'error'
      setText($('history-note'), `History not available: ${error.message}`)
    }
    const clock = this.context.clock()
    if (clock !== undefined && clock >= period.from && clock < period.to) {
      this.timer = setTimeout(() => this.load(), REFRESH_MS)
    }
  }

  renderHead(period) {
    for (const button of this.root.querySelectorAll('[data-range]')) {
      button.setAttribute('aria-pressed', String(button.dataset.range === this.kind))
    }
    setText($('history-label'), this.label(period))
    const clock = this.context.clock() ?? Date.now()
    $('history-next').disabled = period.to > clock
    this.renderCrumbs()
  }

  label(period) {
    const zone = this.timeZone ? { timeZone: this.timeZone } : {}
    const at = period.from
    if (this.kind === 'day') {
      return new Intl.DateTimeFormat(undefined, {
        ...zone,
        weekday: 'short',
        day: 'numeric',
        month: 'short',
        year: 'numeric',
      }).format(at)
    }
    if (this.kind === 'week') {
      const last = new Intl.DateTimeFormat(undefined, { ...zone, day: 'numeric', month: 'short', year: 'numeric' })
      const first = new Intl.DateTimeFormat(undefined, { ...zone, day: 'numeric', month: 'short' })
      return `${first.format(at)} – ${last.format(period.to - 1)}`
    }
    if (this.kind === 'month')
      return new Intl.DateTimeFormat(undefined, { ...zone, month: 'long', year: 'numeric' }).format(at)
    return new Intl.DateTimeFormat(undefined, { ...zone, year: 'numeric' }).format(at)
  }

  /** Site › area › line › equipment: every level above the selection is a way back up. */
  renderCrumbs() {
    const nav = $('history-crumbs')
    const parts = this.scope.split('/')
    const nodes = parts.map((_, i) => {
      const scope = parts.slice(0, i + 1).join('/')
      const name = this.context.nameOf(scope) ?? parts[i]
      if (i === parts.length - 1) {
        const current = document.createElement('span')
        current.className = 'crumb current'
        current.dataset.scope = scope
        current.setAttribute('aria-current', 'location')
        current.textContent = name
        return current
      }
      const button = document.createElement('button')
      button.type = 'button'
      button.className = 'crumb quiet'
      button.dataset.scope = scope
      button.textContent = name
      button.addEventListener('click', () => this.select({ scope }))
      return button
    })
    nav.replaceChildren(...nodes)
  }

  render(period, rows, demandMonths, children, childRows, report) {
    this.answers = [period, rows, demandMonths, children, childRows, report]
    const slots = slotsOf(period, this.timeZone)
    const bySlot = bucketsBySlot(rows, slots)
    const nameOf = (slot, short) => this.slotName(slot.from, short)
    this.energyChart.render(slots, (slot) => bySlot.get(slot.from), nameOf)
    this.co2Chart.render(slots, (slot) => bySlot.get(slot.from), nameOf)
    this.renderTotals(totalsOf(rows), report)
    this.renderDemand(period, slots, demandMonths)
    this.renderChildren(children, childRows)
  }

  /** Axis labels (short) and titles of a slot starting at `t`. */
  slotName(t, short) {
    const zone = this.timeZone ? { timeZone: this.timeZone } : {}
    const options =
      this.kind === 'day'
        ? { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }
        : this.kind === 'year'
          ? { month: 'short', ...(short ? {} : { year: 'numeric' }) }
          : short
            ? { day: 'numeric', ...(this.kind === 'week' ? { weekday: 'short' } : {}) }
            : { weekday: 'short', day: 'numeric', month: 'short' }
    const text = new Intl.DateTimeFormat(undefined, { ...zone, ...options }).format(t)
    return this.kind === 'day' && !short ? `${this.siteTime.day.format(t)} ${text}` : text
  }

  renderTotals(totals, report) {
    const put = (id, text) => setText($(id).querySelector('.value'), text)
    put('history-total-energy', fmt.energy(totals.energyWh))
    put('history-total-co2', fmt.co2(totals.co2G))
    put('history-total-co2-market', fmt.co2(totals.co2MarketG))
    const idleShare = totals.energyWh > 0 ? ` (${fmt.share(totals.idleWh / totals.energyWh)})` : ''
    put('history-total-idle', `${fmt.energy(totals.idleWh)}${idleShare}`)
    const savedWh = totals.savedWh ?? report?.savedWh
    put('history-total-saved', typeof savedWh === 'number' ? fmt.energy(savedWh) : '—')
    put('history-total-pv', typeof report?.pvShare === 'number' ? fmt.share(report.pvShare) : '—')
    put('history-total-per-unit', typeof report?.whPerUnit === 'number' ? `${fmt.energy(report.whPerUnit)}/unit` : '—')
    const before = report?.previous?.energyWh
    setText(
      $('history-vs-previous'),
      typeof before === 'number' && before > 0
        ? `${totals.energyWh >= before ? '+' : '−'}${fmt.share(Math.abs(totals.energyWh / before - 1))} on the ${this.kind} before`
        : '',
    )
    $('history-total-energy').dataset.value = String(totals.energyWh)
  }

  renderDemand(period, slots, demandMonths) {
    const peaks = []
    const points = []
    for (const month of demandMonths) {
      const demand = demandOf(month.rows)
      const peak = peakOf(demand, month.from, month.to)
      if (peak) {
        peaks.push({
          from: Math.max(month.from, period.from),
          to: Math.min(month.to, period.to),
          kW: peak.kW,
          t: peak.t,
        })
      }
      // The interval the site clock is in is still filling: its average so far would read as a drop.
      const open = this.context.clock() ?? Number.POSITIVE_INFINITY
      for (const point of demand) {
        if (point.t >= period.from && point.t < period.to && point.t + QUARTER_MS <= open) points.push(point)
      }
    }
    const ticks = period.byMonth
      ? slots.map((slot) => ({ t: slot.from, label: this.slotName(slot.from, true) }))
      : this.kind === 'day'
        ? slots.filter((_, i) => i % 3 === 0).map((slot) => ({ t: slot.from, label: this.slotName(slot.from, true) }))
        : slots
            .filter((_, i) => this.kind === 'week' || i % 5 === 0)
            .map((slot) => ({ t: slot.from, label: this.slotName(slot.from, true) }))
    const when = (t) => `${this.siteTime.day.format(t)} ${this.siteTime.minute.format(t)}`
    this.demandChart.render(points, period.from, period.to, peaks, ticks, when)
    const last = peaks.at(-1)
    setText(
      $('history-peak'),
      last ? `Month's peak ${fmt.powerKW(last.kW)} at ${when(last.t)}` : 'No 15-minute interval in this period',
    )
  }

  renderChildren(children, childRows) {
    const table = $('history-children-table')
    table.hidden = children.length === 0
    const totals = childRows.map((rows) => (Array.isArray(rows) ? totalsOf(rows) : undefined))
    const sum = totals.reduce((all, t) => all + (t?.energyWh ?? 0), 0)
    const body = document.createDocumentFragment()
    children.forEach((child, i) => {
      const row = document.createElement('tr')
      row.dataset.scope = child.scope
      row.className = child.level
      const name = document.createElement('td')
      const button = document.createElement('button')
      button.type = 'button'
      button.className = 'drill quiet'
      button.textContent = child.name
      button.title = `Show ${child.scope}`
      button.addEventListener('click', () => this.select({ scope: child.scope }))
      name.appendChild(button)
      row.appendChild(name)
      const figures = totals[i]
      const cell = (text, className = 'num') => {
        const td = document.createElement('td')
        td.className = className
        td.textContent = text
        row.appendChild(td)
        return td
      }
      cell(figures ? fmt.energy(figures.energyWh) : '—').dataset.value = figures ? String(figures.energyWh) : ''
      const share = cell('', 'share')
      const bar = document.createElement('span')
      bar.className = 'bar'
      bar.style.width = figures && sum > 0 ? `${((figures.energyWh / sum) * 100).toFixed(1)}%` : '0%'
      share.appendChild(bar)
      cell(figures ? fmt.co2(figures.co2G) : '—')
      cell(figures ? fmt.co2(figures.co2MarketG) : '—')
      cell(figures ? fmt.energy(figures.idleWh) : '—')
      body.appendChild(row)
    })
    $('history-children').replaceChildren(body)
    setText(
      $('history-children-note'),
      children.length > MAX_CHILDREN ? `Figures of the first ${MAX_CHILDREN} of ${children.length}.` : '',
    )
  }

  /** The charts' width changed: drawn again from the answers held. */
  resize() {
    if (this.site && this.answers) this.render(...this.answers)
  }
}
