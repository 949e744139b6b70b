// The operators' dashboard (CONTRACT.md §6 `GET /`, issue 6): asks for a token, learns the site's
// areas and lines from GET /api/v1/plant, and keeps one WebSocket (§5) subscribed to the site's
// live figures, each area's and line's, its alerts, setpoint events and 1-minute buckets. Frames
// only update state and mark what changed; the DOM is written at most once per animation frame.
// Below the live figures: the history view with drill-down and the report download (history.js,
// issue 17), and the setpoint panel (tuning.js, issue 15).

import { Api, ApiError } from './api.js'
import { Breakdown } from './breakdown.js'
import { BucketChart, BucketSeries } from './chart.js'
import { EventBook } from './events.js'
import { AlertFeed, IdleList, SetpointFeed } from './feeds.js'
import * as fmt from './format.js'
import { HistoryView } from './history.js'
import { formatDate } from './range.js'
import { downloadReport } from './report.js'
import { Socket } from './socket.js'
import { TuningPanel } from './tuning.js'

const TOKEN_KEY = 'plantwatt.token'
const SITE_KEY = 'plantwatt.site'
const STEP = '1m'
const STEP_MS = 60_000
/** A day: `up --demo` starts with two days of history (issue 17), and a plant is run by the day. */
const CHART_MS = 24 * 3600_000
const FEED_LIMIT = 200
/** The gateway allows 100 subscriptions per connection; alerts, setpoints and buckets take 3. */
const MAX_LIVE = 96
/** After setpoint events, GET /api/v1/setpoints (savings, status) again at most this often. */
const SETPOINTS_REFRESH_MS = 3000

const $ = (id) => document.getElementById(id)

const openAlert = (alert) => alert.state !== 'cleared'
/** Proposals wait for an operator; every other status is history. */
const openSetpoint = (event) => event.status === 'proposed'

const state = {
  api: undefined,
  /** @type {{scope: string, id: string, name: string, timezone?: string, areas: object[]}[]} */
  sites: [],
  /** Names of every scope, for readable alert places; equipment included, but never rendered as a list. */
  names: new Map(),
  /** Every scope's children (areas, lines, equipment), for the history view's drill-down. */
  children: new Map(),
  /** The tuned equipment of the plant with their tuning as GET /api/v1/plant told it. */
  tuned: [],
  /** A timer while a GET /api/v1/setpoints refresh waits. */
  setpointsRefresh: undefined,
  site: undefined,
  siteTime: new fmt.SiteTime(undefined),
  /** Site clock (ms) from the site's live frames. */
  clock: undefined,
  /** Live subscription id → scope, and scope → latest figures. */
  liveSubs: new Map(),
  live: new Map(),
  /** Live subscriptions the gateway refused on this connection, id → reason. */
  liveErrors: new Map(),
  alerts: new EventBook(FEED_LIMIT, openAlert),
  /** Open idle alerts of the site by id: "idle now" without scanning every alert. */
  openIdle: new Map(),
  setpoints: new EventBook(FEED_LIMIT, openSetpoint),
  buckets: new BucketSeries(STEP_MS, CHART_MS + 3600_000),
  /** Set on each (re)connection: the chart's history is loaded once the site clock is known. */
  historyPending: true,
  /** After a first successful subscription, reconnects resume from the last seq (0: all held). */
  resume: { alerts: false, setpoints: false },
  dirty: { live: new Set(), alerts: false, setpoints: false, chart: false, clock: false },
  scheduled: false,
}

// ---- rendering ------------------------------------------------------------------------------

function schedule() {
  if (state.scheduled) return
  state.scheduled = true
  requestAnimationFrame(render)
}

const where = (scope) => {
  const name = state.names.get(scope) ?? scope.split('/').pop()
  const parent = scope.includes('/') ? scope.slice(0, scope.lastIndexOf('/')) : undefined
  return parent?.includes('/') ? `${name} · ${state.names.get(parent) ?? parent}` : name
}
const feedContext = { where, siteTime: () => state.siteTime, clock: () => state.clock }

