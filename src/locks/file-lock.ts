import { realpathSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import type * as Lockfile from 'proper-lockfile'
import { checkFilePath, ExitguardError, fsError, invalidArgType, invalidArgValue, LockCompromisedError, LockHeldError, LockTimeoutError } from '../errors.js'
import type { LockOwner } from '../owner/identity.js'
import { LockGuard } from './lock-guard.js'
import type { AbortSignalLike } from '../abort-signal-like.js'
import { lazyModule } from '../require-lazily.cjs'
import { sleepSync } from '../internal/sleep-sync.js'

/** proper-lockfile, loaded on first use: loading it installs exit handlers. */
const lockfile = lazyModule<typeof Lockfile>('proper-lockfile')

/** Options of `acquireFileLock` and `acquireFileLockSync`. */
export interface FileLockOptions {
  /** Milliseconds to wait for a held lock; 0 (the default) fails at once; `Infinity` waits for ever. */
  wait?: number | undefined
  /**
   * A lock directory not refreshed for this many ms counts as abandoned and is taken over.
   * Default 10000; at least 2000 (proper-lockfile's floor: smaller values are refused, not silently raised).
   */
  stale?: number | undefined
  /** How often the holder refreshes the lock directory's mtime. Default `stale / 2`; between 1000 and `stale / 2`. */
  update?: number | undefined
  /** Where the lock directory goes. Default `<path>.lock`, next to the resource. Relative paths are resolved now. */
  lockfilePath?: string | undefined
  /**
   * Refuse (code `ENOENT`) to lock a resource that does not exist. Default false: a lock is on a
   * name, so a cache directory or output file can be locked before it is created.
   */
  mustExist?: boolean | undefined
  /**
   * Called (never thrown) if the lock is lost while held: its directory was deleted, or refreshed
   * by someone else, or could not be refreshed within `stale`. Default: a warning on stderr.
   */
  onCompromised?: ((err: LockCompromisedError) => void) | undefined
}

/** Options of the async face: the sync ones plus an AbortSignal for the wait. */
export interface FileLockAsyncOptions extends FileLockOptions {
  /** Aborts the wait; the promise rejects with `signal.reason`. */
  signal?: AbortSignalLike | undefined
}

const defaults = { wait: 0, stale: 10_000, mustExist: false }
/** proper-lockfile's floors: it raises smaller values without a word; we refuse them instead. */
const MIN_STALE = 2000
const MIN_UPDATE = 1000
/** A waiter retries this often. A try is one mkdir (plus a stat when it is held). */
const POLL_MS = 25

/**
 * The owner in a `FileLockHeldError`: proper-lockfile writes no owner record (its lock is an empty
 * directory), so every field is a placeholder; `pid` 0 means "unknown".
 */
const UNKNOWN_OWNER: LockOwner<null> = Object.freeze({
  pid: 0,
  hostname: 'unknown',
  startTime: null,
  bootId: null,
  createdAt: '',
  command: '(proper-lockfile records no owner)',
  data: null,
  token: '',
})

/**
 * A file lock is held by someone we can't name (`ELOCKED`). `owner` is a placeholder
 * (`pid` 0); `lastRefreshedAt` is the lock directory's mtime, which a live holder keeps fresh.
 *
 * @example
 * catch (err) { if (err instanceof FileLockHeldError) console.error(`last refreshed ${err.lastRefreshedAt?.toISOString()}`) }
 */
export class FileLockHeldError extends LockHeldError<null> {
  /** The lock directory. */
  readonly lockfilePath: string
  /** Its mtime when we looked, or null if it vanished meanwhile. */
  readonly lastRefreshedAt: Date | null

  constructor(path: string, lockfilePath: string, lastRefreshedAt: Date | null, stale: number) {
    super(path, UNKNOWN_OWNER, { message: heldMessage(path, lockfilePath, lastRefreshedAt, stale) })
    this.lockfilePath = lockfilePath
    this.lastRefreshedAt = lastRefreshedAt
  }
}

/**
 * Waiting for a file lock ran out (`ETIMEDOUT`). Like `FileLockHeldError`, `owner` is a placeholder.
 *
 * @example
 * catch (err) { if (err instanceof FileLockTimeoutError) console.error(err.message) }
 */
export class FileLockTimeoutError extends LockTimeoutError<null> {
  readonly lockfilePath: string
  readonly lastRefreshedAt: Date | null

  constructor(path: string, lockfilePath: string, lastRefreshedAt: Date | null, stale: number, waitedMs: number) {
    super(path, UNKNOWN_OWNER, waitedMs, { message: `Gave up after waiting ${waitedMs} ms. ${heldMessage(path, lockfilePath, lastRefreshedAt, stale)}` })
    this.lockfilePath = lockfilePath
    this.lastRefreshedAt = lastRefreshedAt
  }
}

/**
 * A held proper-lockfile lock (a `<path>.lock` directory whose mtime the holder refreshes).
 * Release it with `release()`, `using` or `await using`; otherwise it is released when the
 * process exits (any exit but SIGKILL, after which others take it over once it is `stale`).
 *
 * `release()` removes the lock directory and unregisters the exit callback; it is idempotent.
 * A lock found lost (see `compromised`) is not removed: it may be someone else's now.
 * `release()` is synchronous for both faces: it is one `rmdir`, and the exit path can only run
 * synchronous work anyway. `[Symbol.asyncDispose]` exists so `await using` works too.
 */
export class FileLock extends LockGuard implements AsyncDisposable {
  /** Absolute path of the locked resource (the real path of its directory; of itself if it exists). */
  readonly path: string
  /** Absolute path of the lock directory. */
  readonly lockfilePath: string

  /** @internal Use `acquireFileLock` or `acquireFileLockSync`. */
  constructor(path: string, lockfilePath: string, onCompromised: ((err: LockCompromisedError) => void) | undefined) {
    super(`file lock ${path}`, onCompromised)
    this.path = path
    this.lockfilePath = lockfilePath
    heldHere.add(lockfilePath)
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.releaseChecked()
  }

  /** @internal proper-lockfile's onCompromised, called from its heartbeat timer: must never throw. */
  lost(err: Error & { code?: string; syscall?: string }): void {
    // proper-lockfile reports a lock released during an in-flight refresh as "deleted": not a loss.
    if (this.released || this.compromised) return
    const cause =
      err.syscall !== undefined && (err as NodeJS.ErrnoException).errno !== undefined && err.message.includes('ENOENT')
        ? `the lock directory ${this.lockfilePath} was deleted`
        : err.syscall !== undefined
          ? `the lock directory ${this.lockfilePath} could not be refreshed within the stale time (${err.message})`
          : `the lock directory ${this.lockfilePath} was refreshed by someone else, or not refreshed within the stale time (event loop blocked, system asleep?), and may have been taken over`
    const compromised = new LockCompromisedError(this.path, cause)
    Object.defineProperty(compromised, 'cause', { value: err, configurable: true, writable: true })
    // Nothing is ours to remove at exit any more.
    this.unregister()
    this.compromise(compromised)
  }

  protected removeHeld(): void {
    heldHere.delete(this.lockfilePath)
    // A lock found lost (see `compromised`) is not removed: it may be someone else's now.
    if (this.compromised) return
    try {
      // Stops the heartbeat and rmdirs; proper-lockfile's own exit handler then finds nothing left.
      lockfile().unlockSync(this.path, { realpath: false, lockfilePath: this.lockfilePath })
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOTACQUIRED' || code === 'ENOENT') return // already dropped by proper-lockfile
      throw fsError(err, this.lockfilePath, 'remove the lock directory')
    }
  }
}

/**
 * Locks `resource` across processes and, through proper-lockfile's mtime heartbeat, across
 * hosts sharing a network file system. Interoperates with plain `proper-lockfile` users.
 * Throws `FileLockHeldError` (`ELOCKED`) if held. With `wait`, retries every 25 ms,
 * blocking the thread (this process's other file locks can't refresh meanwhile).
 *
 * @example
 * using lock = acquireFileLockSync('/mnt/shared/cache')
 * rebuildCache() // one process at a time, on any host that mounts /mnt/shared
 */
export function acquireFileLockSync(resource: string, options: FileLockOptions = {}): FileLock {
  if ((options as FileLockAsyncOptions)?.signal !== undefined) {
    throw new ExitguardError('ESYNC', 'acquireFileLockSync cannot honour an AbortSignal; use acquireFileLock for an abortable wait.')
  }
  const opts = validate(resource, options)
  const started = Date.now()
  for (;;) {
    const slot = new Slot()
    try {
      lockfile().lockSync(opts.path, lockOptions(opts, slot))
      return slot.fill(opts)
    } catch (err) {
      const left = opts.wait - (Date.now() - started)
      if (!isHeld(err) || left <= 0) throw failure(err, opts, started)
    }
    sleepSync(Math.min(POLL_MS, opts.wait - (Date.now() - started)))
  }
}

/**
 * Locks `resource`; the async face. With `wait`, retries every 25 ms and honours `signal`.
 *
 * @example
 * await using lock = await acquireFileLock('/mnt/shared/reports/2026-11.csv', { wait: 60_000 })
 * await writeReport(lock.path)
 */
export async function acquireFileLock(resource: string, options: FileLockAsyncOptions = {}): Promise<FileLock> {
  const opts = validate(resource, options)
  const { signal } = options
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('signal', 'an AbortSignal', signal)
  signal?.throwIfAborted()
  const started = Date.now()
  for (;;) {
    const slot = new Slot()
    try {
      await lockfile().lock(opts.path, lockOptions(opts, slot))
      if (signal?.aborted) {
        // Aborted while the attempt ran: give the lock back rather than leak it.
        slot.fill(opts).release()
        throw signal.reason
      }
      return slot.fill(opts)
    } catch (err) {
      if (signal?.aborted) throw signal.reason
      const left = opts.wait - (Date.now() - started)
      if (!isHeld(err) || left <= 0) throw failure(err, opts, started)
    }
    await new Promise<void>((resolveWait, rejectWait) => {
      const onAbort = () => {
        clearTimeout(timer)
        rejectWait(signal!.reason)
      }
      const timer = setTimeout(
        () => {
          signal?.removeEventListener('abort', onAbort)
          resolveWait()
        },
        Math.max(0, Math.min(POLL_MS, opts.wait - (Date.now() - started))),
      )
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}

type Validated = FileLockOptions & { path: string; lockfilePath: string; wait: number; stale: number; mustExist: boolean }

function validate(resource: string, options: FileLockOptions): Validated {
  if (typeof resource !== 'string') throw invalidArgType('path', 'a string', resource)
  if (resource === '' || resource.includes('\0')) throw invalidArgValue('path', resource, 'must be a non-empty path without NUL bytes')
  checkFilePath('path', resource)
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options)
  const wait = options.wait ?? defaults.wait
  const stale = options.stale ?? defaults.stale
  const mustExist = options.mustExist ?? defaults.mustExist
  if (typeof wait !== 'number' || !(wait >= 0)) throw invalidArgValue('wait', wait, 'must be a number of milliseconds >= 0 (or Infinity)')
  if (typeof stale !== 'number' || !Number.isFinite(stale) || stale < MIN_STALE) {
    throw invalidArgValue('stale', stale, `must be a finite number of milliseconds >= ${MIN_STALE} (proper-lockfile's minimum)`)
  }
  const { update } = options
  if (update !== undefined && (typeof update !== 'number' || !Number.isFinite(update) || update < MIN_UPDATE || update > stale / 2)) {
    throw invalidArgValue('update', update, `must be a number of milliseconds from ${MIN_UPDATE} to stale / 2 (${stale / 2})`)
  }
  if (typeof mustExist !== 'boolean') throw invalidArgType('mustExist', 'a boolean', mustExist)
  if (options.onCompromised !== undefined && typeof options.onCompromised !== 'function') throw invalidArgType('onCompromised', 'a function', options.onCompromised)
  const { lockfilePath } = options
  if (lockfilePath !== undefined && (typeof lockfilePath !== 'string' || lockfilePath === '' || lockfilePath.includes('\0'))) {
    throw typeof lockfilePath === 'string' ? invalidArgValue('lockfilePath', lockfilePath, 'must be a non-empty path without NUL bytes') : invalidArgType('lockfilePath', 'a string', lockfilePath)
  }
  const path = canonical(resource, mustExist)
  return { ...options, path, wait, stale, mustExist, lockfilePath: lockfilePath === undefined ? `${path}.lock` : resolve(lockfilePath) }
}

/**
 * The name the lock is on. An existing resource: its real path, as plain proper-lockfile
 * (realpath: true) computes it, so both lock the same directory. A missing one: the real path
 * of its directory plus its name (e.g. macOS /tmp → /private/tmp), so it locks the same name
 * once it exists.
 */
function canonical(resource: string, mustExist: boolean): string {
  const abs = resolve(resource)
  try {
    return realpathSync(abs)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(err, abs, 'resolve')
    if (mustExist) {
      throw new ExitguardError('ENOENT', `Can't lock ${abs}: it does not exist (mustExist: true). Create it first, or leave mustExist off to lock the name.`, { path: abs, cause: err })
    }
  }
  try {
    return join(realpathSync(dirname(abs)), basename(abs))
  } catch {
    return abs // its directory is missing too: mkdir of the lock directory will say so
  }
}

/** Where proper-lockfile's onCompromised lands: the guard, once it exists. */
class Slot {
  lock: FileLock | null = null
  early: Error | null = null

  fill(opts: Validated): FileLock {
    this.lock = new FileLock(opts.path, opts.lockfilePath, opts.onCompromised)
    if (this.early) this.lock.lost(this.early)
    return this.lock
  }
}

function lockOptions(opts: Validated, slot: Slot): Lockfile.LockOptions {
  return {
    stale: opts.stale,
    update: opts.update,
    realpath: false, // we resolved the path ourselves: the resource need not exist
    retries: 0, // we retry ourselves, to honour the deadline and the signal
    lockfilePath: opts.lockfilePath,
    // Called from a timer: throwing here would crash the process (proper-lockfile's default).
    onCompromised: (err: Error) => {
      try {
        if (slot.lock) slot.lock.lost(err)
        else slot.early = err
      } catch {
        // never from a timer
      }
    },
  }
}

function isHeld(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ELOCKED'
}

function failure(err: unknown, opts: Validated, started: number): Error {
  if (!isHeld(err)) {
    if (err instanceof ExitguardError) return err
    return fsError(err, opts.lockfilePath, 'create the lock directory')
  }
  let mtime: Date | null = null
  try {
    mtime = statSync(opts.lockfilePath).mtime
  } catch {
    // released meanwhile
  }
  if (opts.wait > 0) return new FileLockTimeoutError(opts.path, opts.lockfilePath, mtime, opts.stale, Date.now() - started)
  return new FileLockHeldError(opts.path, opts.lockfilePath, mtime, opts.stale)
}

/** Lock directories held by FileLocks of this process, so a second acquire can say so. */
const heldHere = new Set<string>()

function heldMessage(path: string, lockfilePath: string, mtime: Date | null, stale: number): string {
  if (heldHere.has(lockfilePath)) {
    return `The lock ${lockfilePath} on ${path} is already held by this process. File locks are not re-entrant: release the first FileLock before taking it again.`
  }
  const refreshed = mtime ? `it was last refreshed at ${mtime.toISOString()} (${Math.max(0, Math.round((Date.now() - mtime.getTime()) / 1000))} s ago)` : 'it vanished while we looked'
  return (
    `The lock ${lockfilePath} on ${path} is held by another process or thread, here or on another host; ` +
    `proper-lockfile records no owner, so exitguard can't say who. ${refreshed[0]!.toUpperCase()}${refreshed.slice(1)}. ` +
    `Wait for it (the "wait" option). A live holder refreshes it; if the holder died, it counts as stale ${stale} ms after its last refresh and the next attempt takes it over. ` +
    `If you are sure no one holds it, remove it: rmdir ${lockfilePath}`
  )
}
