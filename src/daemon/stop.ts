import { posixOnly } from './posix-only.js'
import type { SignalName } from './signal-name.js'
import { constants as osConstants } from 'node:os'
import { resolve } from 'node:path'
import { ExitguardError, invalidArgType, invalidArgValue } from '../errors.js'
import { describeOwner } from '../owner/describe.js'
import { judgeOwner } from '../owner/judge.js'
import { pidExists } from '../owner/runs-as.js'
import { readStartTime } from '../owner/start-time.js'
import { selfIdentity } from '../owner/self.js'
import type { LockOwner } from '../owner/identity.js'
import { judgeSnapshot, readSnapshot, UNREADABLE_GRACE, type Snapshot } from '../locks/lock-record.js'
import { recordDistrust } from '../locks/record-trust.js'
import { reapPidLock } from '../locks/pid-lock.js'

/** Options of `stopHolder`. */
export interface StopHolderOptions {
  /** The signal to send first: a name (`'SIGTERM'`) or a number. Default `'SIGTERM'`. */
  killSignal?: SignalName | number | undefined
  /**
   * @deprecated Use `killSignal`: elsewhere in exitguard `signal` is an AbortSignal. Still works;
   * give one or the other.
   */
  signal?: SignalName | number | undefined
  /** Milliseconds to wait for the holder to die or release the lock. Default 10000 (as `docker stop`). */
  timeout?: number | undefined
  /** If it still runs after `timeout`, send SIGKILL and wait up to `timeout` again. Default false. */
  kill?: boolean | undefined
}

/** What `stopHolder` did. */
export interface StopResult {
  /** True when nothing runs under the lock any more (stopped now, or was not running). */
  stopped: boolean
  /**
   * - `'not-running'`: no lock file, or its holder was already dead (a stale file is removed);
   * - `'signal'`: the holder died or released the lock after `killSignal`;
   * - `'kill'`: it ignored `killSignal` for `timeout` ms and died of the SIGKILL that followed;
   * - `'keeper'`: the holder had already died and its keeper (docs/keeper.md) was stopping the
   *   command it ran; nothing was signalled, and the keeper released the lock within the wait;
   * - `'timeout'`: it still runs (stopped is false), or its keeper is still stopping its command.
   */
  how: 'not-running' | 'signal' | 'kill' | 'keeper' | 'timeout'
  /** The holder's PID, or null when there was no lock file. */
  pid: number | null
  /** The record found in the lock file, or null. */
  owner: LockOwner | null
  /** For people: what was found and done, e.g. "PID 4242 died 120 ms after SIGTERM". */
  reason: string
  /** Milliseconds spent waiting for the holder. */
  waited: number
}

/** What `signalHolder` did. */
export interface SignalResult {
  /** True if the signal was sent to the verified holder. */
  sent: boolean
  /** The holder's PID, or null when there was no lock file. */
  pid: number | null
  owner: LockOwner | null
  /** For people: "sent SIGHUP to PID 4242", or why nothing was sent ("no process has PID 4242"). */
  reason: string
}

/** The stop default, documented in docs/daemons.md. */
export const STOP_TIMEOUT = 10_000
const POLL_MS = 10

/**
 * A lock's holder, checked: a live process proven to be the one that wrote the record, a dead
 * one, or a dead one whose keeper is still stopping its command (the lock is held until it is done).
 */
type Holder =
  | { state: 'none' }
  | { state: 'dead'; snapshot: Snapshot; reason: string }
  | { state: 'releasing'; snapshot: Snapshot; reason: string }
  | { state: 'alive'; snapshot: Snapshot; reason: string }

/**
 * Sends one signal to the process that holds the PID lock at `path`, only after checking that
 * the record still describes a live process with that identity (PID, start time, boot id, PID
 * namespace). A dead holder, or a PID now used by another process, gets nothing (`sent: false`).
 * Throws `EFOREIGN` for a holder on another host or namespace, `EUNVERIFIED` for a record
 * without a start time (a bare PID file), `EBADRECORD` for an unreadable one, `EUNTRUSTED` for
 * a record its file's owner could not have written for that process (the trust rule,
 * docs/threat-model.md), `EPERM` for another user's process.
 *
 * @example
 * const r = signalHolder('/run/app.pid', 'SIGHUP') // reload
 * if (!r.sent) console.error(`not running: ${r.reason}`)
 */