const breakdown = new Breakdown($('breakdown-rows'))
const alertFeed = new AlertFeed($('alert-feed'), feedContext, acknowledge)
const setpointFeed = new SetpointFeed($('setpoint-feed'), feedContext)
const tuningPanel = new TuningPanel($('tuning-list'), $('tuning-more'), feedContext, actOnSetpoint)
const historyView = new HistoryView({
  api: () => state.api,
  clock: () => state.clock,
  childrenOf: (scope) => state.children.get(scope) ?? [],
  nameOf: (scope) => state.names.get(scope),
  onChange: () => setText($('report-note'), ''),
})
const idleList = new IdleList($('idle-list'), $('idle-more'), feedContext)
const chartReadout = (id) => (text) => {
  $(id).textContent = text
}
const powerChart = new BucketChart($('chart-power'), {
  series: [
    { label: 'power', kind: 'area', className: 'power', value: (b) => (b.energyWh * 3_600_000) / STEP_MS },
    { label: 'idle', kind: 'area', className: 'idle', value: (b) => (b.idleWh * 3_600_000) / STEP_MS },
    { label: 'peak', kind: 'line', className: 'peak', value: (b) => b.peakW },
  ],
  format: fmt.power,
  onReadout: chartReadout('chart-power-readout'),
})
const co2Chart = new BucketChart($('chart-co2'), {
  series: [
    { label: 'location', kind: 'line', className: 'co2', value: (b) => b.co2G },
    { label: 'market', kind: 'line', className: 'co2-market', value: (b) => b.co2MarketG },
  ],
  format: fmt.co2,
  onReadout: chartReadout('chart-co2-readout'),
})

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text
}

function renderSite(figures) {
  const kpi = (id, value) => setText($(id).querySelector('.value'), value)
  kpi('kpi-power', fmt.power(figures.powerW))
  kpi('kpi-energy', fmt.energy(figures.energyTodayWh))
  kpi('kpi-co2', fmt.co2(figures.co2TodayG))
  kpi('kpi-co2-market', fmt.co2(figures.co2MarketTodayG))
  kpi('kpi-grid', fmt.intensity(figures.gridGPerKWh))
  kpi('kpi-pv', fmt.share(figures.pvShare))
  const idle = figures.idle ?? { count: 0, powerW: 0 }
  kpi('kpi-idle', `${idle.count} · ${fmt.power(idle.powerW)}`)
  $('kpi-idle').classList.toggle('warn', idle.count > 0)
  renderDemand(figures.demand)
}

function renderDemand(demand) {
  const panel = $('demand')
  panel.classList.toggle('empty', !demand)
  if (!demand) return
  const { kW, forecastKW, monthPeakKW, intervalStart } = demand
  setText($('demand-now'), fmt.powerKW(kW))
  setText($('demand-forecast'), fmt.powerKW(forecastKW))
  setText($('demand-peak'), monthPeakKW > 0 ? fmt.powerKW(monthPeakKW) : '—')
  const from = state.siteTime.minute.format(intervalStart)
  const to = state.siteTime.minute.format(intervalStart + 15 * 60_000)
  setText($('demand-interval'), `${from}–${to}`)
  const scale = Math.max(kW, forecastKW, monthPeakKW, 1) * 1.1
  const percent = (value) => `${((value / scale) * 100).toFixed(1)}%`
  $('demand-fill').style.width = percent(kW)
  $('demand-forecast-mark').style.left = percent(forecastKW)
  $('demand-peak-mark').style.left = percent(monthPeakKW)
  $('demand-peak-mark').hidden = monthPeakKW <= 0
  const over = monthPeakKW > 0 && forecastKW > monthPeakKW
  panel.classList.toggle('over', over)
  setText(
    $('demand-status'),
    monthPeakKW <= 0
      ? 'No completed interval this month yet'
      : over
        ? `Forecast ${fmt.powerKW(forecastKW - monthPeakKW)} above the month's peak: a new capacity-charge peak`
        : `${fmt.powerKW(monthPeakKW - forecastKW)} of headroom below the month's peak`,
  )
}

