import { describeOwner } from './owner/describe.js'
import { onThisMachine } from './owner/judge.js'
import { selfIdentity } from './owner/self.js'
import type { LockOwner } from './owner/identity.js'

/**
 * The codes exitguard gives its own errors.
 *
 * @example
 * const retryLater: ExitguardOwnErrorCode[] = ['ELOCKED', 'ETIMEDOUT']
 */
export type ExitguardOwnErrorCode =
  | 'ELOCKED' // held by another process (LockHeldError)
  | 'ETIMEDOUT' // `wait` ran out (LockTimeoutError)
  | 'ECOMPROMISED' // a held lock was lost (LockCompromisedError)
  | 'ESYMLINK' // a symlink where a lock file goes (never followed)
  | 'ENOTFILE' // a device, FIFO or socket where a lock file goes
  | 'ESYNC' // an option only the async face can honour
  | 'ENOPG' // acquirePgLock without the `pg` package
  | 'EINTR' // a wait ended by a signal (command line)
  | 'EREMOVE' // a temp entry could not be removed, for no errno reason
  | 'EREPLACED' // remove(): another entry is at a temp entry's path now; it was left alone
  | 'EPIDNS' // pidOnly in a container's PID namespace, where a bare PID can't be judged
  | 'ENOTHELD' // messageHolder: the lock is free or stale
  | 'ENOLISTENER' // messageHolder: the holder does not listen
  | 'EHANDLER' // messageHolder: the holder's onMessage threw
  | 'ETOOBIG' // a message or reply over maxBytes
  | 'ENOREPLY' // messageHolder: the connection ended without a reply
  | 'EBADMSG' // messageHolder: the holder broke the protocol, or refused a message that did not follow it
  | 'EUNSAFE' // a socket directory (or the keeper's input pipe) other users can reach, or not ours
  | 'EFOREIGN' // stop/signal: the holder is on another host or in another PID namespace
  | 'EUNVERIFIED' // stop/signal: the record can't prove the holder's identity (bare PID, no start time)
  | 'EBADRECORD' // stop/signal: no valid owner record to check
  | 'ESELF' // stop/signal: the holder is this very process
  | 'EUNTRUSTED' // stop/signal/message: the record names what its file's owner could not (docs/threat-model.md)
  | 'ESPAWN' // start: /bin/sh could not be started
  | 'EEXITED' // start: the daemon ended before it was running under the lock
  | 'ERR_INVALID_ARG_TYPE'
  | 'ERR_INVALID_ARG_VALUE'

/**
 * A system error's code, passed on from the file system or the network with the path it is
 * about: the names libuv gives (Node's `util.getSystemErrorMap()`), e.g. `ENOENT`, `EACCES`, `EROFS`.
 *
 * @example
 * const fixByHand: SystemErrorCode[] = ['EACCES', 'EROFS', 'ENOSPC']
 */
export type SystemErrorCode =
  | 'E2BIG'
  | 'EACCES'
  | 'EADDRINUSE'
  | 'EADDRNOTAVAIL'
  | 'EAFNOSUPPORT'
  | 'EAGAIN'
  | 'EAI_ADDRFAMILY'
  | 'EAI_AGAIN'
  | 'EAI_BADFLAGS'
  | 'EAI_BADHINTS'
  | 'EAI_CANCELED'
  | 'EAI_FAIL'
  | 'EAI_FAMILY'
  | 'EAI_MEMORY'
  | 'EAI_NODATA'
  | 'EAI_NONAME'
  | 'EAI_OVERFLOW'
  | 'EAI_PROTOCOL'
  | 'EAI_SERVICE'
  | 'EAI_SOCKTYPE'
  | 'EALREADY'
  | 'EBADF'
  | 'EBUSY'
  | 'ECANCELED'
  | 'ECHARSET'
  | 'ECONNABORTED'
  | 'ECONNREFUSED'
  | 'ECONNRESET'
  | 'EDESTADDRREQ'
  | 'EEXIST'
  | 'EFAULT'
  | 'EFBIG'
  | 'EFTYPE'
  | 'EHOSTDOWN'
  | 'EHOSTUNREACH'
  | 'EILSEQ'
  | 'EINTR'
  | 'EINVAL'
  | 'EIO'
  | 'EISCONN'
  | 'EISDIR'
  | 'ELOOP'
  | 'EMFILE'
  | 'EMLINK'
  | 'EMSGSIZE'
  | 'ENAMETOOLONG'
  | 'ENETDOWN'
  | 'ENETUNREACH'
  | 'ENFILE'
  | 'ENOBUFS'
  | 'ENODATA'
  | 'ENODEV'
  | 'ENOENT'
  | 'ENOMEM'
  | 'ENONET'
  | 'ENOPROTOOPT'
  | 'ENOSPC'
  | 'ENOSYS'
  | 'ENOTCONN'
  | 'ENOTDIR'
  | 'ENOTEMPTY'
  | 'ENOTSOCK'
  | 'ENOTSUP'
  | 'ENOTTY'
  | 'ENXIO'
  | 'EOF'
  | 'EOVERFLOW'
  | 'EPERM'
  | 'EPIPE'
  | 'EPROTO'
  | 'EPROTONOSUPPORT'
  | 'EPROTOTYPE'
  | 'ERANGE'
  | 'EREMOTEIO'
  | 'EROFS'
  | 'ESHUTDOWN'
  | 'ESOCKTNOSUPPORT'
  | 'ESPIPE'
  | 'ESRCH'
  | 'ETIMEDOUT'
  | 'ETXTBSY'
  | 'EUNATCH'
  | 'EXDEV'
  | 'UNKNOWN'

