import { resolve } from 'node:path'
import { describeOwner } from '../owner/describe.js'
import type { LockOwner } from '../owner/identity.js'
import { judgeSnapshot, readSnapshot, UNREADABLE_GRACE } from '../locks/lock-record.js'
import { recordDistrust } from '../locks/record-trust.js'

/**
 * LSB init-script `status` codes: 0 running, 1 dead but the PID file exists, 3 not running,
 * 4 unknown. (2, "dead but /var/lock file exists", has no meaning here: the PID file is the lock.)
 */
export const LSB = { RUNNING: 0, DEAD_PID_FILE: 1, NOT_RUNNING: 3, UNKNOWN: 4 } as const

/** The LSB status of the daemon holding `path`, with a line for people. */
export interface LsbStatus {
  code: 0 | 1 | 3 | 4
  line: string
  owner: LockOwner | null
}

/**
 * Judges the lock at `path` by the stale rule and answers in LSB terms. Unknown (4): the path
 * can't be read as a lock file, holds no valid record, is held on another host or in another
 * PID namespace (alive or not can't be told from here), or its record is not trusted (it names
 * a process its file's owner could not signal: docs/threat-model.md).
 */
export function lsbStatus(path: string): LsbStatus {
  const lockPath = resolve(path)
  let snapshot: ReturnType<typeof readSnapshot>
  try {
    snapshot = readSnapshot(lockPath)
  } catch (err) {
    return { code: LSB.UNKNOWN, line: `unknown: ${(err as Error).message}`, owner: null }
  }
  if (!snapshot) return { code: LSB.NOT_RUNNING, line: `not running: there is no PID file ${lockPath}`, owner: null }
  const { owner } = snapshot
  if (snapshot.kind === 'invalid') return { code: LSB.UNKNOWN, line: `unknown: ${lockPath} holds no valid record (last written ${owner.createdAt})`, owner: null }
  const verdict = judgeSnapshot(snapshot, UNREADABLE_GRACE)
  if (verdict.foreign) return { code: LSB.UNKNOWN, line: `unknown: ${lockPath} is ${verdict.reason}`, owner }
  if (verdict.dead) return { code: LSB.DEAD_PID_FILE, line: `dead: ${describeOwner(owner)} is gone (${verdict.reason}) but ${lockPath} is left; the next start takes it over`, owner }
  // A record that may be planted (another user's file naming this user's or root's process) is no proof that the service runs.
  const untrusted = recordDistrust(snapshot, verdict)
  if (untrusted) return { code: LSB.UNKNOWN, line: `unknown: ${lockPath} names ${describeOwner(owner)}, but the record is not trusted: ${untrusted}`, owner }
  return { code: LSB.RUNNING, line: `running: ${describeOwner(owner)} holds ${lockPath}`, owner }
}
