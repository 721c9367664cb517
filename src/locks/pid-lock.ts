import { closeSync, fstatSync, linkSync, lstatSync, openSync, renameSync, statSync, unlinkSync, watch, writeSync, constants, type FSWatcher } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { checkFilePath, ExitguardError, fsError, invalidArgType, invalidArgValue, LockCompromisedError, LockHeldError, LockTimeoutError } from '../errors.js'
import { formatRecord, heldByThisProcess, holderOption, judgeSnapshot, makeOwner, readSnapshot, serialiseData, UNREADABLE_GRACE, type Snapshot } from './lock-record.js'
import { checkSocket, recordDistrust, removeDeadSocket, writerOf } from './record-trust.js'
import { openReadersDir, readerFiles, readersDirOf, removeReadersDirIfEmpty } from './readers-dir.js'
import { MAX_SLOTS, slotNumber, slotPath } from './slot-name.js'
import { describeOwner } from '../owner/describe.js'
import { inInitialPidNamespace } from '../owner/namespace.js'
import { onThisMachine } from '../owner/judge.js'
import { selfIdentity } from '../owner/self.js'
import type { LockOwner, ProcessIdentity } from '../owner/identity.js'
import { LockGuard } from './lock-guard.js'
import type { AbortSignalLike } from '../abort-signal-like.js'
import { exitRegistry } from '../exit/registry.js'
import { Listener, validateListen, type ListenOptions, type MessageHandler } from '../messaging/listener.js'
import { holdLock, threadKeeper, type KeeperHold } from '../keeper/hold.js'
import { HolderPipe, pipeNameFor } from './holder-pipe.js'
import { retryWhileBusy } from './busy-retry.js'
import type { Keeper } from '../keeper/keeper.js'
import { sleepSync } from '../internal/sleep-sync.js'

/**
 * Options of `acquirePidLock` and `acquirePidLockSync`. `D` is the type of `data`. Every option
 * may be `undefined`, which means its default.
 */
export interface PidLockOptions<D = unknown> {
  /** Milliseconds to wait for a held lock; 0 (the default) fails at once; `Infinity` waits for ever. */
  wait?: number | undefined
  /** Stored in the owner record (JSON, at most 4 KiB), e.g. a port, so a second instance can find the first. */
  data?: D | undefined
  /** Called (never thrown) if the lock file is removed or replaced while held. Default: a warning on stderr. */
  onCompromised?: ((err: LockCompromisedError) => void) | undefined
  /**
   * Write the bare PID alone, for tools that read the whole file. Such a file is stale only when
   * no process has the PID (or it is a zombie), and it is refused (`EPIDNS`) in a PID namespace
   * other than the host's, where a bare PID can't be told apart from another container's.
   */
  pidOnly?: boolean | undefined
  /** How old an unreadable lock file (empty, garbage) must be before it counts as stale. Default 5000 ms. */
  unreadableGrace?: number | undefined
  /** How often a held lock checks that its file is still its own. Default 1000 ms; 0 turns it off; at most 2^31-1. */
  checkInterval?: number | undefined
  /** The command shown to a second instance; defaults to this process's command line. Kept to 256 characters. */
  command?: string | undefined
  /**
   * Listen for messages from other processes (`messageHolder`, `exitguard send`) while the
   * lock is held; what it returns (or resolves) is the reply. See docs/messaging.md.
   */
  onMessage?: MessageHandler | undefined
  /** How to listen (socket directory, size cap, connections, deadline); only with `onMessage`. */
  messaging?: ListenOptions | undefined
  /**
   * Take a shared lock: any number of shared holders at once, or one exclusive holder (any
   * acquire without `shared`). Each shared holder's record is a PID lock of its own in
   * `<path>.readers/`; see docs/shared-locks.md.
   */
  shared?: boolean | undefined
  /**
   * A semaphore: at most `slots` holders at once, each holding one of the PID lock files
   * `<path>.slot1` … `<path>.slot<N>` (`lock.slot` says which). From 1 to 1000.
   */
  slots?: number | undefined
}

/** Options of the async face: the sync ones plus an AbortSignal for the wait. */
export interface PidLockAsyncOptions<D = unknown> extends PidLockOptions<D> {
  /** Aborts the wait; the promise rejects with `signal.reason`. */
  signal?: AbortSignalLike | undefined
}

/**
 * What `readPidLock` reports: `free`, or `held`/`stale` with the holder's record. Narrow on
 * `state`; `held` and `stale` always carry `owner`. `D` is the type you expect its `data` to have.
 *
 * @example
 * const status: PidLockStatus<{ port: number }> = readPidLock('/tmp/app.pid')
 * if (status.state === 'held') console.log(`PID ${status.owner.pid}, port ${status.owner.data.port}`)
 */
export type PidLockStatus<D = unknown> = PidLockFree | PidLockTaken<'held', D> | PidLockTaken<'stale', D>

/**
 * No lock file: `readPidLock`'s `{ state: 'free' }`.
 *
 * @example
 * const status = readPidLock('/tmp/app.pid')
 * if (status.state === 'free') console.log('not running') // status is a PidLockFree
 */
export interface PidLockFree {
  state: 'free'
  owner?: undefined
  reason?: undefined
  foreign?: undefined
  listening?: undefined
  fileOwner?: undefined
  untrusted?: undefined
}

/**
 * A lock file and its holder's record: `held` (alive, or on another host) or `stale` (proven dead).
 *
 * @example
 * const status = readPidLock('/tmp/app.pid')
 * if (status.state === 'stale') console.log(`PID ${status.owner.pid} died: ${status.reason}`) // a PidLockTaken<'stale'>
 */
