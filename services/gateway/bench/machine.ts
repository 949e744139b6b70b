import { readFileSync } from 'node:fs'
import { cpus, loadavg, release, totalmem } from 'node:os'

// The machine around the benchmark: it is shared with other work, so every run records how busy
// the whole machine was beside the figures of its own processes.

const CLOCK_TICKS_PER_S = 100

/** CPU seconds the whole machine spent on anything but idle and iowait, all cores together. */
export function machineBusyS(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number)
    return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / CLOCK_TICKS_PER_S
  } catch {
    return 0
  }
}

/**
 * Kernel memory of every TCP socket on the machine, bytes (/proc/net/sockstat `TCP: mem`, in pages).
 * What a stalled client's socket holds beyond the gateway's own buffer is here, not in its RSS.
 */
export function tcpKernelBytes(): number {
  try {
    const match = /^TCP:.* mem (\d+)$/m.exec(readFileSync('/proc/net/sockstat', 'utf8'))
    return match ? Number(match[1]) * 4096 : 0
  } catch {
    return 0
  }
}

export function describeMachine() {
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
  }
}

export const loadAverage = () => loadavg().map((value) => Math.round(value * 100) / 100)
