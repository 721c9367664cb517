/** The most slots a semaphore may have: each is a file, and a full one is tried in turn. */
export const MAX_SLOTS = 1000

/** Slot `slot` of the lock `path`: `<path>.slot<N>`, N from 1 (no leading zero). */
export function slotPath(path: string, slot: number): string {
  return `${path}.slot${slot}`
}

/** The slot number a file `name` is of the lock named `lockName`, or null if it is none of its slots. */
export function slotNumber(lockName: string, name: string): number | null {
  if (!name.startsWith(`${lockName}.slot`)) return null
  const n = name.slice(lockName.length + 5)
  return /^[1-9]\d{0,3}$/.test(n) && Number(n) <= MAX_SLOTS ? Number(n) : null
}
