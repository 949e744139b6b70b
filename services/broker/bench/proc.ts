import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

// Resource use of another process, read from /proc as `ps` and `top` do (Linux only): the
// broker is measured from outside, so the measuring costs it nothing.

/** Clock ticks per second of /proc/PID/stat times. */
export const CLOCK_TICKS_PER_S = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** Resident memory (VmRSS), bytes; 0 once the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) * 1024 : 0
  } catch {
    return 0
  }
}

/** CPU time used so far (utime + stime), seconds; 0 once the process is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // Fields 14 and 15 of proc(5) are utime and stime; fields[0] here is field 3.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S
  } catch {
    return 0
  }
}

export const sumOf = (pids: readonly number[], read: (pid: number) => number) =>
  pids.reduce((sum, pid) => sum + read(pid), 0)

export interface MachineCpu {
  /** CPU seconds spent on anything but idle and iowait, all cores together. */
  busyS: number
  /** Of which softirq (on loopback: much of the TCP work of both ends) and steal (the host's). */
  softirqS: number
  stealS: number
}

/** The whole machine's CPU time so far, from the `cpu` line of /proc/stat. */
export function machineCpu(): MachineCpu {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number)
    const ticks = (value: number | undefined) => (value ?? 0) / CLOCK_TICKS_PER_S
    return {
      busyS: ticks(user) + ticks(nice) + ticks(system) + ticks(irq) + ticks(softirq) + ticks(steal),
      softirqS: ticks(softirq),
      stealS: ticks(steal),
    }
  } catch {
    return { busyS: 0, softirqS: 0, stealS: 0 }
  }
}