function renderClock() {
  setText(
    $('clock'),
    state.clock === undefined ? 'no readings yet' : `${state.siteTime.stamp(state.clock)} ${state.siteTime.zoneLabel}`,
  )
}

function renderChart() {
  // The minute the site clock is in is still open (its figures so far would read as a drop to
  // zero): the chart ends where it begins.
  const to = Math.floor((state.clock ?? state.buckets.latestT + STEP_MS) / STEP_MS) * STEP_MS
  const from = to - CHART_MS
  const points = state.buckets.range(from, to)
  $('chart-empty').hidden = points.length > 0
  powerChart.render(points, from, to, state.siteTime, STEP_MS)
  co2Chart.render(points, from, to, state.siteTime, STEP_MS)
}

function render() {
  state.scheduled = false
  const { dirty } = state
  if (state.site && dirty.live.size > 0) {
    for (const scope of dirty.live) {
      const figures = state.live.get(scope)
      if (!figures) continue
      if (scope === state.site.scope) renderSite(figures)
      else breakdown.update(scope, figures)
    }
    breakdown.shares(state.live.get(state.site.scope)?.powerW ?? 0, (scope) => state.live.get(scope)?.powerW)
    dirty.live.clear()
  }
  if (dirty.clock) renderClock()
  if (dirty.alerts) alertFeed.render(state.alerts.newest(FEED_LIMIT))
  if (dirty.alerts || dirty.clock) {
    idleList.render(state.openIdle.values())
    setText($('idle-open-count'), String(state.openIdle.size))
  }
  if (dirty.setpoints) {
    const entries = state.setpoints.newest(FEED_LIMIT)
    setpointFeed.render(entries)
    tuningPanel.render()
    $('setpoints-empty').hidden = entries.length > 0
  }
  if (dirty.alerts) $('alerts-empty').hidden = state.alerts.entries.size > 0
  if (dirty.chart || dirty.clock) renderChart()
  dirty.alerts = dirty.setpoints = dirty.chart = dirty.clock = false
}

// ---- frames -----------------------------------------------------------------------------------

function applyAlert(seq, alert) {
  if (!state.alerts.apply(seq, alert)) return
  if (alert.kind === 'idle' && openAlert(alert)) state.openIdle.set(alert.id, alert)
  else state.openIdle.delete(alert.id)
  state.dirty.alerts = true
}

function applySetpoint(seq, event) {
  if (!state.setpoints.apply(seq, event)) return
  tuningPanel.event(event)
  state.dirty.setpoints = true
  refreshSetpointsSoon()
}

/** Savings and status are in GET /api/v1/setpoints only: fetched again a little after events. */
function refreshSetpointsSoon() {
  if (state.setpointsRefresh !== undefined) return
  state.setpointsRefresh = setTimeout(() => {
    state.setpointsRefresh = undefined
    if (state.site) loadSetpoints()
  }, SETPOINTS_REFRESH_MS)
}

const CHANNEL_NOTES = { alerts: 'alerts-note', setpoints: 'setpoints-note', buckets: 'chart-note' }

function channelNote(id, text) {
  if (CHANNEL_NOTES[id]) {
    $(CHANNEL_NOTES[id]).textContent = text
  } else if (state.liveSubs.has(id) && text) {
    // One line for all refused live figures, however many there are.
    state.liveErrors.set(id, text)
    $('breakdown-errors').textContent =
      `${state.liveErrors.size} of ${state.liveSubs.size} live figures refused: ${[...new Set(state.liveErrors.values())].join('; ')}`
  }
}

