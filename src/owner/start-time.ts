import { readFileSync } from 'node:fs'
import { childProcess } from '../builtins.js'
import { readLinuxStat } from './linux-proc.js'

/**
 * The start time the OS reports for `pid`, or null if no such process exists or
 * the OS won't tell. Two processes that share a PID never share a start time.
 */
export function readStartTime(pid: number): string | null {
  if (process.platform === 'linux') return hostStartTime(readLinuxStat(pid)?.[19]) // field 22 overall
  if (process.platform === 'darwin') {
    try {
      return (
        childProcess()
          .execFileSync('ps', ['-o', 'lstart=', '-p', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
          .trim() || null
      )
    } catch {
      return null
    }
  }
  return null
}

/**
 * A start time as /proc/<pid>/stat field 22 gives it to this process, in the host's terms.
 * The kernel adds the reader's time-namespace boottime offset (`unshare --time`, a CRIU
 * restore), so the same process has another start time inside such a namespace than outside:
 * a holder there would look like a reused PID to everyone else. Its offset is taken off here,
 * so every reader records and compares the same number.
 */
export function hostStartTime(ticks: string | undefined): string | null {
  if (ticks === undefined || !/^\d+$/.test(ticks)) return null
  const offset = bootTimeOffsetTicks()
  return offset === 0n ? ticks : String(BigInt(ticks) - offset)
}

/** A start time as this process sees it, without that correction: what the keeper, reading /proc itself, compares. */
export function startTimeAsSeen(pid: number): string | null {
  return process.platform === 'linux' ? (readLinuxStat(pid)?.[19] ?? null) : readStartTime(pid)
}

let offsetCache: bigint | undefined

/** This process's time-namespace boottime offset in clock ticks (USER_HZ, 100 a second); 0 outside one. */
function bootTimeOffsetTicks(): bigint {
  if (offsetCache === undefined) {
    offsetCache = 0n
    try {
      const match = /^boottime\s+(-?\d+)\s+(\d+)/m.exec(readFileSync('/proc/self/timens_offsets', 'latin1'))
      if (match) offsetCache = BigInt(match[1]!) * 100n + BigInt(match[2]!) / 10_000_000n
    } catch {
      // no time namespaces (Linux < 5.6): no offset
    }
  }
  return offsetCache
}