export function signalHolder(path: string, signal: SignalName | number): SignalResult {
  posixOnly('signalHolder')
  const lockPath = checkPath(path)
  const number = signalNumber('signal', signal)
  const holder = findHolder(lockPath)
  if (holder.state === 'none') return { sent: false, pid: null, owner: null, reason: `there is no lock file ${lockPath}` }
  const { owner } = holder.snapshot
  if (holder.state !== 'alive' || !send(lockPath, owner, number)) {
    return { sent: false, pid: owner.pid, owner, reason: holder.state !== 'alive' ? holder.reason : `PID ${owner.pid} ended before the signal` }
  }
  return { sent: true, pid: owner.pid, owner, reason: `sent ${signalName(number)} to PID ${owner.pid}` }
}

/**
 * Stops the process that holds the PID lock at `path`: sends `killSignal` (SIGTERM) to the verified
 * holder (see `signalHolder`), waits up to `timeout` ms for it to die or release the lock, and
 * with `kill` escalates to SIGKILL. A lock file its dead holder left behind is removed. Never
 * signals a reused PID; throws as `signalHolder` does when the holder can't be verified.
 *
 * @example
 * const r = await stopHolder('/run/app.pid', { timeout: 5000, kill: true })
 * console.log(r.stopped ? `stopped (${r.how})` : `PID ${r.pid} still runs`)
 */
export async function stopHolder(path: string, options: StopHolderOptions = {}): Promise<StopResult> {
  posixOnly('exitguard stop (stopHolder)')
  const lockPath = checkPath(path)
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options)
  const first = firstSignal(options)
  const timeout = options.timeout ?? STOP_TIMEOUT
  if (typeof timeout !== 'number' || !(timeout >= 0) || timeout > 2 ** 31 - 1) {
    throw invalidArgValue('timeout', timeout, 'must be a number of milliseconds from 0 to 2147483647')
  }
  if (options.kill !== undefined && typeof options.kill !== 'boolean') throw invalidArgType('kill', 'a boolean', options.kill)
  const holder = findHolder(lockPath)
  if (holder.state === 'none') return { stopped: true, how: 'not-running', pid: null, owner: null, reason: `there is no lock file ${lockPath}`, waited: 0 }
  const { snapshot } = holder
  const { owner } = snapshot
  if (holder.state === 'dead') return notRunning(lockPath, snapshot, holder.reason)
  const started = Date.now()
  const result = (how: StopResult['how'], reason: string): StopResult => ({ stopped: how !== 'timeout', how, pid: owner.pid, owner, reason, waited: Date.now() - started })
  if (holder.state === 'releasing') {
    // Nothing of ours to signal: the command's PID is the keeper's, and the keeper is already
    // stopping it (SIGTERM, SIGKILL after --grace). Wait for it; with kill, as long again.
    const released = (await gone(lockPath, snapshot, timeout)) ?? (options.kill ? await gone(lockPath, snapshot, timeout) : null)
    if (released) return result('keeper', `${holder.reason}; it was done ${Date.now() - started} ms later (nothing was signalled)`)
    return result(
      'timeout',
      `${holder.reason}, and is still at it after ${Date.now() - started} ms: the command still runs under the lock (the keeper sends SIGKILL once exitguard run's --grace has passed)`,
    )
  }
  if (!send(lockPath, owner, first)) return notRunning(lockPath, snapshot, `PID ${owner.pid} ended before the signal`)
  const afterFirst = await gone(lockPath, snapshot, timeout)
  if (afterFirst) return result('signal', `PID ${owner.pid} ${afterFirst} ${Date.now() - started} ms after ${signalName(first)}`)
  if (!options.kill) return result('timeout', `PID ${owner.pid} still runs ${timeout} ms after ${signalName(first)}`)
  // Verified again: in `timeout` ms the holder may have died and its PID been reused.
  const again = findHolder(lockPath)
  if (again.state !== 'alive' || again.snapshot.id !== snapshot.id || !send(lockPath, owner, osConstants.signals.SIGKILL)) {
    reapIfStale(lockPath)
    return result('signal', `PID ${owner.pid} ended ${Date.now() - started} ms after ${signalName(first)}`)
  }
  const killedAt = Date.now()
  const afterKill = await gone(lockPath, snapshot, timeout)
  if (afterKill) return result('kill', `PID ${owner.pid} ignored ${signalName(first)} for ${timeout} ms; it ${afterKill} ${Date.now() - killedAt} ms after SIGKILL`)
  return result('timeout', `PID ${owner.pid} still runs ${timeout} ms after SIGKILL (stuck in the kernel? see ps -o stat= -p ${owner.pid})`)
}