export interface PidLockTaken<S extends 'held' | 'stale' = 'held' | 'stale', D = unknown> {
  state: S
  /** The holder's record (for an unreadable file, a placeholder with PID 0). */
  owner: LockOwner<D>
  /** Why it is held or stale, for people: "PID 4242 is running", "no process has PID 4242". */
  reason: string
  /** The holder is on another host and could not be checked. */
  foreign: boolean
  /** The holder took the lock with `onMessage` and its socket is there: `messageHolder` can reach it. */
  listening: boolean
  /**
   * The uid that owns the lock file: who wrote the record (null on Windows). The record itself
   * can't tell: anyone who can create files in a shared directory can write any record.
   */
  fileOwner: number | null
  /**
   * Null when the record may be acted on; else why not (docs/threat-model.md): it names a live
   * process, or a socket, that its writer could not have signalled or made itself, or its
   * directory lets others replace it. `stopHolder`, `signalHolder` and `messageHolder` refuse
   * such a record (`EUNTRUSTED`); `listening` is then false.
   */
  untrusted: string | null
}

const defaults = { wait: 0, pidOnly: false, unreadableGrace: UNREADABLE_GRACE, checkInterval: 1000 }
/** A waiter re-checks this often whether the holder died (a kill -9 sends no file event). */
const POLL_MS = 10

/**
 * A held PID lock. Release it with `release()` or `using`; otherwise it is
 * released when the process exits (any exit but SIGKILL, after which the next
 * run takes it over).
 *
 * `release()` deletes the lock file if it is still ours and unregisters the exit
 * callback; it is idempotent. A lock file removed or replaced meanwhile is left
 * alone and reported through `onCompromised`. `released` is true once released
 * (or found lost and then released).
 */
export class PidLock<D = unknown> extends LockGuard {
  /** Absolute path of the lock file. */
  readonly path: string
  /** This process's record, as written in the lock file; `data` is the `data` option (`D`). */
  readonly owner: LockOwner<D>
  /** The dead holder's record when a stale lock was taken over, else null. */
  readonly tookOverFrom: LockOwner | null
  readonly #fd: number
  readonly #ino: number
  readonly #dev: number
  /** dev and ino as bigints: NTFS file ids take 64 bits, more than a number holds exactly. */
  readonly #key: string
  #handedOver = false
  /** The message Listener, or on Windows without onMessage the bare pipe that says we live. */
  readonly #listener: Endpoint | null
  /** The keeper's copy (keeper option on): it unlinks the file if this process is killed. */
  readonly #keeper: KeeperHold | null
  #slot: number | null = null
  #shared = false

  /** @internal Use `acquirePidLock` or `acquirePidLockSync`. */
  constructor(won: WonPidLock<D>) {
    const { path, file, options } = won
    super(`pid lock ${path}`, options.onCompromised)
    this.#keeper = holdLock(won.keeper, path, file.dev, file.ino, won.owner.token)
    if (this.#keeper) this.relabel(`pid lock ${path}${this.#keeper.note}`)
    this.path = path
    this.owner = won.owner
    this.tookOverFrom = won.tookOverFrom
    // The open descriptor pins the inode: while we hold it, no new file can get its number.
    this.#fd = file.fd
    this.#ino = file.ino
    this.#dev = file.dev
    this.#key = file.key
    if (options.checkInterval > 0) watchdog.add(this, options.checkInterval)
    this.#listener = won.listener
    won.listener?.activate()
  }

  /** Which slot this lock holds (the `slots` option: `<path>.slot<N>` is `path`), else null. */
  get slot(): number | null {
    return this.#slot
  }

  /** True for a shared holder (the `shared` option); `path` is then its record in `<lock>.readers/`. */
  get shared(): boolean {
    return this.#shared
  }

  /** @internal Set once, at acquire. */
  setMode(mode: { slot?: number; shared?: boolean }): this {
    this.#slot = mode.slot ?? null
    this.#shared = mode.shared ?? false
    return this
  }

  /** @internal Checks the file is still ours; reports once if not. */
  check(): boolean {
    if (this.released || this.compromised) return false
    const lost = this.#lostBecause()
    if (lost) this.compromise(new LockCompromisedError(this.path, lost))
    return !lost
  }

  #lostBecause(): string | null {
    try {
      return fileKey(lstatSync(this.path, { bigint: true })) === this.#key ? null : 'the lock file was replaced by another file'
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'the lock file was deleted'
      return `the lock file could not be checked (${(err as Error).message})`
    }
  }

  /**
   * @internal For `exitguard start`: the record names another process (the daemon), which holds
   * the lock from now on, for as long as it lives. Stops guarding the file without removing it.
   */
  handOver(): void {
    this.#handedOver = true
    this.release()
  }