function onFrame(frame) {
  switch (frame.type) {
    case 'live': {
      if (!state.liveSubs.has(frame.sub)) return
      state.live.set(frame.scope, frame)
      state.dirty.live.add(frame.scope)
      if (frame.scope === state.site.scope && frame.at !== null && frame.at !== state.clock) {
        state.clock = frame.at
        state.dirty.clock = true
        if (state.historyPending) loadHistory()
        historyView.clockMoved(frame.at)
      }
      break
    }
    case 'alert':
      applyAlert(frame.seq, frame.alert)
      break
    case 'setpoint':
      applySetpoint(frame.seq, frame.event)
      break
    case 'gap':
      // Events were discarded before we could see them: the current list fills the hole.
      if (frame.sub === 'alerts') loadAlerts(true)
      else if (frame.sub === 'setpoints') loadSetpoints()
      break
    case 'bucket':
      if (frame.scope === state.site.scope && state.buckets.upsert(frame)) state.dirty.chart = true
      break
    case 'subscribed':
      if (state.liveErrors.delete(frame.id) && state.liveErrors.size === 0) $('breakdown-errors').textContent = ''
      if (frame.id === 'alerts' || frame.id === 'setpoints') state.resume[frame.id] = true
      if (frame.id in CHANNEL_NOTES) channelNote(frame.id, '')
      break
    case 'error':
      channelNote(frame.id, errorText(frame))
      break
  }
  schedule()
}

function errorText(frame) {
  if (frame.code === 'not_available') return 'Not served by this gateway yet.'
  if (frame.code === 'forbidden') return 'This token may not see it.'
  return `${frame.code}: ${frame.message}`
}

/** Most important first: the socket paces them to the gateway's subscribe rate limit. */
function subscriptions() {
  const site = state.site.scope
  const requests = []
  for (const channel of ['alerts', 'setpoints']) {
    const request = { op: 'subscribe', id: channel, channel, scope: site }
    const book = channel === 'alerts' ? state.alerts : state.setpoints
    // CONTRACT.md §5: `since` replays every held event after it, so a reconnect misses nothing.
    if (state.resume[channel]) request.since = book.lastSeq
    requests.push(request)
  }
  requests.push({ op: 'subscribe', id: 'buckets', channel: 'buckets', scope: site, step: STEP })
  for (const [id, scope] of state.liveSubs) requests.push({ op: 'subscribe', id, channel: 'live', scope })
  state.liveErrors.clear()
  return requests
}

// ---- HTTP loads -------------------------------------------------------------------------------

/** The minutes of the chart's window, from the history API; live `bucket` frames extend them. */
async function loadHistory() {
  state.historyPending = false
  const site = state.site
  const to = Math.floor(state.clock / STEP_MS) * STEP_MS + STEP_MS
  const from = to - CHART_MS
  try {
    const buckets = await state.api.get('/api/v1/energy', { scope: site.scope, step: STEP, from, to })
    if (state.site !== site || !Array.isArray(buckets)) return
    state.buckets.load(buckets, from, to)
    channelNote('buckets', '')
    state.dirty.chart = true
    schedule()
  } catch (error) {
    if (state.site === site) channelNote('buckets', `History not available: ${error.message}`)
  }
}

/**
 * Items of a list answer as {seq, item}: GET /api/v1/alerts gives alerts with their `seq` beside
 * their fields; `{seq, alert}` entries or an `{alerts: [...]}` wrapper are read as well.
 */
function listOf(body, key, itemKey) {
  const list = Array.isArray(body) ? body : (body?.[key] ?? [])
  return list.map((entry) =>
    entry?.[itemKey] ? { seq: entry.seq ?? 0, item: entry[itemKey] } : { seq: entry?.seq ?? 0, item: entry },
  )
}

/**
 * The feed's newest alerts over HTTP: at start, and after a `gap` (events discarded before this
 * page saw them). After a gap the open alerts are fetched whole as well, and an alert held open
 * here that is no longer open there has closed unseen: it leaves "idle now".
 */
async function loadAlerts(afterGap = false) {
  const site = state.site
  try {
    const newest = await state.api.get('/api/v1/alerts', { scope: site.scope, limit: FEED_LIMIT })
    const open = afterGap
      ? await state.api.get('/api/v1/alerts', { scope: site.scope, state: 'open', limit: 10_000 })
      : []
    if (state.site !== site) return
    if (afterGap) {
      const stillOpen = new Set(listOf(open, 'alerts', 'alert').map(({ item }) => item?.id))
      for (const id of state.openIdle.keys()) if (!stillOpen.has(id)) state.openIdle.delete(id)
    }
    // Oldest first, so the book's "latest change" order matches the server's.
    for (const { seq, item } of [...listOf(newest, 'alerts', 'alert'), ...listOf(open, 'alerts', 'alert')].reverse()) {
      applyAlert(seq, item)
    }
    state.dirty.alerts = true
    schedule()
  } catch (error) {
    if (state.site === site && error.status !== 404) channelNote('alerts', `Alert list not available: ${error.message}`)
  }
}