/**
 * Every `code` an `ExitguardError` can have.
 *
 * @example
 * function exitCode(code: ExitguardErrorCode): number { return code === 'ELOCKED' || code === 'ETIMEDOUT' ? 75 : 1 }
 */
export type ExitguardErrorCode = ExitguardOwnErrorCode | SystemErrorCode

/**
 * Every error exitguard throws on purpose is an `ExitguardError` with a `code`
 * (Node's style: `ELOCKED`, `ERR_INVALID_ARG_VALUE`, ...) and, when a file is
 * involved, the `path` it is about, so callers can branch without parsing text.
 *
 * @example
 * try { acquirePidLockSync('/run/app.pid') }
 * catch (err) { if (err instanceof ExitguardError && err.code === 'ELOCKED') process.exit(75) }
 */
export class ExitguardError extends Error {
  readonly code: ExitguardErrorCode
  readonly path: string | undefined

  constructor(code: ExitguardErrorCode, message: string, options?: { path?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.path = options?.path
  }
}

/** Thrown for an argument of the wrong type (`ERR_INVALID_ARG_TYPE`), naming the argument. */
export function invalidArgType(name: string, expected: string, actual: unknown): ExitguardError {
  return new ExitguardError('ERR_INVALID_ARG_TYPE', `The "${name}" argument must be ${expected}. Received ${describe(actual)}`)
}

/** Thrown for an argument of the right type but a bad value (`ERR_INVALID_ARG_VALUE`), naming it. */
export function invalidArgValue(name: string, actual: unknown, reason: string, path?: string): ExitguardError {
  return new ExitguardError('ERR_INVALID_ARG_VALUE', `The "${name}" argument ${reason}. Received ${describe(actual)}`, path === undefined ? undefined : { path })
}

/**
 * Refuses a lock path that names a directory rather than a file: `app.pid/` would silently
 * lock `app.pid` (path.resolve drops the slash), and `.` or `..` would name the directory.
 */
export function checkFilePath(name: string, path: string): void {
  if (/[\\/]$/.test(path)) throw invalidArgValue(name, path, 'must name a file, but it ends with "/"; remove the trailing slash', path)
  if (/(^|[\\/])\.\.?$/.test(path)) throw invalidArgValue(name, path, 'must name a file, but it ends with "." or "..", which name a directory', path)
}

function describe(value: unknown): string {
  try {
    return describeValue(value)
  } catch {
    return 'a value that cannot be inspected' // a revoked Proxy, a throwing getter
  }
}

function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value)
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`
  return `${typeof value} ${String(value)}`
}

/**
 * The lock is held by a live process (or one on another host). `owner` says who;
 * the message says who, since when, and what to do. `D` is the type of the holder's
 * `data`; after `instanceof` it is `any`, so say what you expect.
 *
 * @example
 * catch (err) {
 *   if (!(err instanceof LockHeldError)) throw err
 *   const held: LockHeldError<{ port?: number } | null> = err
 *   console.error(`already running on port ${held.owner.data?.port}`)
 * }
 */
export class LockHeldError<D = unknown> extends ExitguardError {
  declare readonly path: string
  declare readonly code: 'ELOCKED' | 'ETIMEDOUT'
  readonly owner: LockOwner<D>

  constructor(path: string, owner: LockOwner<D>, options: { code?: 'ELOCKED' | 'ETIMEDOUT'; message?: string; foreign?: boolean } = {}) {
    super(options.code ?? 'ELOCKED', options.message ?? heldMessage(path, owner, options.foreign ?? false), { path })
    this.owner = owner
  }
}

/** Waiting for a lock ran out (`ETIMEDOUT`); `owner` is who still held it. */
export class LockTimeoutError<D = unknown> extends LockHeldError<D> {
  declare readonly code: 'ETIMEDOUT'
  constructor(path: string, owner: LockOwner<D>, waitedMs: number, options: { message?: string } = {}) {
    super(path, owner, {
      code: 'ETIMEDOUT',
      message: options.message ?? `Gave up after waiting ${waitedMs} ms for the lock ${path}: still held by ${describeHolder(owner)}.`,
    })
  }
}

/** A held lock was removed or replaced by someone else (`ECOMPROMISED`): mutual exclusion is lost. */
export class LockCompromisedError extends ExitguardError {
  declare readonly path: string
  declare readonly code: 'ECOMPROMISED'
  constructor(path: string, cause: string) {
    super('ECOMPROMISED', `The lock ${path} was lost while held: ${cause}. Another process may now hold it too.`, { path })
  }
}

function heldMessage(path: string, owner: LockOwner, foreign: boolean): string {
  const who = describeOwner(owner)
  if (foreign) {
    return `The lock ${path} is held by ${who}. That host can't be checked from here; if the process there is gone, remove ${path} by hand.`
  }
  if (isThisProcess(owner)) {
    // Not "kill <our own PID>": the holder is this very process, in a thread or module copy
    // whose locks this one can't see (each thread has its own globalThis, so its own registry).
    return (
      `The lock ${path} is held by this process (another thread or copy of exitguard) since ${owner.createdAt}. ` +
      `Release it there; a worker ended by terminate() with its keeper turned off leaves its locks held until this process exits.`
    )
  }
  return `The lock ${path} is held by ${who}. Wait for it to finish or stop it (kill ${owner.pid}); if it dies, the next run takes the lock over by itself.`
}

