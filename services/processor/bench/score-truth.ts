// How close a replayed pipeline's figures are to the simulator's ground truth (DESIGN.md "Truth of
// the figures"): energy per equipment, line and site, and idle alerts against the truth's idle
// episodes. The rules follow the package tests that hold the same bars on small plants
// (packages/accounting/test/truth.test.ts, packages/detection/test/simulator.test.ts and its
// evaluate.ts), applied to a whole recording.

import type { Accounting } from '@plantwatt/accounting'
import type { Alert } from '@plantwatt/contract'
import type { PlantIndex } from '@plantwatt/plant'
import type { IdleEpisode, IdleRuleInfo } from '../../../simulators/fleet/src/model/index.ts'
import type { TruthFigures } from './truth-file.ts'

/**
 * Minutes left out at each end of the recording. At the start, the first energy reading of a device
 * opens its counter (nothing before it can be attributed). At the end, the truth runs to the last
 * sample while power-saving devices' last batch and messages still in the network were never sent
 * (a run ends with them in flight), and the last minutes are not closed.
 */
const HEAD_MINUTES = 2
const TAIL_MINUTES = 5
/** An equipment below this much energy in the window is scored on its absolute error only. */
const SMALL_WH = 1000

export interface ErrorStats {
  scopes: number
  /** Scopes whose |error| ≤ 0.1 % of the truth. */
  within0_1pct: number
  maxRelErr: number
  p99RelErr: number
  worst: { scope: string; truthWh: number; gotWh: number; relErr: number }[]
}

export interface EnergyScore {
  window: { fromMs: number; toMs: number; minutes: number }
  site: { truthWh: number; gotWh: number; relErr: number }
  lines: ErrorStats
  /** Equipment under SMALL_WH in the window (off all day, say) are not in the relative figures. */
  equipment: ErrorStats & { small: number; smallMaxAbsErrWh: number }
}

/** Energy per equipment, line and site over the minutes both sides have whole. */
export function scoreEnergy(
  accounting: Accounting,
  plant: PlantIndex,
  truth: TruthFigures,
  endS: number,
  fromS = truth.startS,
): EnergyScore {
  const firstMinute = Math.ceil(Math.max(truth.startS, fromS) / 60) + HEAD_MINUTES
  const lastMinute = Math.floor(endS / 60) - TAIL_MINUTES
  const fromMs = firstMinute * 60_000
  const toMs = lastMinute * 60_000
  const offset = firstMinute - truth.minuteStartMs / 60_000
  const minutes = lastMinute - firstMinute
  const got = (scope: string) =>
    accounting.history(scope, '1m', fromMs, toMs).reduce((sum, row) => sum + row.energyWh, 0)

  const eqRows: Row[] = []
  const lineTruth = new Map<string, number>()
  let siteTruth = 0
  let small = 0
  let smallMaxAbsErrWh = 0
  for (const eq of truth.equipment) {
    let truthWh = 0
    for (let m = 0; m < minutes; m++) truthWh += eq.wh[offset + m] ?? 0
    const gotWh = got(eq.scope)
    siteTruth += truthWh
    const line = plant.scope(eq.scope)?.parent?.scope
    if (line) lineTruth.set(line, (lineTruth.get(line) ?? 0) + truthWh)
    if (truthWh < SMALL_WH) {
      small++
      smallMaxAbsErrWh = Math.max(smallMaxAbsErrWh, Math.abs(gotWh - truthWh))
    } else eqRows.push(row(eq.scope, truthWh, gotWh))
  }
  const lineRows = [...lineTruth].map(([scope, truthWh]) => row(scope, truthWh, got(scope)))
  const siteScope = [...plant.sites.keys()][0]!
  const siteGot = got(siteScope)
  return {
    window: { fromMs, toMs, minutes },
    site: { truthWh: round(siteTruth), gotWh: round(siteGot), relErr: relErr(siteTruth, siteGot) },
    lines: stats(lineRows),
    equipment: { ...stats(eqRows), small, smallMaxAbsErrWh: round(smallMaxAbsErrWh) },
  }
}