async function loadSetpoints() {
  const site = state.site
  try {
    const body = await state.api.get('/api/v1/setpoints', { scope: site.scope })
    if (state.site !== site) return
    // GET /api/v1/setpoints gives tuning status and history per equipment; take any events it
    // lists (oldest first), then the status as the processor states it now.
    const equipment = Array.isArray(body) ? body : (body?.equipment ?? [])
    for (const tuned of equipment) {
      const events = listOf(tuned?.history ?? tuned?.events ?? [], 'events', 'event')
      events.sort((a, b) => a.seq - b.seq || a.item.at - b.item.at)
      for (const { seq, item } of events) {
        if (item?.status && state.setpoints.apply(seq, item)) tuningPanel.event(item)
      }
    }
    tuningPanel.load(equipment)
    state.dirty.setpoints = true
    schedule()
  } catch (error) {
    // The channel carries the events either way; the status and savings are only in this list,
    // so a busy processor's 503 (or a network failure) is tried again a little later.
    if (state.site === site && error.status !== 401 && error.status !== 403) refreshSetpointsSoon()
  }
}

// ---- actions ----------------------------------------------------------------------------------

function actionFailure(error, what) {
  if (error.status === 403) return `Not allowed: this token may not ${what} (an operator token is needed).`
  if (error.status === 401) return 'The token is no longer accepted.'
  if (error.status === 404) return 'Not found: it is no longer held by the server.'
  return `Failed: ${error.message}`
}

async function acknowledge(id, button) {
  button.disabled = true
  button.textContent = 'Acknowledging…'
  try {
    const result = await state.api.post(`/api/v1/alerts/${encodeURIComponent(id)}/ack`)
    // 200 carries the acked alert with its seq (the same event comes on the alerts channel);
    // 202 means the processor has not confirmed yet, and the channel will bring it.
    if (result?.id === id && typeof result.seq === 'number') applyAlert(result.seq, result)
    else alertFeed.actionMessage(id, 'Acknowledgement sent; waiting for the processor to confirm…', false)
  } catch (error) {
    button.disabled = false
    button.textContent = 'Acknowledge'
    alertFeed.actionMessage(id, actionFailure(error, 'acknowledge alerts'), true)
  }
  schedule()
}

async function actOnSetpoint(id, action, button) {
  button.disabled = true
  tuningPanel.actionMessage(id, action === 'approve' ? 'Approving…' : 'Rejecting…', false)
  state.dirty.setpoints = true
  schedule()
  try {
    const result = await state.api.post(`/api/v1/setpoints/${encodeURIComponent(id)}/${action}`)
    // 200 carries the event that came back ({seq, ...event}); 202: the channel will bring it.
    if (result?.id === id && typeof result.seq === 'number' && result.status) {
      const { seq, ...event } = result
      applySetpoint(seq, event)
    } else {
      tuningPanel.actionMessage(id, action === 'approve' ? 'Approved; waiting for the tuner…' : 'Rejected.', false)
    }
  } catch (error) {
    button.disabled = false
    tuningPanel.actionMessage(id, actionFailure(error, `${action} setpoints`), true)
  }
  state.dirty.setpoints = true
  schedule()
}

/**
 * PUT /api/v1/tuning (operator, unscoped token): every tuner at once. The processor applies it
 * through the bus after the 202, so the list is read again until every tuner says the new mode
 * (a few times at most).
 */
