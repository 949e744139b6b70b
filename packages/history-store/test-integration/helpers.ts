import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { StoredBucket } from '../src/index.ts'

export function tempDir(prefix = 'plantwatt-history-store-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}

export const MINUTE = 60_000
export const DAY = 86_400_000
/** 2026-03-02T00:00Z, a Monday. */
export const T0 = Date.UTC(2026, 2, 2)

export function bucket(
  scope: string,
  step: StoredBucket['step'],
  t: number,
  revision: number,
  energyWh = 1,
): StoredBucket {
  return {
    scope,
    step,
    t,
    revision,
    energyWh,
    co2G: energyWh * 0.47,
    co2MarketG: energyWh * 0.37,
    idleWh: 0,
    peakW: 1000,
  }
}

/** Polls `condition` until it holds or `timeoutMs` passes (no sleeps as synchronisation). */
export async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const started = Date.now()
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time')
    // A poll every few ms, not a spin: the child being waited for needs the CPU.
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