  /** @internal A removal that fails keeps the descriptor (it pins the inode the retry checks). */
  protected removeHeld(): void {
    const lost = this.compromised ? null : this.#lostBecause()
    if (lost) this.compromise(new LockCompromisedError(this.path, lost))
    // The window between this check and the unlink is the one any unlink-based lock has; it is a few µs.
    else if (!this.compromised && !this.#handedOver) {
      try {
        unlinkSync(this.path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(err, this.path, 'remove the lock file')
      }
    }
    // Not before: a removal that failed leaves the lock held, and still watched.
    watchdog.delete(this)
    // Handed over, the file stays ours to the keeper's eyes: it must hear of it before we end.
    this.#keeper?.release(this.#handedOver)
    closeSync(this.#fd)
    // After the lock file: a sender that finds the socket gone then finds the lock gone too,
    // and on Windows a checker that finds the pipe gone (proof of death) finds no lock file.
    this.#listener?.close()
  }
}

/** @internal What a won acquire hands to the `PidLock` it makes. */
export interface WonPidLock<D = unknown> {
  path: string
  owner: LockOwner<D>
  /** The dead holder's record when a stale lock was taken over. */
  tookOverFrom: LockOwner | null
  /** Our record's open descriptor and identity; `key` is dev and ino as bigints. */
  file: { fd: number; ino: number; dev: number; key: string }
  options: Required<Pick<PidLockOptions, 'checkInterval'>> & PidLockOptions
  listener: Endpoint | null
  keeper: Keeper | null
}

/**
 * Takes the PID lock at `path`, or throws `LockHeldError` (`ELOCKED`) naming
 * the holder. A lock left by a dead process (kill -9, crash, reboot) is taken
 * over at once. With `wait`, polls every 10 ms (the sync face cannot watch files).
 *
 * @example
 * using lock = acquirePidLockSync('/tmp/nightly-export.pid', { data: { port: 8080 } })
 * // only one export runs; the lock goes when this scope or the process ends
 * console.log(lock.owner.data.port) // 8080: lock is a PidLock<{ port: number }>
 */
export function acquirePidLockSync<D = null>(path: string, options?: PidLockOptions<D>): PidLock<D>
export function acquirePidLockSync(path: string, options: PidLockOptions = {}): PidLock {
  if ((options as PidLockAsyncOptions).signal !== undefined) {
    throw new ExitguardError('ESYNC', 'acquirePidLockSync cannot honour an AbortSignal; use acquirePidLock for an abortable wait.')
  }
  const opts = validate(path, options, true)
  const attempt = new Contender(opts)
  const started = Date.now()
  try {
    for (;;) {
      const result = attempt.try()
      if (result instanceof PidLock) return result
      const left = opts.wait - (Date.now() - started)
      if (left <= 0) throw heldError(opts, result, started)
      sleepSync(Math.min(POLL_MS, left))
    }
  } finally {
    attempt.close()
  }
}

/**
 * Takes the PID lock at `path`; the async face. With `wait`, wakes within a
 * few ms of the holder's release (it watches the directory) or death, and
 * honours `signal`.
 *
 * @example
 * const lock = await acquirePidLock('/run/user/1000/app.pid', { wait: 5000, data: { port: 8080 } })
 * try { await serve(lock.owner.data.port) } finally { lock.release() }
 */
export function acquirePidLock<D = null>(path: string, options?: PidLockAsyncOptions<D>): Promise<PidLock<D>>
export async function acquirePidLock(path: string, options: PidLockAsyncOptions = {}): Promise<PidLock> {
  const opts = validate(path, options, true)
  const { signal } = options
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('signal', 'an AbortSignal', signal)
  signal?.throwIfAborted()
  const attempt = new Contender(opts)
  const started = Date.now()
  const watchers: FSWatcher[] = []
  try {
    let result = attempt.try()
    if (result instanceof PidLock || opts.wait <= 0) {
      if (result instanceof PidLock) return result
      throw heldError(opts, result, started)
    }
    let wake: (() => void) | null = null
    const base = basename(opts.path)
    try {
      // Wakes us the moment the lock file (or a slot, or the shared holders' directory) changes;
      // the poll below covers a holder's death.
      const watcher = watch(dirname(opts.path), { persistent: false }, (_event, name) => {
        if (name === null || name === base || slotNumber(base, name) !== null || name === `${base}.readers`) wake?.()
      })
      watchers.push(watcher.on('error', () => {}))
    } catch {
      // no inotify here (e.g. some network file systems): the poll alone serves
    }
    let readersWatched = opts.shared || opts.slots !== undefined
    const watchReaders = () => {
      // An exclusive holder waiting for shared ones to go: their records are in a subdirectory.
      if (readersWatched) return
      try {
        watchers.push(watch(readersDirOf(opts.path), { persistent: false }, () => wake?.()).on('error', () => {}))
        readersWatched = true
      } catch {
        // no directory (yet), or no inotify: the poll serves
      }
    }
    while (!(result instanceof PidLock)) {
      const left = opts.wait - (Date.now() - started)
      if (left <= 0) throw heldError(opts, result, started)
      watchReaders()
      await new Promise<void>((resolveWait, rejectWait) => {
        const done = () => {
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          wake = null
        }
        const onAbort = () => {
          done()
          rejectWait(signal!.reason)
        }
        const wakeUp = () => {
          done()
          resolveWait()
        }
        const timer = setTimeout(wakeUp, Math.min(POLL_MS, left))
        wake = wakeUp
        signal?.addEventListener('abort', onAbort, { once: true })
      })
      result = attempt.try()
    }
    return result
  } finally {
    for (const watcher of watchers) watcher.close()
    attempt.close()
  }
}

/**
 * Reports who holds the lock at `path` without taking anything: `free`, `held`
 * (with the owner) or `stale` (the owner is provably dead; the next acquire takes it over).
 *
 * @example
 * const status = readPidLock<{ port: number } | null>('/tmp/app.pid')
 * if (status.state === 'held') console.log(`running as PID ${status.owner.pid}, port ${status.owner.data?.port}`)
 */
export function readPidLock<D = unknown>(path: string, options?: Pick<PidLockOptions, 'unreadableGrace'>): PidLockStatus<D>
export function readPidLock(path: string, options: Pick<PidLockOptions, 'unreadableGrace'> = {}): PidLockStatus {
  const opts = validate(path, options)
  const snapshot = readSnapshot(opts.path)
  if (!snapshot) return { state: 'free' }
  const verdict = judgeSnapshot(snapshot, opts.unreadableGrace)
  let untrusted = recordDistrust(snapshot, verdict)
  let listening = false
  if (!verdict.dead && untrusted === null) {
    const socket = checkSocket(snapshot.owner, writerOf(snapshot.stats))
    if (typeof socket === 'object' && 'untrusted' in socket) untrusted = socket.untrusted
    else if (socket !== 'none') {
      // 'denied': another user's private directory, so it can't be seen from here, nor misused.
      listening = true
      if (socket !== 'denied') socket.close()
    }
  }
  const taken = { owner: snapshot.owner, reason: verdict.reason, foreign: verdict.foreign, listening, fileOwner: writerOf(snapshot.stats), untrusted }
  return verdict.dead ? { state: 'stale', ...taken } : { state: 'held', ...taken }
}

/**
 * Removes the lock file at `path` if, and only if, its holder is provably
 * dead, with the same race-free protocol as a takeover. Returns whether it
 * removed it. For reaping leftovers; never touches a live or foreign lock.
 *
 * @example
 * if (reapPidLock('/tmp/app.pid')) console.log('removed a lock left by a crashed run')
 */
export function reapPidLock(path: string, options: Pick<PidLockOptions, 'unreadableGrace'> = {}): boolean {
  return reapLockAt(path, path, options)
}

/**
 * @internal Removes `name`, the lock at `path` or a claim on it (`<path>.break.<id>`), if its
 * holder is provably dead. It goes through the takeover protocol with a full record: while
 * our claim stands, no taker in any namespace judges it dead, and a taker that is itself
 * breaking `name` has the claim we would need, so we never delete a live taker's file.
 */
export function reapLockAt(path: string, name: string, options: Pick<PidLockOptions, 'unreadableGrace'> = {}): boolean {
  const opts = validate(path, { unreadableGrace: options.unreadableGrace }, true)
  const attempt = new Attempt(opts.path, opts)
  try {
    return attempt.reap(resolve(name))
  } finally {
    attempt.close()
  }
}

type Validated = typeof defaults & PidLockOptions & { path: string; dataJson: string | undefined }

/**
 * The longest lock file name (bytes) we take: a claim is named `<name>.break.<id>`, with an id
 * of up to 65 characters, and every such name must fit in the file system's 255.
 */
export const MAX_LOCK_NAME = 255 - '.break.'.length - 65

function validate(path: string, options: PidLockOptions, creates = false): Validated {
  if (typeof path !== 'string') throw invalidArgType('path', 'a string', path)
  if (path === '' || path.includes('\0')) throw invalidArgValue('path', path, 'must be a non-empty path without NUL bytes')
  checkFilePath('path', path)
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options)
  const opts: Validated = {
    ...options,
    path: resolve(path),
    wait: options.wait ?? defaults.wait,
    pidOnly: options.pidOnly ?? defaults.pidOnly,
    unreadableGrace: options.unreadableGrace ?? defaults.unreadableGrace,
    checkInterval: options.checkInterval ?? defaults.checkInterval,
    dataJson: undefined,
  }
  if (options.pidOnly !== undefined && typeof options.pidOnly !== 'boolean') throw invalidArgType('pidOnly', 'a boolean', options.pidOnly)
  if (typeof opts.wait !== 'number' || !(opts.wait >= 0)) throw invalidArgValue('wait', opts.wait, 'must be a number of milliseconds >= 0 (or Infinity)')
  for (const name of ['unreadableGrace', 'checkInterval'] as const) {
    if (typeof opts[name] !== 'number' || !(opts[name] >= 0) || !Number.isFinite(opts[name])) {
      throw invalidArgValue(name, opts[name], 'must be a finite number of milliseconds >= 0')
    }
  }
  // A timer longer than this overflows and fires every millisecond.
  if (opts.checkInterval > 2 ** 31 - 1) throw invalidArgValue('checkInterval', opts.checkInterval, `must be at most ${2 ** 31 - 1} ms (about 24.8 days)`)
  if (opts.onCompromised !== undefined && typeof opts.onCompromised !== 'function') throw invalidArgType('onCompromised', 'a function', opts.onCompromised)
  if (opts.command !== undefined && typeof opts.command !== 'string') throw invalidArgType('command', 'a string', opts.command)
  opts.dataJson = serialiseData(opts.data)
  if (creates) {
    const bytes = Buffer.byteLength(basename(opts.path))
    if (bytes > MAX_LOCK_NAME) {
      throw invalidArgValue(
        'path',
        path,
        `has a file name of ${bytes} bytes; a PID lock's name may take at most ${MAX_LOCK_NAME}, leaving room for the names of the claims a takeover creates beside it`,
      )
    }
    if (opts.pidOnly && !inInitialPidNamespace()) {
      throw new ExitguardError(
        'EPIDNS',
        `pidOnly can't be used for ${opts.path} here: this process runs in a PID namespace other than the host's (a container), and a bare PID names no namespace, so a process in another namespace sharing the directory could judge this live lock stale. Drop pidOnly: the full record names its namespace.`,
        { path: opts.path },
      )
    }
  }
  if (opts.onMessage !== undefined) {
    validateListen(opts.onMessage, opts.messaging)
    if (opts.pidOnly) throw invalidArgValue('onMessage', opts.onMessage, 'cannot be combined with pidOnly: a bare PID file has no room for the socket path')
  } else if (opts.messaging !== undefined) {
    throw invalidArgValue('messaging', opts.messaging, 'needs onMessage (the handler the messages go to)')
  }
  validateMode(opts, path)
  return opts
}

/** The `shared` and `slots` options, and what they can't be combined with. */
function validateMode(opts: Validated, path: string): void {
  if (opts.shared !== undefined && typeof opts.shared !== 'boolean') throw invalidArgType('shared', 'a boolean', opts.shared)
  const { slots } = opts
  if (slots !== undefined && (typeof slots !== 'number' || !Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS)) {
    throw invalidArgValue('slots', slots, `must be a whole number from 1 to ${MAX_SLOTS}`)
  }
  if (!opts.shared && slots === undefined) return
  const mode = opts.shared ? 'shared' : 'slots'
  if (opts.shared && slots !== undefined) throw invalidArgValue('slots', slots, 'cannot be combined with shared')
  if (opts.pidOnly) throw invalidArgValue(mode, opts[mode], 'cannot be combined with pidOnly: a bare PID file has no room for the other holders')
  // messageHolder(path) addresses the one holder of path; which of several would it be?
  if (opts.onMessage !== undefined) throw invalidArgValue(mode, opts[mode], 'cannot be combined with onMessage')
  const bytes = Buffer.byteLength(basename(opts.path)) + `.slot${MAX_SLOTS}`.length
  if (slots !== undefined && bytes > MAX_LOCK_NAME)
    throw invalidArgValue('path', path, `has a file name too long for slots: with ".slot${MAX_SLOTS}" it takes ${bytes} bytes, more than ${MAX_LOCK_NAME}`)
}

function heldError(opts: Validated, held: Held, started: number): LockHeldError {
  const { snapshot } = held
  const waited = Date.now() - started
  // One refusal, two faces: ELOCKED at once, or ETIMEDOUT after a wait, with the same words.
  const refuse = (message: string, afterWait = `Gave up after waiting ${waited} ms: ${message}`) =>
    opts.wait > 0 ? new LockTimeoutError(opts.path, snapshot.owner, waited, { message: afterWait }) : new LockHeldError(opts.path, snapshot.owner, { message })
  if (opts.slots !== undefined) {
    const holders = slotHolders(opts.path, opts.slots, opts.unreadableGrace)
    return refuse(`All ${opts.slots} slots of the lock ${opts.path} are held: ${holders.join('; ')}. Wait for one to finish (--wait), or raise the number of slots.`)
  }
  if (snapshot.path.startsWith(`${readersDirOf(opts.path)}/`)) {
    const count = readerFiles(opts.path)?.files.length ?? 0
    return refuse(
      `The lock ${opts.path} is held shared by ${describeOwner(snapshot.owner)}${count > 1 ? ` and up to ${count - 1} more` : ''}; an exclusive holder waits until every shared one has released it.`,
    )
  }
  if (opts.shared && snapshot.kind === 'record' && snapshot.path === opts.path && !heldByThisProcess(snapshot)) {
    return refuse(`The lock ${opts.path} is held exclusively by ${describeOwner(snapshot.owner)}; shared holders wait until it has released it.`)
  }
  if (snapshot.kind === 'invalid') {
    // No PID to name (and "kill 0" would signal the caller's own process group).
    return refuse(
      `The lock file ${opts.path} holds no valid record (empty or unreadable, last written ${snapshot.owner.createdAt}). It counts as stale once it is ${opts.unreadableGrace} ms old; if no process uses it, remove it.`,
    )
  }
  if (snapshot.kind === 'unknown') {
    return refuse(
      `The lock ${opts.path} holds a record this version of exitguard can't read (from a newer version, or longer than 8 KiB), naming PID ${snapshot.owner.pid} on host ${snapshot.owner.hostname}. This version never judges such a holder dead: wait for it to finish, or, if no process holds the lock, remove the file.`,
    )
  }
  if (heldByThisProcess(snapshot)) {
    // Not "kill <our own PID>": the holder is a PidLock of this very process.
    // It may be this thread's own PidLock, another thread's, or one a terminated worker left.
    const holder = `this process (another thread or copy of exitguard) since ${snapshot.owner.createdAt}`
    const advice =
      'PID locks are not re-entrant: release the first PidLock before taking it again; a worker ended by terminate() with its keeper turned off leaves its locks held until this process exits.'
    return refuse(`The lock ${opts.path} is held by ${holder}. ${advice}`, `Gave up after waiting ${waited} ms: the lock ${opts.path} is still held by ${holder}. ${advice}`)
  }
  // (Not another machine of the same hostname: that one has another boot id.)
  if (held.foreign && onThisMachine(snapshot.owner) && (!snapshot.owner.bootId || snapshot.owner.bootId === selfIdentity().bootId)) {
    // Foreign on this host: another PID namespace (a container), not another host.
    return refuse(
      `The lock ${opts.path} is held by ${describeOwner(snapshot.owner)} in another PID namespace (e.g. another container sharing this directory): that PID can't be checked from here. If the process there is gone, remove ${opts.path} by hand.`,
    )
  }
  const keeper = held.releasing ? held.reason : null
  if (keeper) {
    // Not "kill <holder>": the holder is dead; its keeper is stopping its command (docs/keeper.md).
    return refuse(`The lock ${opts.path} is still held: ${keeper}. That takes at most the command's grace period (exitguard run --grace); wait for it (--wait) rather than removing the file.`)
  }
  const untrusted = recordDistrust(snapshot, { dead: false, foreign: held.foreign, reason: '' })
  if (untrusted) {
    // Not "kill <PID>": the record may be planted, naming someone else's process.
    return refuse(
      `The lock ${opts.path} is held according to its file, which names ${describeOwner(snapshot.owner)}, but the record is not trusted: ${untrusted}. Don't signal that process; if it is not your program, remove ${opts.path}, and keep lock files where only you can write (docs/threat-model.md).`,
    )
  }
  if (opts.wait > 0) return new LockTimeoutError(opts.path, snapshot.owner, waited)
  return new LockHeldError(opts.path, snapshot.owner, { foreign: held.foreign })
}

/** What PidLock needs of the Listener, or of the Windows HolderPipe that stands in for it. */
type Endpoint = Pick<Listener, 'activate' | 'close'>

/** A file's identity: dev and ino from bigint stats, exact on every file system. */
function fileKey(stats: { dev: bigint; ino: bigint }): string {
  return `${stats.dev}:${stats.ino}`
}

/** Why an attempt did not get the lock. */
interface Held {
  snapshot: Snapshot
  foreign: boolean
  /** Held only by the dead holder's keeper, and why (its verdict). */
  releasing?: boolean | undefined
  reason?: string
}

/**
 * One process's attempt at the lock. Our record is written once to a private
 * file next to the lock, then hard-linked into place: the lock file never
 * appears empty or half-written, and `link` fails if a lock exists.
 *
 * A stale lock is replaced only by whoever wins an exclusive `link` of the
 * claim name `<lock>.break.<id of the stale record>`; that name is won at most
 * once per stale record. The winner re-reads the lock, and if it still holds
 * that record, renames its claim over it (atomic). A taker killed mid-way
 * leaves a claim holding its own dead record, which the next taker breaks
 * the same way, one level down.
 */
class Attempt {
  readonly #private: string
  #fd: number
  #ino = 0
  #dev = 0
  #key = ''
  readonly #owner: LockOwner
  #linked = false
  #listener: Endpoint | null = null
  /** This thread's keeper, named in our record as co-holder (not for pidOnly: a bare PID can't name it). */
  readonly #keeper: Keeper | null