export interface IdleScore {
  truthEpisodes: number
  /** Truth episodes judged: thresholds from the model, or learned ones past their learning hour. */
  judgedTruth: number
  alertsRaised: number
  judgedFound: number
  matched: number
  precision: number
  recall: number
  /** Over all truth episodes and all idle alerts of truth-judged equipment, nothing left out. */
  allPrecision: number
  allRecall: number
  /**
   * Raise time − (truth start + afterS), equipment with thresholds from the model. The truth is on
   * true time, the alert on the devices' drifting clocks (truth.maxClockErrorS), so a raise due at a
   * reading exactly afterS after the start may come one reading later; `overOneInterval` counts
   * those later than one reporting interval plus that clock error (DESIGN.md's bar).
   */
  raiseDelayS: { count: number; p50: number; p99: number; max: number; overOneInterval: number }
  missedExamples: string[]
  extraExamples: string[]
  /**
   * The judged misses sorted by what the scorer can tell of them (a description, not a rule: every
   * one counts against recall above). `afterSBoundary`: the truth episode lasts afterS plus at most
   * one interval (and the clock error), so the §7 raise falls due on its last reading, or on none once
   * the devices' drifting clocks stamp the gap a few ms short. `learned` / `given`: the others, by
   * where the equipment's thresholds come from.
   */
  missedByCause: { afterSBoundary: number; learned: number; given: number }
  /** The judged extras sorted the same way: `afterSBoundary` when the found episode is that short. */
  extraByCause: { afterSBoundary: number; learned: number; given: number }
  /** Every judged miss and extra (scope, offsets from the start, truth duration, threshold origin). */
  missed: { scope: string; startS: number; durationS: number | null; source: string }[]
  extra: { scope: string; startS: number; durationS: number | null; source: string }[]
}

interface Found {
  scope: string
  startS: number
  endS: number | null
  raiseAtS: number
}

/**
 * Idle alerts against the truth's episodes, as packages/detection/test/simulator.test.ts judges
 * them: a found episode (an idle raise, ended by its clear or open) matches a truth episode of the
 * same scope when their spans overlap, each at most once, greedily in start order. Episodes of
 * equipment with learned thresholds that start within the learning span (learnMinSpanS of its
 * own history) cannot be seen by design and are not judged. Episodes due within `tailS` of the end
 * are left out on both sides (their readings may still have been in flight when the run ended).
 */
export function scoreIdle(
  alerts: readonly Alert[],
  truth: TruthFigures,
  options: { endS: number; tailS: number; learnMinSpanS: number; intervalS: number },
): IdleScore {
  const rules = new Map<string, IdleRuleInfo>(truth.idleRules.map((rule) => [rule.scope, rule]))
  const byId = new Map<string, Found>()
  for (const alert of alerts) {
    if (alert.kind !== 'idle' || !rules.has(alert.scope)) continue
    if (alert.state === 'raised') {
      byId.set(alert.id, { scope: alert.scope, startS: alert.since / 1000, endS: null, raiseAtS: alert.at / 1000 })
    } else if (alert.state === 'cleared') {
      const found = byId.get(alert.id)
      if (found) found.endS = alert.at / 1000
    }
  }
  const cutoff = options.endS - options.tailS
  const found = [...byId.values()].filter((f) => f.raiseAtS <= cutoff)
  const due = truth.idleEpisodes.filter((e) => e.startS + rules.get(e.scope)!.afterS <= cutoff)
  const learnedFrom = truth.startS + options.learnMinSpanS
  const judged = (scope: string, startS: number) => rules.get(scope)!.source === 'model' || startS >= learnedFrom
  const judgedTruth = due.filter((e) => judged(e.scope, e.startS))
  const unjudged = due.filter((e) => !judged(e.scope, e.startS))
  const unjudgedByScope = groupByScope(unjudged)
  const judgedFound = found.filter(
    (f) =>
      !(unjudgedByScope.get(f.scope) ?? []).some((e) => overlaps(f, e.startS, e.endS ?? options.endS, options.endS)),
  )
  const result = match(judgedTruth, judgedFound, options.endS)
  const all = match(due, found, options.endS)

  const delays: number[] = []
  for (const { truth: t, found: f } of result.matches) {
    const rule = rules.get(t.scope)!
    if (rule.source === 'model') delays.push(f.raiseAtS - (t.startS + rule.afterS))
  }
  delays.sort((a, b) => a - b)
  const label = (scope: string, s: number) => `${scope}@+${Math.round(s - truth.startS)}s`
  const byCause = (episodes: { scope: string; startS: number; endS: number | null }[]) => {
    const counts = { afterSBoundary: 0, learned: 0, given: 0 }
    for (const e of episodes) {
      const rule = rules.get(e.scope)!
      const boundary = rule.afterS + options.intervalS + 2 * truth.maxClockErrorS
      if (e.endS !== null && e.endS - e.startS <= boundary) counts.afterSBoundary++
      else if (rule.source === 'model') counts.given++
      else counts.learned++
    }
    return counts
  }
  const listed = (scope: string, startS: number, endS: number | null) => ({
    scope,
    startS: round(startS - truth.startS),
    durationS: endS === null ? null : round(endS - startS),
    source: rules.get(scope)!.source,
  })
  return {
    truthEpisodes: truth.idleEpisodes.length,
    judgedTruth: judgedTruth.length,
    alertsRaised: byId.size,
    judgedFound: judgedFound.length,
    matched: result.matches.length,
    precision: round(result.precision, 5),
    recall: round(result.recall, 5),
    allPrecision: round(all.precision, 5),
    allRecall: round(all.recall, 5),
    raiseDelayS: {
      count: delays.length,
      p50: round(quantile(delays, 0.5), 3),
      p99: round(quantile(delays, 0.99), 3),
      max: round(delays[delays.length - 1] ?? 0, 3),
      overOneInterval: delays.filter((d) => d > options.intervalS + 2 * truth.maxClockErrorS).length,
    },
    missedExamples: result.missed.slice(0, 5).map((e) => label(e.scope, e.startS)),
    extraExamples: result.extra.slice(0, 5).map((f) => label(f.scope, f.startS)),
    missedByCause: byCause(result.missed),
    extraByCause: byCause(result.extra),
    missed: result.missed.map((t) => listed(t.scope, t.startS, t.endS)),
    extra: result.extra.map((f) => listed(f.scope, f.startS, f.endS)),
  }
}

