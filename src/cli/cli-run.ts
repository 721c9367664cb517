import type { ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { ExitguardError, LockHeldError } from '../errors.js'
import { acquirePidLock, readPidLock } from '../locks/pid-lock.js'
import { stopHolder } from '../daemon/stop.js'
import { tempDir, type TempDir } from '../temp/temp.js'
import { describeOwner } from '../owner/describe.js'
import { readStartTime } from '../owner/start-time.js'
import type { LockOwner } from '../owner/identity.js'
import { configure } from '../exit/registry.js'
import { spawnHeld } from '../keeper/spawn-held.js'
import { EX, signalled, type CliIo, type Outcome } from './cli-common.js'
import { forwardedSignals } from './cli-signals.js'
import { signalGroup, stopGroup } from './process-group.js'

/** What `exitguard run` was asked to do, after its arguments were checked. */
export interface RunRequest {
  lock: string
  wait: number
  tmpdir: boolean
  data: unknown
  command: string[]
  /** A keeper process stops the command and releases the lock if this wrapper is SIGKILLed. Default true. */
  keeper?: boolean
  /** Milliseconds from the keeper's SIGTERM to its SIGKILL of the command. Default `DEFAULT_GRACE`. */
  grace?: number
  /** The exit code when the lock is held. Default 75 (EX_TEMPFAIL). */
  conflictCode?: number | undefined
  /** Print nothing when the lock is held (the --warn-after warning still goes out). */
  quiet?: boolean
  /** SIGTERM the command after this many ms (as timeout(1)); exit 124 if it then ends. */
  timeout?: number | undefined
  /** With `timeout`: SIGKILL this many ms after that SIGTERM; exit 137 if it took that. */
  killAfter?: number | undefined
  /** When the lock is held, warn if its holder has held it longer than this many ms. */
  warnAfter?: number | undefined
  /** Stop the verified holder first (SIGTERM, SIGKILL after --grace), then take the lock. */
  replace?: boolean
  /** A shared lock (see docs/shared-locks.md). */
  shared?: boolean
  /** A semaphore of this many slots. */
  slots?: number | undefined
  /**
   * The command leads a process group (and session) of its own: signals go to the whole group,
   * and what it leaves running there is stopped (SIGTERM, SIGKILL after `grace`) before the lock
   * is released. Default false.
   */
  group?: boolean
}

/** timeout(1)'s codes: the command ran out of time and ended on SIGTERM, or needed SIGKILL. */
export const TIMED_OUT = { TERM: 124, KILL: 137 } as const

/** How long the keeper lets the command end on SIGTERM before SIGKILL, once the wrapper is gone. */
export const DEFAULT_GRACE = 5000

/**
 * Takes the lock, runs the command with inherited stdio, forwards signals,
 * then releases and reports how the command ended. Never exits: the caller
 * (bin.ts) re-raises a signal or sets the exit code.
 */
export async function runCommand(req: RunRequest, io: CliIo): Promise<Outcome> {
  const abort = new AbortController()
  let child: ChildProcess | null = null
  let received: NodeJS.Signals | null = null
  // Our own listeners make exitguard's signal hook stand aside (see exit-paths.ts):
  // from here on, releasing and dying by the signal is our job.
  const onSignal = (signal: NodeJS.Signals) => {
    received ??= signal
    if (child && child.exitCode === null && child.signalCode === null) {
      if (req.group) signalGroup(child.pid!, signal)
      else child.kill(signal)
    } else abort.abort(new ExitguardError('EINTR', `interrupted by ${signal}`))
  }
  const forwarded = forwardedSignals()
  for (const signal of forwarded) process.on(signal, onSignal)
  // The keeper (docs/keeper.md) is what keeps "one at a time" true when this wrapper is SIGKILLed:
  // it stops the command, then removes the temp dir and the lock, in that order.
  if (req.keeper !== false) configure({ keeper: true })
  const cleanup: (() => unknown)[] = []
  try {
    let lock: Held
    try {
      lock = await acquire(req, abort.signal, io)
    } catch (err) {
      if (received) return signalled(received)
      return lockFailure(err, req, io)
    }
    cleanup.push(() => lock.release())
    // One line for cron logs: a takeover means the last run was killed (or crashed) mid-way.
    if (lock.tookOverFrom) io.stderr(`exitguard: took over ${lock.path ?? req.lock}: the last run, ${describeOwner(lock.tookOverFrom)}, died without releasing it.\n`)
    // The command learns what it holds (as consul lock's CONSUL_LOCK_HELD).
    const env: NodeJS.ProcessEnv = { ...io.env, EXITGUARD_LOCK: lock.path ?? req.lock }
    if (lock.slot) env.EXITGUARD_SLOT = String(lock.slot)
    if (req.tmpdir) {
      let dir: TempDir
      try {
        dir = await tempDir({ prefix: 'run-' })
      } catch (err) {
        io.stderr(`exitguard: could not create the private temp dir: ${(err as Error).message}\n`)
        return { code: EX.CANTCREAT, signal: null }
      }
      cleanup.push(() => dir.remove())
      env.TMPDIR = dir.path
      env.EXITGUARD_TMPDIR = dir.path
    }
    // A signal that came while we were taking the lock: don't start the command at all.
    if (received) return signalled(received)
    return await new Promise<Outcome>((resolve) => {
      const [file, ...args] = req.command as [string, ...string[]]
      const grace = req.grace ?? DEFAULT_GRACE
      // Through the keeper's gate when it runs: the command starts only once the keeper knows it.
      const started = spawnHeld(file, args, env, grace, req.group)
      child = started.child
      const pid = child.pid
      // Read now, while it runs: once it has ended, its PID may be another's.
      const leaderStart = req.group && pid !== undefined ? readStartTime(pid) : null
      const timedOut = req.timeout === undefined ? null : timeLimit(child, req.timeout, req.killAfter, req.group ?? false)
      child.once('error', (err: NodeJS.ErrnoException) => {
        // As a shell and env(1) do: 127 command not found, 126 found but not runnable.
        const code = err.code === 'ENOENT' ? EX.NOTFOUND : err.code === 'EACCES' || err.code === 'ENOEXEC' ? EX.NOEXEC : EX.OSERR
        io.stderr(`exitguard: ${spawnFailure(file, err, env)}\n`)
        resolve({ code, signal: null })
      })
      child.once('exit', (code, signal) => {
        const limit = timedOut?.end()
        const outcome = limit ? { code: limit === 'KILL' ? TIMED_OUT.KILL : TIMED_OUT.TERM, signal: null } : signal ? signalled(signal) : { code: code ?? 0, signal: null }
        const done = () => {
          started.held?.release()
          resolve(outcome)
        }
        // With --group, the lock (and the keeper's hold) stay until what the command left in its group has gone too.
        if (req.group && pid !== undefined) void stopGroup(pid, leaderStart, grace).then(done)
        else done()
      })
    })
  } finally {
    for (const signal of forwarded) process.removeListener(signal, onSignal)
    // LIFO, like the exit registry: the temp dir goes before the lock that guarded it.
    for (const release of cleanup.reverse()) {
      try {
        await release()
      } catch (err) {
        io.stderr(`exitguard: ${(err as Error).message}\n`)
      }
    }
  }
}

/**
 * As timeout(1): SIGTERM after `ms`, SIGKILL `killAfter` ms later. `end()` stops the timers and
 * says which signal ended it ('TERM', 'KILL'), or null if the command ended in time.
 */
function timeLimit(child: ChildProcess, ms: number, killAfter: number | undefined, group: boolean): { end(): 'TERM' | 'KILL' | null } {
  let sent: 'TERM' | 'KILL' | null = null
  let kill: NodeJS.Timeout | undefined
  // With --group, the whole group, as forwarded signals go.
  const send = (signal: NodeJS.Signals) => (group && child.pid !== undefined ? signalGroup(child.pid, signal) : child.kill(signal))
  const term = setTimeout(() => {
    sent = 'TERM'
    send('SIGTERM')
    if (killAfter !== undefined)
      kill = setTimeout(() => {
        sent = 'KILL'
        send('SIGKILL')
      }, killAfter)
  }, ms)
  return {
    end() {
      clearTimeout(term)
      clearTimeout(kill)
      return sent
    },
  }
}

/** What run needs of a PID lock or a PostgreSQL lock. */
interface Held {
  release(): unknown
  readonly path?: string
  /** Which slot (with --slots). */
  readonly slot?: number | null
  /** The dead holder whose stale lock file was taken over (PID locks only). */
  readonly tookOverFrom?: LockOwner | null
}

/** Why the command could not be started, in a shell's words ("command not found"), not spawn's. */
function spawnFailure(file: string, err: NodeJS.ErrnoException, env: NodeJS.ProcessEnv): string {
  const name = JSON.stringify(file)
  const isPath = file.includes('/')
  if (err.code === 'ENOENT') {
    if (!isPath) return `${name}: command not found (searched PATH=${env.PATH ?? ''})`
    // execve gives ENOENT too for a script whose #! interpreter is missing.
    return existsSync(file) ? `${name}: its interpreter (the #! line) was not found` : `${name}: no such file`
  }
  if (err.code === 'EACCES') return `${name}: permission denied (not an executable file, or a directory)`
  if (err.code === 'ENOEXEC') return `${name}: not an executable format (a script needs a #! line)`
  return `could not start ${name}: ${err.message}`
}

async function acquire(req: RunRequest, signal: AbortSignal, io: CliIo): Promise<Held> {
  const command = `exitguard run -- ${req.command.join(' ')}`.slice(0, 200)
  if (isPgUrl(req.lock)) {
    // Loaded only for a postgres:// lock: most runs lock a file, and start-up is their cost.
    const { acquirePgLock, parsePgLockUrl } = await import('../locks/pg-lock.js')
    const { connectionString, key } = parsePgLockUrl(req.lock)
    // The same command as for a PID lock, not process.argv: argv holds the --lock URL.
    return acquirePgLock(key, { connectionString, wait: req.wait, signal, data: req.data, command })
  }
  const options = { wait: req.wait, signal, data: req.data, command, shared: req.shared, slots: req.slots }
  if (!req.replace) return acquirePidLock(req.lock, options)
  try {
    return await acquirePidLock(req.lock, { ...options, wait: 0 })
  } catch (err) {
    if (!(err instanceof LockHeldError)) throw err
    // Held by shared runs (no lock file of an exclusive holder): there is no one holder to stop.
    if (readPidLock(req.lock).state === 'free') throw new LockHeldError(req.lock, err.owner, { message: `${err.message} --replace stops only an exclusive holder; it leaves shared ones alone.` })
  }
  // run-this-one: stop the verified holder as `exitguard stop --kill` would, then take the lock.
  // A holder that can't be verified (foreign, untrusted, another user's) is refused by stopHolder.
  let stopped: Awaited<ReturnType<typeof stopHolder>>
  try {
    stopped = await stopHolder(req.lock, { timeout: req.grace ?? DEFAULT_GRACE, kill: true })
  } catch (err) {
    // Refused (another host or namespace, not trusted, another user's): the lock stays held.
    const { owner } = readPidLock(req.lock)
    if (owner) throw new LockHeldError(req.lock, owner, { message: `--replace refused to stop the holder: ${(err as Error).message}` })
    throw err
  }
  if (!stopped.stopped) throw new ExitguardError('ETIMEDOUT', `--replace: ${stopped.reason}`, { path: req.lock })
  if (!req.quiet) io.stderr(`exitguard: --replace: ${stopped.reason}\n`)
  // The lock is free now, but another run may race us to it: wait as asked, at least a moment.
  return acquirePidLock(req.lock, { ...options, wait: Math.max(req.wait, 1000) })
}

export function isPgUrl(lock: string): boolean {
  return /^postgres(ql)?:\/\//i.test(lock)
}

/** One line on stderr (none for a busy lock with --quiet) and a sysexits code for a lock we could not take. */
function lockFailure(err: unknown, req: RunRequest, io: CliIo): Outcome {
  const message = (err as Error)?.message ?? String(err)
  const busy = err instanceof LockHeldError
  if (busy && req.warnAfter !== undefined) {
    const since = Date.parse(err.owner.createdAt)
    const held = Date.now() - since
    if (Number.isFinite(since) && held > req.warnAfter) {
      io.stderr(
        `exitguard: warning: ${describeOwner(err.owner)} has held ${err.path} for ${Math.round(held / 1000)} s, longer than --warn-after ${req.warnAfter} ms: runs are piling up behind it (stuck?)\n`,
      )
    }
  }
  if (!(busy && req.quiet)) io.stderr(`exitguard: ${message}\n`)
  if (busy && req.conflictCode !== undefined) return { code: req.conflictCode, signal: null }
  return { code: lockErrorCode(err, isPgUrl(req.lock)), signal: null }
}

/**
 * ELOCKED/ETIMEDOUT: 75 (EX_TEMPFAIL, try again later). A lock file that can't
 * be created: 73 (EX_CANTCREAT). PostgreSQL unreachable or pg missing: 69
 * (EX_UNAVAILABLE). Bad option values the library rejected: 64. Else 70.
 */
export function lockErrorCode(err: unknown, pg: boolean): number {
  if (err instanceof LockHeldError) return EX.TEMPFAIL
  const code = (err as NodeJS.ErrnoException | null)?.code
  if (code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_INVALID_ARG_TYPE') return EX.USAGE
  if (pg) return EX.UNAVAILABLE
  if (err instanceof ExitguardError) return code === 'EIO' ? EX.IOERR : EX.CANTCREAT
  return EX.SOFTWARE
}