/** `describeOwner`, or "this process (…)" when the owner is us: naming our own PID would read as someone else. */
export function describeHolder(owner: LockOwner): string {
  return isThisProcess(owner) ? `this process (another thread or copy of exitguard) since ${owner.createdAt}` : describeOwner(owner)
}

/**
 * True if a recorded owner is this very process: our PID on our host, and where the record
 * says, our PID namespace and start time (a PID alone may be an earlier life, or another container's).
 */
export function isThisProcess(owner: Pick<LockOwner, 'pid' | 'hostname' | 'startTime' | 'pidNamespace' | 'bootId'>): boolean {
  const me = selfIdentity()
  if (owner.pid !== me.pid || !onThisMachine(owner)) return false
  if (owner.pidNamespace && me.pidNamespace && owner.pidNamespace !== me.pidNamespace) return false
  return !owner.startTime || !me.startTime || owner.startTime === me.startTime
}

/**
 * A file-system error as an ExitguardError naming the path, the action and the cause, in
 * words: "Could not create the lock file /run/app.pid: its directory does not exist."
 * `dir: true` when `path` is itself the directory the action was in.
 */
export function fsError(err: unknown, path: string, action: string, options: { dir?: boolean } = {}): ExitguardError {
  if (err instanceof ExitguardError) return err
  const e = err as NodeJS.ErrnoException
  const cause =
    e.code === 'ENOENT'
      ? options.dir
        ? 'the directory does not exist'
        : 'its directory does not exist'
      : e.code === 'EACCES' || e.code === 'EPERM'
        ? 'permission denied'
        : e.code === 'EROFS'
          ? 'the file system is read-only'
          : e.code === 'ENOTDIR'
            ? options.dir
              ? 'it is not a directory'
              : 'a part of the path is not a directory'
            : e.message
  return new ExitguardError(systemCode(err, 'EIO'), `Could not ${action} ${path}: ${cause}.`, { path, cause: err })
}

/** A system error's code as passed on (libuv's names: SystemErrorCode), or `fallback` where it has none. */
export function systemCode(err: unknown, fallback: ExitguardErrorCode): ExitguardErrorCode {
  const code = (err as NodeJS.ErrnoException | null)?.code
  return typeof code === 'string' && code !== '' ? (code as SystemErrorCode) : fallback
}