function match(truth: IdleEpisode[], found: Found[], endS: number) {
  const foundByScope = groupByScope(found)
  for (const list of foundByScope.values()) list.sort((a, b) => a.startS - b.startS)
  const used = new Set<Found>()
  const matches: { truth: IdleEpisode; found: Found }[] = []
  const missed: IdleEpisode[] = []
  for (const t of [...truth].sort((a, b) => a.startS - b.startS)) {
    const candidate = (foundByScope.get(t.scope) ?? []).find(
      (f) => !used.has(f) && overlaps(f, t.startS, t.endS ?? endS, endS),
    )
    if (candidate) {
      used.add(candidate)
      matches.push({ truth: t, found: candidate })
    } else missed.push(t)
  }
  return {
    matches,
    missed,
    extra: found.filter((f) => !used.has(f)),
    precision: found.length === 0 ? 1 : matches.length / found.length,
    recall: truth.length === 0 ? 1 : matches.length / truth.length,
  }
}

function overlaps(f: Found, startS: number, endS: number, runEndS: number): boolean {
  return f.startS < endS && (f.endS ?? runEndS) > startS
}

function groupByScope<T extends { scope: string }>(items: T[]): Map<string, T[]> {
  const map = new Map<string, T[]>()
  for (const item of items) {
    const list = map.get(item.scope)
    if (list) list.push(item)
    else map.set(item.scope, [item])
  }
  return map
}

interface Row {
  scope: string
  truthWh: number
  gotWh: number
  relErr: number
}

function row(scope: string, truthWh: number, gotWh: number): Row {
  return { scope, truthWh, gotWh, relErr: relErr(truthWh, gotWh) }
}

function relErr(truthWh: number, gotWh: number): number {
  return truthWh === 0 ? (gotWh === 0 ? 0 : Number.POSITIVE_INFINITY) : Math.abs(gotWh - truthWh) / truthWh
}

function stats(rows: Row[]): ErrorStats {
  const errors = rows.map((r) => r.relErr).sort((a, b) => a - b)
  return {
    scopes: rows.length,
    within0_1pct: rows.filter((r) => r.relErr <= 1e-3).length,
    maxRelErr: round(errors[errors.length - 1] ?? 0, 7),
    p99RelErr: round(quantile(errors, 0.99), 7),
    worst: [...rows]
      .sort((a, b) => b.relErr - a.relErr)
      .slice(0, 3)
      .map((r) => ({ scope: r.scope, truthWh: round(r.truthWh), gotWh: round(r.gotWh), relErr: round(r.relErr, 7) })),
  }
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}