for (const button of document.querySelectorAll('#tuning-mode button[data-mode]')) {
  button.addEventListener('click', async () => {
    const mode = button.dataset.mode
    button.disabled = true
    try {
      await state.api.put('/api/v1/tuning', { mode })
      setText($('tuning-mode-note'), `Every tuner set to ${mode}.`)
      const site = state.site
      for (let attempt = 0; attempt < 10 && state.site === site; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 500 * (attempt + 1)))
        await loadSetpoints()
        if (tuningPanel.allInMode(mode)) break
      }
    } catch (error) {
      setText($('tuning-mode-note'), actionFailure(error, 'change the tuning mode'))
    } finally {
      button.disabled = false
    }
  })
}

$('report-download').addEventListener('click', async () => {
  const button = $('report-download')
  const period = historyView.period
  button.disabled = true
  setText($('report-note'), '')
  try {
    await downloadReport(state.api, {
      scope: historyView.scope,
      period: period.kind,
      at: period.from,
      date: formatDate(period.date),
    })
  } catch (error) {
    setText($('report-note'), `Report not available: ${error.message}`)
  } finally {
    button.disabled = false
  }
})

// ---- connection -------------------------------------------------------------------------------

const CONNECTION_LABELS = { connecting: 'Connecting…', open: 'Live', waiting: 'Reconnecting', closed: 'Offline' }

const socket = new Socket({
  url: () => {
    const protocol = location.protocol === 'https:' ? 'wss:' : 'ws:'
    return `${protocol}//${location.host}/ws?token=${encodeURIComponent(state.api.token)}`
  },
  subscriptions,
  onFrame,
  onState(connection, detail) {
    if (connection === 'open') state.historyPending = true
    const pill = $('connection')
    pill.dataset.state = connection
    pill.textContent = detail ? `${CONNECTION_LABELS[connection]} (${detail})` : CONNECTION_LABELS[connection]
  },
  async onRefused() {
    // A browser is not told why an upgrade failed; a 401 from the API says the token is the cause.
    try {
      await state.api.get('/api/v1/plant')
    } catch {
      // 401 has already asked for a new token; anything else, the socket retries.
    }
  },
})

// ---- plant and site ---------------------------------------------------------------------------

/** Keeps sites, areas and lines (the breakdown), every name, and each scope's children. */
function indexPlant(plant) {
  state.names.clear()
  state.children.clear()
  state.tuned = []
  const visit = (node) => {
    state.names.set(node.scope, node.name)
    // GET /api/v1/plant tells each tuned equipment's tuning: a card for each from the start.
    const tuning = node.equipment?.tuning
    if (tuning) state.tuned.push({ scope: node.scope, ...tuning })
    const children = node.children ?? []
    if (children.length > 0) {
      state.children.set(
        node.scope,
        children.map((child) => ({ scope: child.scope, name: child.name, level: child.level })),
      )
    }
    for (const child of children) visit(child)
  }
  state.sites = (plant.sites ?? []).map((site) => {
    visit(site)
    const areas = (site.children ?? []).map((area) => ({
      scope: area.scope,
      name: area.name,
      lines: (area.children ?? []).map((line) => ({
        scope: line.scope,
        name: line.name,
        equipment: line.children?.length ?? 0,
      })),
    }))
    return { scope: site.scope, id: site.id, name: site.name, timezone: site.timezone, areas }
  })
}

/** Areas first (there are few), then lines in plant order while the subscription budget lasts. */
function breakdownEntries(site) {
  let budget = MAX_LIVE - 1 - site.areas.length
  const lineCount = site.areas.reduce((sum, area) => sum + area.lines.length, 0)
  const entries = []
  for (const area of site.areas.slice(0, MAX_LIVE - 1)) {
    const lines = area.lines.length
    entries.push({
      scope: area.scope,
      name: area.name,
      level: 'area',
      detail: `${lines} line${lines === 1 ? '' : 's'}`,
    })
    for (const line of area.lines) {
      if (budget-- <= 0) break
      entries.push({ scope: line.scope, name: line.name, level: 'line', detail: `${line.equipment} equipment` })
    }
  }
  const shownLines = entries.filter((entry) => entry.level === 'line').length
  const note =
    shownLines < lineCount
      ? `Showing ${shownLines} of ${lineCount} lines: one connection carries ${MAX_LIVE} live figures.`
      : ''
  return { entries, note }
}