function notRunning(lockPath: string, snapshot: Snapshot, reason: string): StopResult {
  const removed = reapIfStale(lockPath)
  return {
    stopped: true,
    how: 'not-running',
    pid: snapshot.owner.pid,
    owner: snapshot.owner,
    reason: `${reason}; nothing was signalled${removed ? `; removed the stale lock file it left` : ''}`,
    waited: 0,
  }
}

/** The process `owner` names is gone: no such PID, a zombie, or another start time. */
function pidGone(owner: LockOwner): boolean {
  return !judgeOwner(owner).alive
}

function reapIfStale(lockPath: string): boolean {
  try {
    return reapPidLock(lockPath)
  } catch {
    return false // a file we can't remove is reported by status; stopping still succeeded
  }
}

/**
 * Waits until the record `seen` no longer holds the lock (file removed or replaced: a library
 * holder or `exitguard run` releases it on SIGTERM) or its process is dead, and removes the file
 * a dead holder left. Says which within `timeout`, else null.
 */
async function gone(lockPath: string, seen: Snapshot, timeout: number): Promise<'ended' | 'released the lock' | null> {
  const started = Date.now()
  for (;;) {
    const now = readSnapshot(lockPath)
    if (!now || now.id !== seen.id) return pidGone(seen.owner) ? 'ended' : 'released the lock'
    if (judgeSnapshot(now, UNREADABLE_GRACE).dead) {
      reapIfStale(lockPath)
      return 'ended'
    }
    const left = timeout - (Date.now() - started)
    if (left <= 0) return null
    await new Promise((r) => setTimeout(r, Math.min(POLL_MS, left)))
  }
}

/**
 * Reads and judges the lock's holder. Alive only with positive proof of identity: a full
 * record from this host, boot and PID namespace whose PID still has the recorded start time.
 * Anything that can't be proven either way is refused with a typed error, never signalled.
 */
