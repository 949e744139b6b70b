// Idle alerts against the simulator's ground truth episodes. Matching rule: a detected episode (an
// idle raise, ended by its clear or open) matches a truth episode of the same scope when their time
// spans overlap (an open end counts as the end of the run); each is matched at most once, greedily
// in start order.

import type { Alert } from '@plantwatt/contract'
import type { IdleEpisode } from '@plantwatt/fleet'

export interface DetectedEpisode {
  scope: string
  startS: number
  endS: number | null
  raiseAtS: number
}

export function detectedEpisodes(events: Alert[]): DetectedEpisode[] {
  const byId = new Map<string, DetectedEpisode>()
  for (const a of events) {
    if (a.kind !== 'idle') continue
    if (a.state === 'raised')
      byId.set(a.id, { scope: a.scope, startS: a.since / 1000, endS: null, raiseAtS: a.at / 1000 })
    else if (a.state === 'cleared') byId.get(a.id)!.endS = a.at / 1000
  }
  return [...byId.values()]
}

export interface Match {
  truth: IdleEpisode
  found: DetectedEpisode
}

export function match(truth: IdleEpisode[], found: DetectedEpisode[], endS: number) {
  const used = new Set<DetectedEpisode>()
  const matches: Match[] = []
  const missed: IdleEpisode[] = []
  const sorted = [...truth].sort((a, b) => a.startS - b.startS)
  for (const t of sorted) {
    const tEnd = t.endS ?? endS
    const candidate = found
      .filter((f) => !used.has(f) && f.scope === t.scope && f.startS < tEnd && (f.endS ?? endS) > t.startS)
      .sort((a, b) => a.startS - b.startS)[0]
    if (candidate) {
      used.add(candidate)
      matches.push({ truth: t, found: candidate })
    } else missed.push(t)
  }
  const extra = found.filter((f) => !used.has(f))
  return {
    matches,
    missed,
    extra,
    precision: found.length === 0 ? 1 : matches.length / found.length,
    recall: truth.length === 0 ? 1 : matches.length / truth.length,
  }
}
