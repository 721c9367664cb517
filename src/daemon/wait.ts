import { resolve } from 'node:path'
import { judgeSnapshot, readSnapshot, UNREADABLE_GRACE } from '../locks/lock-record.js'
import { readPidLock, type PidLockStatus } from '../locks/pid-lock.js'

const POLL_MS = 10

/** What `waitForRelease` found when it returned. */
export interface WaitResult {
  /** True once no live process holds the lock: no file, or a stale one (its holder is dead). */
  free: boolean
  /** The last status read: `free`, `stale` or, on timeout, `held`. */
  status: PidLockStatus
  waited: number
}

/**
 * Waits until the PID lock at `path` is free or stale (its holder died: the next acquire takes
 * it over), polling every 10 ms, for at most `timeout` ms (default: for ever). Takes nothing
 * and removes nothing. Throws as `readPidLock` does for a path that can't be a lock file.
 */
export async function waitForRelease(path: string, options: { timeout?: number } = {}): Promise<WaitResult> {
  const timeout = options.timeout ?? Infinity
  const started = Date.now()
  const lockPath = resolve(path)
  for (;;) {
    // Polled cheaply (who holds it); the whole status, trust checks included, only for the answer.
    const snapshot = readSnapshot(lockPath)
    const free = !snapshot || judgeSnapshot(snapshot, UNREADABLE_GRACE).dead
    const left = timeout - (Date.now() - started)
    if (free || left <= 0) {
      const status = readPidLock(path)
      if (status.state !== 'held') return { free: true, status, waited: Date.now() - started }
      if (left <= 0) return { free: false, status, waited: Date.now() - started }
    }
    await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(left, 0))))
  }
}