function findHolder(lockPath: string): Holder {
  const snapshot = readSnapshot(lockPath)
  if (!snapshot) return { state: 'none' }
  const verdict = judgeSnapshot(snapshot, UNREADABLE_GRACE)
  const { owner } = snapshot
  if (verdict.dead) return { state: 'dead', snapshot, reason: verdict.reason }
  if (snapshot.kind === 'invalid') {
    throw new ExitguardError(
      'EBADRECORD',
      `The lock file ${lockPath} holds no valid record (empty or unreadable, last written ${owner.createdAt}), so there is no process to signal. If no process uses it, remove it.`,
      { path: lockPath },
    )
  }
  if (verdict.foreign) {
    throw new ExitguardError('EFOREIGN', `Won't signal the holder of ${lockPath}: ${verdict.reason}. Stop it where it runs (${describeOwner(owner)}).`, { path: lockPath })
  }
  if (verdict.releasing) return { state: 'releasing', snapshot, reason: verdict.reason }
  const unverified = (why: string) =>
    new ExitguardError(
      'EUNVERIFIED',
      `Won't signal PID ${owner.pid} for ${lockPath}: ${why}, so a reused PID can't be told from the process that wrote it. Check it (ps -o lstart,args -p ${owner.pid}) and stop it yourself if it is yours.`,
      { path: lockPath },
    )
  if (snapshot.kind === 'pid') throw unverified('the file holds a bare PID without a start time')
  const me = selfIdentity()
  if (owner.pid === process.pid) {
    throw new ExitguardError('ESELF', `The lock ${lockPath} is held by this very process (PID ${owner.pid}); release the lock instead of stopping its holder.`, { path: lockPath })
  }
  if (owner.startTime === null) throw unverified('its record has no start time')
  if ((owner.bootId ?? null) !== (me.bootId ?? null)) throw unverified(`its record has no boot id to compare with this machine's`)
  if ((owner.pidNamespace ?? null) !== (me.pidNamespace ?? null)) throw unverified(`its record has no PID namespace to compare with this one's`)
  const now = readStartTime(owner.pid)
  if (now === null) {
    if (!pidExists(owner.pid)) return { state: 'dead', snapshot, reason: `no process has PID ${owner.pid}` }
    throw unverified(`its start time can't be read here`)
  }
  if (now !== owner.startTime) return { state: 'dead', snapshot, reason: `PID ${owner.pid} now belongs to another process (PID reused)` }
  const untrusted = recordDistrust(snapshot, verdict)
  if (untrusted) {
    throw new ExitguardError(
      'EUNTRUSTED',
      `Won't signal PID ${owner.pid} for ${lockPath}: ${untrusted}. If it is not your program, remove ${lockPath}; keep PID files where only their owner can write (docs/threat-model.md).`,
      { path: lockPath },
    )
  }
  return { state: 'alive', snapshot, reason: verdict.reason }
}

/**
 * Sends `signal` to the holder just verified; false if it had already gone (ESRCH).
 * A window of a few µs remains between the start-time check and kill(2), in which the holder
 * would have to die and its PID be handed to a new process; only a pidfd (Linux ≥ 5.3, no Node
 * API) closes it. The check itself is re-done right before every signal.
 */
function send(lockPath: string, owner: LockOwner, signal: number): boolean {
  if (readStartTime(owner.pid) !== owner.startTime) return false
  try {
    process.kill(owner.pid, signal)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ESRCH') return false
    if (code === 'EPERM') {
      throw new ExitguardError('EPERM', `Not permitted to signal PID ${owner.pid}, which holds ${lockPath} (${describeOwner(owner)}): it runs as another user. Run this as that user or as root.`, {
        path: lockPath,
        cause: err,
      })
    }
    throw err
  }
}

function checkPath(path: string): string {
  if (typeof path !== 'string') throw invalidArgType('path', 'a string', path)
  if (path === '' || path.includes('\0')) throw invalidArgValue('path', path, 'must be a non-empty path without NUL bytes')
  return resolve(path)
}

/** `killSignal`, or its deprecated alias `signal`, as a number. */
function firstSignal(options: StopHolderOptions): number {
  if (options.killSignal !== undefined && options.signal !== undefined) {
    throw invalidArgValue('signal', options.signal, 'is the deprecated name of "killSignal": give one or the other, not both')
  }
  if (options.signal !== undefined) return signalNumber('signal', options.signal)
  return signalNumber('killSignal', options.killSignal ?? 'SIGTERM')
}

/** A signal name ('SIGTERM', 'TERM') or number as its number; refuses 0 and unknown names. */
export function signalNumber(name: string, signal: unknown): number {
  const signals = osConstants.signals as Record<string, number>
  if (typeof signal === 'number') {
    if (Number.isInteger(signal) && Object.values(signals).includes(signal)) return signal
  } else if (typeof signal === 'string') {
    const upper = signal.toUpperCase()
    const number = signals[upper] ?? signals[`SIG${upper}`]
    if (number !== undefined) return number
  } else {
    throw invalidArgType(name, 'a signal name or number', signal)
  }
  throw invalidArgValue(name, signal, 'must be a signal this OS knows, e.g. "SIGTERM", "HUP" or 15')
}

function signalName(number: number): string {
  return Object.entries(osConstants.signals).find(([, n]) => n === number)?.[0] ?? `signal ${number}`
}
