// Deterministic alert ids: a replay of the same readings gives the same ids (CONTRACT.md §5 "one
// alert keeps its id"; DESIGN.md replays give identical alerts). FNV-1a 64-bit over kind, scope,
// key (the device for offline alerts) and since, computed as two 32-bit halves.

const FNV_OFFSET_HI = 0xcbf29ce4
const FNV_OFFSET_LO = 0x84222325

export function alertId(kind: string, scope: string, key: string, sinceMs: number): string {
  const text = `${kind}|${scope}|${key}|${sinceMs}`
  let hi = FNV_OFFSET_HI
  let lo = FNV_OFFSET_LO
  for (let i = 0; i < text.length; i++) {
    lo ^= text.charCodeAt(i)
    // Multiply the 64-bit value by the FNV prime 2^40 + 0x1b3, in 16-bit pieces to stay exact.
    const l0 = lo & 0xffff
    const l1 = lo >>> 16
    const h0 = hi & 0xffff
    const h1 = hi >>> 16
    let r0 = l0 * 0x1b3
    let r1 = l1 * 0x1b3 + (r0 >>> 16)
    let r2 = h0 * 0x1b3 + (r1 >>> 16) + (l0 << 8)
    let r3 = h1 * 0x1b3 + (r2 >>> 16) + (l1 << 8)
    r0 &= 0xffff
    r1 &= 0xffff
    r2 &= 0xffff
    r3 &= 0xffff
    lo = ((r1 << 16) | r0) >>> 0
    hi = ((r3 << 16) | r2) >>> 0
  }
  return `${kind}-${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}`
}
