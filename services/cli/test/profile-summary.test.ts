import { describe, expect, it } from 'vitest'
import { longTaskSamples, summarise } from '../bench/profile-summary.ts'

// A tiny profile in node --cpu-prof's shape: root → (idle), root → work → inner. Samples every
// 10 ms; the busy runs last 30 ms (work, inner, work) and 10 ms (inner).
const frame = (functionName: string, url = '') => ({ functionName, url, lineNumber: 0 })
const profile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 3] },
    { id: 2, callFrame: frame('(idle)') },
    { id: 3, callFrame: frame('work', 'file:///app/services/processor/src/a.ts'), children: [4] },
    { id: 4, callFrame: frame('inner', 'file:///app/services/processor/src/b.ts') },
  ],
  startTime: 0,
  endTime: 90_000,
  samples: [2, 3, 4, 3, 2, 4, 2, 2, 2],
  timeDeltas: [0, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000],
}

describe('profile summary: long tasks', () => {
  it('keeps only the runs of busy samples of at least the given length', () => {
    const long = longTaskSamples(profile, 25)
    expect(long.runsMs).toEqual([30])
    expect([...long.keep]).toEqual([1, 2, 3])
    expect(longTaskSamples(profile, 5).runsMs).toEqual([30, 10])
  })

  it('sums self and inclusive time over the kept samples only', () => {
    const s = summarise('p.cpuprofile', profile, undefined, longTaskSamples(profile, 25))
    expect(s.busyMs).toBe(30)
    expect(s.byFunction.find((f) => f.name.startsWith('work'))!.selfMs).toBe(20)
    expect(s.byFunction.find((f) => f.name.startsWith('inner'))!.selfMs).toBe(10)
    // work's 30 ms include inner's 10; the second run's inner is not a long task.
    expect(s.byFunctionInclusive.find((f) => f.name.startsWith('work'))!.totalMs).toBe(30)
    expect(s.byFunctionInclusive.find((f) => f.name.startsWith('inner'))!.totalMs).toBe(10)
    expect(s.longTasksMs).toEqual([30])
  })
})
