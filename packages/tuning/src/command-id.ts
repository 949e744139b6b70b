// Command and event ids derived from the equipment and the decision's event time (CONTRACT.md §3:
// "a command's id is derived from the equipment and the event time of the decision, so that a
// replay issues the same ids"). Two FNV-1a 32-bit hashes with different offsets give 16 hex
// digits; `seq` separates two decisions of one equipment at the same event time.

function fnv1a(text: string, offset: number): number {
  let h = offset >>> 0
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0
  return h
}

export function decisionId(scope: string, atMs: number, seq: number, kind = 'move'): string {
  const key = `${scope}|${atMs}|${seq}|${kind}`
  const hi = fnv1a(key, 2166136261).toString(16).padStart(8, '0')
  const lo = fnv1a(key, 0x811c9dc5 ^ 0x5bd1e995)
    .toString(16)
    .padStart(8, '0')
  return hi + lo
}
