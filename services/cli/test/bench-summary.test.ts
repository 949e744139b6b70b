import { describe, expect, it } from 'vitest'
import { behindReasons } from '../bench/ladder.ts'
import { replaceSummary, SUMMARY_END, SUMMARY_START } from '../bench/summary.ts'

// The pure parts of `pnpm bench`: where a ladder step falls behind, and the summary section of
// docs/benchmarks.md replaced without touching the rest.

describe('a ladder step falls behind', () => {
  const step = (ackedPerS: number, p99Ms: number) => ({ offeredPerS: 1000, ackedPerS, puback: { p99Ms } })

  it('keeps pace at 95 % of the offered rate acknowledged and a PUBACK p99 of 1 s', () => {
    expect(behindReasons(step(950, 1000))).toEqual([])
  })

  it('falls behind under 95 % acknowledged, or over 1 s of PUBACK p99, and says which', () => {
    expect(behindReasons(step(949, 10))).toEqual(['acknowledged 949/s < 95 % of 1000/s'])
    expect(behindReasons(step(1000, 1001))).toEqual(['PUBACK p99 1001 ms > 1 s'])
    expect(behindReasons(step(10, 5000))).toHaveLength(2)
  })
})

describe('the summary section of docs/benchmarks.md', () => {
  const before = '# Benchmarks\n\ntext before\n\n'
  const after = '\n\n## Later section\n\ntext after\n'

  it('replaces what is between the markers and nothing else', () => {
    const document = `${before}${SUMMARY_START}\nold figures\n${SUMMARY_END}${after}`
    const replaced = replaceSummary(document, 'new figures')
    expect(replaced).toBe(`${before}${SUMMARY_START}\nnew figures\n${SUMMARY_END}${after}`)
    // Again: the same text, not a second section.
    expect(replaceSummary(replaced, 'new figures')).toBe(replaced)
  })

  it('appends the markers at the end of a document that has none', () => {
    expect(replaceSummary('# Benchmarks\n', 'figures')).toBe(
      `# Benchmarks\n\n${SUMMARY_START}\nfigures\n${SUMMARY_END}\n`,
    )
  })
})
