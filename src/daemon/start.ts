import { posixOnly } from './posix-only.js'
import type { SignalName } from './signal-name.js'
import type { ChildProcess } from 'node:child_process'
import { childProcess } from '../builtins.js'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { ExitguardError, fsError, type ExitguardErrorCode } from '../errors.js'
import { readStartTime } from '../owner/start-time.js'
import { selfIdentity } from '../owner/self.js'
import type { LockOwner, ProcessIdentity } from '../owner/identity.js'
import { holderOption } from '../locks/lock-record.js'
import { acquirePidLock, reapPidLock, type PidLock } from '../locks/pid-lock.js'

/** What `exitguard start` was asked to do, after its arguments were checked. */
export interface StartRequest {
  /** The lock file; its first line becomes the daemon's own PID. */
  lock: string
  /** Where the daemon's stdout and stderr go (appended, as `>>` does); null: /dev/null. */
  log: string | null
  /** Milliseconds to wait for a held lock (as `acquirePidLock`'s `wait`). */
  wait: number
  command: string[]
  /** Aborts a wait for the lock; the gated child is then killed before it ran anything. */
  signal?: AbortSignal
}

/** A daemon that runs and holds its lock. */
export interface StartedDaemon {
  pid: number
  owner: LockOwner
}

/** The daemon could not be run, or ended before `start` saw it running. */
export class DaemonStartError extends ExitguardError {
  /** The gate's or the daemon's exit code (127 not found, 126 not executable, as a shell), or null. */
  readonly exitCode: number | null
  readonly signal: SignalName | null

  constructor(code: ExitguardErrorCode, message: string, exitCode: number | null, signal: SignalName | null) {
    super(code, message)
    this.exitCode = exitCode
    this.signal = signal
  }
}

/**
 * The gate: a POSIX shell that waits for one line on stdin before it `exec`s the command.
 * `exec` keeps the PID and the start time, so the lock can be taken in the child's name
 * before the command runs; EOF (start died or found the lock held) ends it unrun.
 */
const GATE = 'read _ || exit 0; exec "$@" </dev/null'
/** $0 of the gate: the shell prefixes its own error messages (in the log) with it. */
const GATE_NAME = 'exitguard start'
/** How long `exec` may take to show, once the gate is open, before start gives up. */
const EXEC_TIMEOUT = 10_000

/**
 * Starts `command` detached (a new session, stdin /dev/null, stdout and stderr to the log),
 * holding the PID lock in its own name, and returns once it runs. The lock stays held for as
 * long as the command lives: its record names the command's PID and start time.
 */
export async function startDaemon(req: StartRequest): Promise<StartedDaemon> {
  posixOnly('exitguard start (startDaemon)')
  const lockPath = resolve(req.lock)
  let out: number | 'ignore' = 'ignore'
  if (req.log !== null) {
    try {
      out = openSync(req.log, 'a')
    } catch (err) {
      throw fsError(err, resolve(req.log), 'open the log file')
    }
  }
  let child: ChildProcess
  try {
    // detached: setsid(), so neither the terminal's Ctrl-C nor a signal to start's process group reaches it.
    child = childProcess().spawn('/bin/sh', ['-c', GATE, GATE_NAME, ...req.command], { detached: true, stdio: ['pipe', out, out] })
  } finally {
    if (typeof out === 'number') closeSync(out)
  }
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()))
  child.on('error', () => {}) // reported below through child.pid / exitCode
  child.stdin!.on('error', () => {}) // EPIPE if the gate died
  const pid = child.pid
  if (pid === undefined) {
    await new Promise((r) => setImmediate(r))
    throw new DaemonStartError('ESPAWN', `Could not start /bin/sh to run ${show(req.command)}.`, null, null)
  }
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  }
  let lock: PidLock
  try {
    const me = selfIdentity()
    // Same host, boot and PID namespace as ours: childProcess().spawn() unshares nothing.
    const holder: ProcessIdentity = { ...me, pid, startTime: readStartTime(pid) }
    lock = await acquirePidLock(lockPath, {
      wait: req.wait,
      signal: req.signal,
      command: show(req.command),
      checkInterval: 0,
      [holderOption]: holder,
    } as Parameters<typeof acquirePidLock>[1])
  } catch (err) {
    await kill() // it never ran the command: the gate was still closed
    throw err
  }
  const before = commandLine(pid)
  // From here the record belongs to the child, whatever happens to start: handed over in the same
  // tick as the gate opens, so no exit hook of ours can remove the file of a running daemon.
  lock.handOver()
  child.stdin!.end('\n')
  try {
    await execSeen(child, pid, before)
  } catch (err) {
    await kill()
    reapPidLock(lockPath) // removes it only with proof the child is dead (it is: we reaped it)
    throw err
  }
  child.stdin!.destroy()
  child.unref()
  return { pid, owner: lock.owner }
}

/** Resolves once `pid` runs something other than the gate; rejects if it exits first. */
async function execSeen(child: ChildProcess, pid: number, before: string | null): Promise<void> {
  const started = Date.now()
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw exitedError(child)
    const now = commandLine(pid)
    // Empty: a zombie (exec'd and ended, or failed): the exit event tells which, next turn.
    if (before === null ? Date.now() - started > 50 : now !== null && now !== '' && now !== before) return
    if (Date.now() - started > EXEC_TIMEOUT) {
      throw new DaemonStartError('ETIMEDOUT', `PID ${pid} did not start its command within ${EXEC_TIMEOUT} ms; killed it.`, null, null)
    }
    await new Promise((r) => setTimeout(r, 1))
  }
}

function exitedError(child: ChildProcess): DaemonStartError {
  const code = child.exitCode
  const signal = child.signalCode
  const [file] = child.spawnargs.slice(4)
  if (code === 127) return new DaemonStartError('ENOENT', `Could not start ${JSON.stringify(file)}: command not found (the shell's message is in the log, if any).`, code, null)
  if (code === 126) return new DaemonStartError('EACCES', `Could not start ${JSON.stringify(file)}: found but not executable (permission denied, or not a program).`, code, null)
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`
  return new DaemonStartError(
    'EEXITED',
    `${JSON.stringify(file)} ${how} at once, before start returned. A daemon must stay in the foreground (not fork into the background itself); see its log.`,
    code,
    signal,
  )
}

/** The process's argument vector as the OS shows it (Linux /proc, macOS ps), or null. */
function commandLine(pid: number): string | null {
  if (process.platform === 'linux') {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'latin1')
    } catch {
      return ''
    }
  }
  if (process.platform === 'darwin') {
    try {
      return childProcess()
        .execFileSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .trim()
    } catch {
      return ''
    }
  }
  return null
}

/** The command as shown in the owner record and messages: one line, shortened. */
function show(command: string[]): string {
  const text = command.join(' ').replace(/\s+/g, ' ')
  return text.length > 200 ? text.slice(0, 197) + '...' : text
}