  /** Our record's token (a shared holder's record is named after it). */
  get token(): string {
    return this.#owner.token
  }

  /** The id our record has once read back (see lock-record's Snapshot.id). */
  get #id(): string {
    return this.opts.pidOnly ? '' : `t${this.#owner.token}`
  }

  constructor(
    readonly path: string,
    readonly opts: Validated,
  ) {
    // Load the exit hooks before the race, not after winning it: a waiter's hand-off is then
    // a link and a registration, not a module load (measured: 6 ms of a 9 ms hand-off).
    exitRegistry().hook()
    const holder = (opts as { [holderOption]?: ProcessIdentity })[holderOption]
    this.#owner = makeOwner(opts.dataJson, opts.command, holder)
    // No keeper for a lock held in another process's name (exitguard start): ours would release
    // the daemon's lock when this process ends.
    this.#keeper = opts.pidOnly || holder ? null : threadKeeper()
    if (this.#keeper) this.#owner.keeper = { pid: this.#keeper.pid, startTime: this.#keeper.startTime }
    if (!opts.pidOnly) this.#owner.location = locationOf(path)
    this.#private = join(dirname(path), `.${basename(path)}.${this.#owner.token}.new`)
    try {
      this.#fd = openSync(this.#private, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644)
    } catch (err) {
      throw fsError(err, path, 'create the lock file')
    }
    try {
      if (opts.onMessage) {
        // Listening before the race, so the socket named in the record answers from the moment
        // the lock is won; it hands nothing to the handler until then (activate()).
        this.#listener = new Listener(this.#owner.token, opts.onMessage, validateListen(opts.onMessage, opts.messaging))
        this.#owner.socket = (this.#listener as Listener).path
      }
      if (process.platform === 'win32' && !opts.pidOnly) {
        // The pipe by which others see us alive (holder-pipe.ts), listening before the record
        // that names it exists. With onMessage the Listener is that very pipe.
        this.#listener ??= new HolderPipe(this.#owner.token)
        this.#owner.pipe = pipeNameFor(this.#owner.token)
      }
      const record = formatRecord(this.#owner, opts.pidOnly)
      const written = writeSync(this.#fd, record)
      if (written !== Buffer.byteLength(record)) throw Object.assign(new Error('short write'), { code: 'ENOSPC' })
      const stats = fstatSync(this.#fd, { bigint: true })
      this.#ino = Number(stats.ino)
      this.#dev = Number(stats.dev)
      this.#key = fileKey(stats)
    } catch (err) {
      this.close()
      throw fsError(err, path, 'write the lock file')
    }
  }

  /**
   * One try at the lock file `target` (the lock, or one of its slots: see slots.ts): returns
   * the lock, or who holds it.
   */
  try(target = this.path): PidLock | Held {
    let busy = 0
    for (let round = 0; ; round++) {
      if (this.#link(target)) return this.#won(target, null)
      const snapshot = readSnapshot(target)
      if (!snapshot) continue // released between our link and our read: try again
      // NFS can report EEXIST for a link that did happen (a retried RPC): the record is ours.
      if (snapshot.id === this.#id) return this.#won(target, null)
      const verdict = judgeSnapshot(snapshot, this.opts.unreadableGrace)
      if (!verdict.dead || round > 100) return { snapshot, foreign: verdict.foreign, releasing: verdict.releasing, reason: verdict.reason }
      const outcome = this.#replaceDead(target, target, snapshot, 0)
      if (outcome === 'won') return this.#won(target, snapshot)
      // A live process is taking the dead holder's lock over, or reaping it: either is done in
      // microseconds, so look again a few times; if it is still at it, it is the one to name.
      if (outcome !== 'changed' && ++busy > 20) return { snapshot: outcome, foreign: false }
    }
  }

  /**
   * Links our record at `linkName`, a name only we use (a shared holder's `<lock>.readers/<token>`,
   * reached through the held directory), and holds it as the lock file `path`.
   */
  join(linkName: string, path: string): PidLock {
    try {
      linkSync(this.#private, linkName)
    } catch (err) {
      throw fsError(err, path, "create the shared holder's record")
    }
    return this.#won(path, null)
  }

  /** Removes `name` (the lock, or a claim on it) if its holder is provably dead. */
  reap(name: string): boolean {
    const snapshot = readSnapshot(name)
    if (!snapshot || !judgeSnapshot(snapshot, this.opts.unreadableGrace).dead) return false
    if (this.#replaceDead(this.path, name, snapshot, 0) !== 'won') return false
    // `name` now holds our live record, which nobody takes over. Remove it only while it is
    // still our file (we hold it open, so its inode number can't be reused meanwhile).
    try {
      if (this.#isOurs(name)) unlinkSync(name)
      else return false
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw fsError(err, name, 'remove the stale lock file')
    }
    removeDeadSocket(snapshot.owner, writerOf(snapshot.stats))
    return true
  }

  close(): void {
    if (this.#fd === -1) return
    try {
      unlinkSync(this.#private)
    } catch {
      // already gone
    }
    if (!this.#linked) {
      closeSync(this.#fd)
      this.#listener?.close()
    }
    this.#fd = -1
  }

  #won(target: string, previous: Snapshot | null): PidLock {
    this.#linked = true
    const file = { fd: this.#fd, ino: this.#ino, dev: this.#dev, key: this.#key }
    this.close()
    // The dead holder's socket (SIGKILL leaves it) goes with its lock.
    if (previous?.kind === 'record') removeDeadSocket(previous.owner, writerOf(previous.stats))
    const tookOverFrom = previous && previous.kind !== 'invalid' ? previous.owner : null
    return new PidLock({ path: target, owner: this.#owner, tookOverFrom, file, options: this.opts, listener: this.#listener, keeper: this.#keeper })
  }

  /** Exclusive create of `name` as a link to our record: true if we won it. */
  #link(name: string): boolean {
    try {
      retryWhileBusy(() => linkSync(this.#private, name))
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw fsError(err, name, 'create the lock file')
    }
  }

  /**
   * Replaces the dead record `seen` at `name` (the lock file `lock`, or a claim on it) with ours.
   * 'won': `name` now holds our record. 'changed': `name` no longer holds `seen`. A snapshot:
   * the live process that is taking it over.
   */
  #replaceDead(lock: string, name: string, seen: Snapshot, depth: number): 'won' | 'changed' | Snapshot {
    const claim = `${lock}.break.${seen.id}`
    if (!this.#link(claim)) {
      const other = readSnapshot(claim)
      if (!other) return 'changed'
      // Each level down is another dead taker's record, so the chain ends; the cap only stops
      // a hand-made loop (a claim holding the very record it claims).
      if (depth > 64 || other.id === seen.id || !judgeSnapshot(other, this.opts.unreadableGrace).dead) return other
      // The claim's own taker died: break its claim first, one level down.
      const below = this.#replaceDead(lock, claim, other, depth + 1)
      if (below !== 'won') return below
    }
    // We own the claim. Until it is renamed over `name` or removed, nobody else can
    // proceed on `seen`: so on any failure, remove it before passing the error on.
    try {
      const now = readSnapshot(name)
      // Still the record we judged dead, and still dead? (A bare PID file's id is its inode and
      // mtime, which a new file can repeat: judging it again tells a live writer apart.)
      if (!now || now.id !== seen.id || !judgeSnapshot(now, this.opts.unreadableGrace).dead) {
        this.#unlinkIfOurs(claim)
        return 'changed'
      }
      // Windows: EPERM while a reader has the dead file open; only we may proceed on `seen`, so wait.
      retryWhileBusy(() => renameSync(claim, name))
      // Did we move our own claim? Not if someone removed it and another taker won the name anew.
      return this.#isOurs(name) ? 'won' : 'changed'
    } catch (err) {
      this.#unlinkIfOurs(claim)
      // Our claim vanished (removed by hand, or by an older reaper): start over.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'changed'
      throw fsError(err, name, 'take over the stale lock file')
    }
  }

  #isOurs(name: string): boolean {
    const stats = lstatSync(name, { bigint: true, throwIfNoEntry: false })
    return stats !== undefined && fileKey(stats) === this.#key
  }

  #unlinkIfOurs(name: string): void {
    try {
      if (this.#isOurs(name)) unlinkSync(name)
    } catch {
      // gone already
    }
  }
}

/**
 * One caller's contention for the lock in its mode (see docs/shared-locks.md):
 * - exclusive: the lock file, then no live shared holder; while shared holders drain, it keeps
 *   the lock file, so no new shared holder comes in (writers are not starved);
 * - shared: a record of its own in `<lock>.readers/`, then no live exclusive holder; the order is
 *   the mirror of the exclusive one, so of two that race, the second sees the first;
 * - slots: the first free (or stale) of `<lock>.slot1` … `<lock>.slot<N>`.
 */
class Contender {
  #attempt: Attempt
  /** An exclusive lock won while shared holders still run: kept until they are gone, or given up. */
  #kept: PidLock | null = null

  constructor(readonly opts: Validated) {
    this.#attempt = new Attempt(opts.path, opts)
  }

  try(): PidLock | Held {
    if (this.opts.slots !== undefined) return this.#trySlots(this.opts.slots)
    if (this.opts.shared) return this.#tryShared()
    const lock = this.#kept ?? this.#attempt.try()
    if (!(lock instanceof PidLock)) return lock
    const reader = liveReader(this.opts.path, this.opts.unreadableGrace)
    this.#kept = reader ? lock : null
    return reader ? { snapshot: reader, foreign: false } : lock
  }

  /** Stops contending: a lock kept while waiting for shared holders is released. */
  close(): void {
    this.#kept?.release()
    this.#kept = null
    this.#attempt.close()
  }

  #trySlots(slots: number): PidLock | Held {
    let first: Held | null = null
    let failure: unknown = null
    for (let slot = 1; slot <= slots; slot++) {
      let result: PidLock | Held
      try {
        result = this.#attempt.try(slotPath(this.opts.path, slot))
      } catch (err) {
        // One slot that can't be used (a symlink, another user's file) must not cost the others.
        failure ??= err
        continue
      }
      if (result instanceof PidLock) return result.setMode({ slot })
      first ??= result
    }
    if (first) return first
    throw failure
  }

  #tryShared(): PidLock | Held {
    const exclusive = liveExclusive(this.opts.path, this.opts.unreadableGrace)
    if (exclusive) return exclusive
    let lock: PidLock | null = null
    for (let tries = 0; !lock; tries++) {
      const dir = openReadersDir(this.opts.path)
      try {
        const token = this.#attempt.token
        lock = this.#attempt.join(dir.at(token), `${readersDirOf(this.opts.path)}/${token}`).setMode({ shared: true })
      } catch (err) {
        // An exclusive holder removed the empty directory between our open and our link: again.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || tries >= 20) throw err
        const exclusiveNow = liveExclusive(this.opts.path, this.opts.unreadableGrace)
        if (exclusiveNow) return exclusiveNow
      } finally {
        dir.close()
      }
    }
    // Our record is in: an exclusive holder that comes now sees it. One that came first is seen here.
    const raced = liveExclusive(this.opts.path, this.opts.unreadableGrace)
    if (!raced) return lock
    lock.release()
    this.#attempt = new Attempt(this.opts.path, this.opts) // that one's record is spent
    return raced
  }
}

/** Who holds each slot, for the refusal: "slot 1: PID 4242 (…) on host …". */
function slotHolders(path: string, slots: number, unreadableGrace: number): string[] {
  const holders: string[] = []
  for (let slot = 1; slot <= slots; slot++) {
    try {
      const held = liveExclusive(slotPath(path, slot), unreadableGrace)
      holders.push(`slot ${slot}: ${held ? (held.snapshot.kind === 'invalid' ? 'a file with no valid record' : describeOwner(held.snapshot.owner)) : 'free now'}`)
    } catch (err) {
      holders.push(`slot ${slot}: ${(err as Error).message}`)
    }
  }
  return holders
}

/** The directory (dev:ino) and name a record for the lock `path` is written for; null if the directory can't be read. */
function locationOf(path: string): { dir: string; name: string } | null {
  const dir = statSync(dirname(path), { throwIfNoEntry: false })
  return dir ? { dir: `${dir.dev}:${dir.ino}`, name: basename(path) } : null
}

/** Who holds the lock file `path` exclusively, if a live (or unjudgeable) process does. */
function liveExclusive(path: string, unreadableGrace: number): Held | null {
  const snapshot = readSnapshot(path)
  if (!snapshot) return null
  const verdict = judgeSnapshot(snapshot, unreadableGrace)
  return verdict.dead ? null : { snapshot, foreign: verdict.foreign }
}

/**
 * A live shared holder of `path`, or null once there is none. Dead ones' records are reaped on
 * the way (best effort: a record left is dead, and so holds nothing); an empty directory goes.
 */
function liveReader(path: string, unreadableGrace: number): Snapshot | null {
  const readers = readerFiles(path)
  if (readers === null) return null // no shared holder ever, or none since the last exclusive one: one syscall
  const euid = process.geteuid?.()
  for (const file of readers.files) {
    let snapshot: Snapshot | null
    try {
      snapshot = readSnapshot(file)
    } catch {
      continue // not a regular file: nobody's record
    }
    if (!snapshot) continue
    if (!judgeSnapshot(snapshot, unreadableGrace).dead) return snapshot
    // Only our own dead records, in a directory that passed the checks (never a planted one).
    if (!readers.safe || (euid !== undefined && snapshot.stats.uid !== euid)) continue
    try {
      reapLockAt(file, file, { unreadableGrace })
    } catch {
      // gone meanwhile, or can't be removed: dead all the same
    }
  }
  if (readers.safe) removeReadersDirIfEmpty(path)
  return null
}

/** One unref'd timer checks every held lock's file, so a lost lock is noticed even when idle. */
const watchdog = new (class {
  readonly #locks = new Set<PidLock>()
  #timer: NodeJS.Timeout | null = null
  #interval = Infinity

  add(lock: PidLock, interval: number): void {
    this.#locks.add(lock)
    if (interval < this.#interval) {
      this.#interval = interval
      if (this.#timer) clearInterval(this.#timer)
      this.#timer = null
    }
    this.#timer ??= setInterval(() => this.#check(), this.#interval).unref()
  }

  delete(lock: PidLock): void {
    this.#locks.delete(lock)
    if (this.#locks.size === 0 && this.#timer) {
      clearInterval(this.#timer)
      this.#timer = null
      this.#interval = Infinity
    }
  }

  #check(): void {
    for (const lock of this.#locks) if (!lock.check()) this.#locks.delete(lock)
  }
})()
