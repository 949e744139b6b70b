// Per-minute buckets of the last hours (GET /api/v1/energy, then `bucket` frames) and a small
// hand-written SVG chart of them: a few hundred points redrawn as one path per series at most once
// per animation frame costs far less than a charting library's download.

const SVG = 'http://www.w3.org/2000/svg'

/** Buckets by start time. A revised bucket (CONTRACT.md §5) replaces the one with the same t. */
export class BucketSeries {
  constructor(stepMs, keepMs) {
    this.stepMs = stepMs
    this.keepMs = keepMs
    /** @type {Map<number, object>} */
    this.byT = new Map()
    this.latestT = 0
  }

  /** A history load: the server's answer replaces what is held in its range. */
  load(buckets, fromMs, toMs) {
    for (const t of this.byT.keys()) if (t >= fromMs && t < toMs) this.byT.delete(t)
    for (const bucket of buckets) this.upsert({ ...bucket, revision: bucket.revision ?? -1 })
  }

  upsert(bucket) {
    const held = this.byT.get(bucket.t)
    if (held && held.revision > bucket.revision) return false
    this.byT.set(bucket.t, bucket)
    if (bucket.t > this.latestT) {
      this.latestT = bucket.t
      for (const t of this.byT.keys()) if (t < this.latestT - this.keepMs) this.byT.delete(t)
    }
    return true
  }

  clear() {
    this.byT.clear()
    this.latestT = 0
  }

  /** Buckets with fromMs ≤ t < toMs, by t. */
  range(fromMs, toMs) {
    const list = []
    for (const bucket of this.byT.values()) if (bucket.t >= fromMs && bucket.t < toMs) list.push(bucket)
    return list.sort((a, b) => a.t - b.t)
  }
}

export function element(name, attributes, parent) {
  const node = document.createElementNS(SVG, name)
  for (const key in attributes) node.setAttribute(key, attributes[key])
  parent?.appendChild(node)
  return node
}

/** 1, 2 or 5 × 10^n: tick steps a reader can add up. */
export function niceStep(span, count) {
  const raw = span / Math.max(1, count)
  const power = 10 ** Math.floor(Math.log10(raw))
  const unit = raw / power
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power
}

const TIME_STEPS_MIN = [5, 10, 15, 30, 60, 120, 180, 360]
const MARGIN = { left: 64, right: 12, top: 10, bottom: 22 }

export class BucketChart {
  /**
   * @param {SVGSVGElement} svg
   * @param {object} options
   * @param {{label: string, kind: 'area' | 'line', className: string, value: (b: object) => number}[]} options.series
   * @param {(value: number) => string} options.format axis and readout labels
   * @param {(text: string) => void} options.onReadout the values under the pointer
   */
  constructor(svg, options) {
    this.svg = svg
    this.options = options
    this.points = []
    this.geometry = undefined
    this.siteTime = undefined
    svg.addEventListener('pointermove', (event) => this.pointer(event))
    svg.addEventListener('pointerleave', () => {
      this.cursor?.setAttribute('visibility', 'hidden')
      options.onReadout('')
    })
  }

  render(points, fromMs, toMs, siteTime, stepMs) {
    this.points = points
    this.siteTime = siteTime
    const { svg, options } = this
    const width = svg.clientWidth || 600
    const height = svg.clientHeight || 180
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`)
    const plotW = width - MARGIN.left - MARGIN.right
    const plotH = height - MARGIN.top - MARGIN.bottom
    let max = 0
    for (const point of points) for (const s of options.series) max = Math.max(max, s.value(point))
    const yStep = niceStep(max || 1, 4)
    const yMax = Math.ceil((max || 1) / yStep) * yStep
    const x = (t) => MARGIN.left + ((t - fromMs) / (toMs - fromMs)) * plotW
    const y = (v) => MARGIN.top + plotH - (v / yMax) * plotH
    this.geometry = { x, fromMs, toMs, stepMs, plotW }

    const root = document.createDocumentFragment()
    const grid = element('g', { class: 'grid' }, root)
    for (let v = 0; v <= yMax + yStep / 2; v += yStep) {
      element('line', { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(v), y2: y(v) }, grid)
      if (points.length === 0) continue
      const label = element('text', { x: MARGIN.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, grid)
      label.textContent = options.format(v)
    }
    const spanMin = (toMs - fromMs) / 60_000
    const tickMin = TIME_STEPS_MIN.find((m) => spanMin / m <= Math.max(2, plotW / 90)) ?? 720
    const tickMs = tickMin * 60_000
    const offset = siteTime.offsetMs(toMs)
    for (let t = Math.ceil((fromMs + offset) / tickMs) * tickMs - offset; t < toMs; t += tickMs) {
      element('line', { x1: x(t), x2: x(t), y1: MARGIN.top, y2: MARGIN.top + plotH }, grid)
      const label = element('text', { x: x(t), y: height - 6, 'text-anchor': 'middle' }, grid)
      label.textContent = siteTime.minute.format(t)
    }

    for (const s of options.series) {
      // A missing minute breaks the line instead of drawing a slope across it.
      let d = ''
      let runStart = -1
      let previousT = Number.NEGATIVE_INFINITY
      const closeRun = (lastX) => {
        if (s.kind === 'area' && runStart >= 0)
          d += `L${lastX.toFixed(1)},${y(0).toFixed(1)}L${runStart.toFixed(1)},${y(0).toFixed(1)}Z`
      }
      let lastX = 0
      for (const point of points) {
        const px = x(point.t + stepMs / 2)
        const py = y(s.value(point)).toFixed(1)
        if (point.t - previousT > stepMs) {
          closeRun(lastX)
          d += `M${px.toFixed(1)},${py}`
          runStart = px
        } else {
          d += `L${px.toFixed(1)},${py}`
        }
        previousT = point.t
        lastX = px
      }
      closeRun(lastX)
      if (d) element('path', { d, class: `series ${s.className}` }, root)
    }
    this.cursor = element(
      'line',
      { class: 'cursor', y1: MARGIN.top, y2: MARGIN.top + plotH, visibility: 'hidden' },
      root,
    )
    svg.replaceChildren(root)
    // Which minutes are drawn, for a reader of the page (tests) that cannot read a path.
    svg.dataset.points = String(points.length)
    svg.dataset.first = points.length > 0 ? String(points[0].t) : ''
    svg.dataset.last = points.length > 0 ? String(points[points.length - 1].t) : ''
  }

  pointer(event) {
    const { geometry, points, options } = this
    if (!geometry || points.length === 0) return
    const box = this.svg.getBoundingClientRect()
    const ratio = (event.clientX - box.left - MARGIN.left) / geometry.plotW
    const t = geometry.fromMs + ratio * (geometry.toMs - geometry.fromMs)
    let nearest = points[0]
    for (const point of points) if (Math.abs(point.t - t) < Math.abs(nearest.t - t)) nearest = point
    const cx = geometry.x(nearest.t + geometry.stepMs / 2)
    this.cursor.setAttribute('x1', cx)
    this.cursor.setAttribute('x2', cx)
    this.cursor.setAttribute('visibility', 'visible')
    const values = options.series.map((s) => `${s.label} ${options.format(s.value(nearest))}`)
    options.onReadout(`${this.siteTime.minute.format(nearest.t)} · ${values.join(' · ')}`)
  }
}