function openSite(site) {
  state.site = site
  localStorage.setItem(SITE_KEY, site.id)
  state.siteTime = new fmt.SiteTime(site.timezone)
  state.clock = undefined
  state.live.clear()
  state.alerts.clear()
  state.openIdle.clear()
  state.setpoints.clear()
  state.buckets.clear()
  state.resume = { alerts: false, setpoints: false }
  alertFeed.clear()
  setpointFeed.clear()
  tuningPanel.clear()
  tuningPanel.load(state.tuned.filter((tuned) => tuned.scope.startsWith(`${site.scope}/`)))
  clearTimeout(state.setpointsRefresh)
  state.setpointsRefresh = undefined
  setText($('site-name'), site.name)
  document.title = `${site.name} · plantwatt`
  const { entries, note } = breakdownEntries(site)
  $('breakdown-errors').textContent = ''
  breakdown.build(entries)
  $('breakdown-note').textContent = note
  state.liveSubs = new Map([[`l0`, site.scope], ...entries.map((entry, i) => [`l${i + 1}`, entry.scope])])
  Object.assign(state.dirty, { alerts: true, setpoints: true, chart: true, clock: true })
  socket.stop()
  socket.start()
  loadAlerts()
  loadSetpoints()
  historyView.open(site, state.siteTime)
  schedule()
}

function renderSiteChoice() {
  const select = $('site-select')
  select.hidden = state.sites.length < 2
  $('site-name').hidden = state.sites.length >= 2
  select.replaceChildren(
    ...state.sites.map((site) => {
      const option = document.createElement('option')
      option.value = site.id
      option.textContent = site.name
      return option
    }),
  )
  select.value = state.site.id
}

$('site-select').addEventListener('change', (event) => {
  const site = state.sites.find((candidate) => candidate.id === event.target.value)
  if (site && site !== state.site) openSite(site)
})

// ---- token ------------------------------------------------------------------------------------

function showLogin(message) {
  socket.stop()
  historyView.close()
  state.api = undefined
  state.site = undefined
  $('app').hidden = true
  $('sign-out').hidden = true
  $('login-view').hidden = false
  $('login-error').textContent = message ?? ''
  $('token-input').value = ''
  $('token-input').focus()
}

function unauthorized() {
  localStorage.removeItem(TOKEN_KEY)
  showLogin('The token was not accepted (it may have been revoked). Enter a token.')
}

async function start(token) {
  const api = new Api(token, unauthorized)
  const plant = await api.get('/api/v1/plant')
  localStorage.setItem(TOKEN_KEY, token)
  state.api = api
  indexPlant(plant)
  if (state.sites.length === 0) throw new ApiError(403, 'forbidden', 'this token sees no site')
  const saved = localStorage.getItem(SITE_KEY)
  const site = state.sites.find((candidate) => candidate.id === saved) ?? state.sites[0]
  $('login-view').hidden = true
  $('app').hidden = false
  $('sign-out').hidden = false
  openSite(site)
  renderSiteChoice()
}

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const token = $('token-input').value.trim()
  if (!token) return
  const button = $('login-submit')
  button.disabled = true
  $('login-error').textContent = ''
  try {
    await start(token)
  } catch (error) {
    // A 401 has shown its own message through unauthorized().
    if (error.status !== 401) $('login-error').textContent = `Could not open the dashboard: ${error.message}`
  } finally {
    button.disabled = false
  }
})

$('sign-out').addEventListener('click', () => {
  localStorage.removeItem(TOKEN_KEY)
  showLogin()
})

// The chart is drawn to the pixel width it has; redraw when that changes.
new ResizeObserver(() => {
  state.dirty.chart = true
  schedule()
}).observe($('chart-power'))
new ResizeObserver(() => historyView.resize()).observe($('history-energy'))

const saved = localStorage.getItem(TOKEN_KEY)
if (saved) {
  start(saved).catch((error) => {
    if (error.status !== 401) showLogin(`Could not open the dashboard: ${error.message}`)
  })
} else {
  showLogin()
}
