import { closeSync, fstatSync, lstatSync, renameSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { tmpdir } from 'node:os'
import type * as Tmp from 'tmp'
import { ExitguardError, fsError, invalidArgType, invalidArgValue, systemCode } from '../errors.js'
import { Guard } from '../exit/guard.js'
import { reapOnce } from './reap.js'
import { identityOf, removeEntrySync, type EntryIdentity } from './remove-tree.js'
import { checkCreatedNamePart, DEFAULT_PREFIX, keptNameOf, makeKeptName, makeTempName } from './temp-name.js'
import { lazyModule } from '../require-lazily.cjs'
import { holdTemp, threadKeeper, type KeeperHold } from '../keeper/hold.js'

/** tmp, loaded on first use: loading it adds an `exit` listener. */
const tmp = lazyModule<typeof Tmp>('tmp')

/**
 * Options of `tempDir`/`tempDirSync` (and the base of `TempFileOptions`).
 *
 * @example
 * const options: TempOptions = { prefix: 'cache-', dir: '/var/tmp', reap: true }
 */
export interface TempOptions {
  /** Start of the name; no path separator, `..`, NUL or `exitguard-` (the owner marker). Default `'tmp-'`. */
  prefix?: string | undefined
  /** End of the name, e.g. `'.json'`; same rules as `prefix`. Default `''`. */
  postfix?: string | undefined
  /** Parent directory; it must exist. Default `os.tmpdir()`. Symlinks in it are resolved (realpath). */
  dir?: string | undefined
  /** Permission bits, subject to the umask. Default `0o600` for files, `0o700` for dirs. */
  mode?: number | undefined
  /** Create it but don't remove it at exit (`remove()` still works). Default false. */
  keep?: boolean | undefined
  /**
   * Before the first creation with this `dir` and `prefix` in this process, run
   * `reapOrphans({ dir, prefix })`: remove leftovers of dead runs. Default false
   * (it reads the whole parent directory once).
   */
  reap?: boolean | undefined
}

/**
 * Options of `tempFile`/`tempFileSync`.
 *
 * @example
 * const file = tempFileSync({ postfix: '.log', fd: true } satisfies TempFileOptions)
 */
export interface TempFileOptions extends TempOptions {
  /** Keep the descriptor open and hand it over as `fd` (closed on removal). Default false: no descriptor is held. */
  fd?: boolean | undefined
}

/**
 * Options of `tempDir`/`tempDirSync`.
 *
 * @example
 * const dir = tempDirSync({ prefix: 'job-', mode: 0o750 } satisfies TempDirOptions)
 */
export type TempDirOptions = TempOptions

interface Resolved {
  prefix: string
  postfix: string
  dir: string
  mode: number
  keep: boolean
  reap: boolean
  fd: boolean
}

const TRIES = 3

/**
 * The guard of one temp file or dir: see `TempFile` and `TempDir`. `remove()` is its checked
 * release; a removal that fails leaves it registered, so the exit drop tries again.
 */
abstract class TempGuard extends Guard<boolean> implements Disposable, AsyncDisposable {
  #path: string
  // What was created: removal checks it, so an entry put at `path` by someone else is left alone.
  readonly #identity: EntryIdentity
  /** The keeper's copy of the registration (keeper option on), so a SIGKILL still removes it. */
  #keeper: KeeperHold | null = null

  protected constructor(path: string, identity: EntryIdentity, keep: boolean, kind: string) {
    super()
    this.#path = path
    this.#identity = identity
    if (!keep) {
      // The keeper's line first: it is what a SIGKILL can't undo, and the first onExit loads the exit hooks (ms).
      this.#keeper = holdTemp(path)
      this.guardAtExit(`${kind} ${path}${this.#keeper?.note ?? ''}`)
    }
  }

  /** Absolute path, captured at creation (the parent is realpath'd); `keep()` renames it. */
  get path(): string {
    return this.#path
  }

  /**
   * Deletes it now and unregisters the exit cleanup. Idempotent; a path that is
   * already gone is fine. Returns true if this call deleted something. On a real
   * error (code and path on the `ExitguardError`) nothing changes: it stays
   * registered, so the exit cleanup tries again.
   */
  remove(): boolean {
    return this.releaseChecked() ?? false
  }

  /**
   * Unregisters the exit cleanup without deleting: the caller owns it from now on,
   * and exitguard never touches it again. It is renamed (same directory) to a name
   * without exitguard's owner marker, so that no `reapOrphans` takes it for the
   * leftover of a dead run once this process has ended. Returns the new path, which
   * `path` also gives from now on.
   */
  keep(): string {
    if (this.released) return this.#path
    const kept = keptNameOf(basename(this.#path))
    if (kept !== null) {
      const to = join(dirname(this.#path), kept)
      try {
        renameSync(this.#path, to)
        this.#path = to
      } catch (err) {
        // Already gone: nothing to keep, nothing to rename. Anything else: stay as we were.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw new ExitguardError(systemCode(err, 'EIO'), `Could not keep ${this.describe()} ${this.#path}: renaming it to ${to} failed: ${(err as Error).message}`, { path: this.#path, cause: err })
        }
      }
    }
    // Kept, it may still match what the keeper would remove (a name kept as it was): tell it now.
    this.#keeper?.release(true)
    this.settle()
    return this.#path
  }

  /** Same as `remove()`, for `using`. */
  [Symbol.dispose](): void {
    this.remove()
  }

  /** Same as `remove()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.remove()
  }

  /** @internal */
  protected removeHeld(): boolean {
    let removed: boolean
    try {
      try {
        removed = removeEntrySync(this.#path, this.#identity)
      } finally {
        // Closed after the unlink (fine on POSIX), so that the descriptor the removal holds on the
        // parent dir doesn't take this number: a stale copy of it stays invalid (EBADF).
        this.afterRemove()
      }
    } catch (err) {
      throw new ExitguardError(systemCode(err, 'EREMOVE'), `Could not remove ${this.describe()} ${this.path}: ${(err as Error).message}`, { path: this.path, cause: err })
    }
    return removed
  }

  protected override settle(): void {
    super.settle()
    this.#keeper?.release()
  }

  /** @internal */
  protected afterRemove(): void {}
  /** @internal */
  protected abstract describe(): string
}

/**
 * A temp file created with O_EXCL, mode 0600 by default, removed at exit unless
 * released earlier. Holds no descriptor unless created with `{ fd: true }`.
 *
 * @example
 * using file = tempFileSync({ postfix: '.json' })
 * fs.writeFileSync(file.path, '{}')
 */
export class TempFile extends TempGuard {
  #fd: number | null

  /** @internal Use `tempFile()` or `tempFileSync()`. */
  constructor(path: string, fd: number | null, identity: EntryIdentity, keep: boolean) {
    super(path, identity, keep, 'temp file')
    this.#fd = fd
  }

  /** The open descriptor (read/write) with `{ fd: true }`, else null. Don't close it yourself: use `close()`. */
  get fd(): number | null {
    return this.#fd
  }

  /** Closes the descriptor, if any, and keeps the file. Idempotent. */
  close(): void {
    const fd = this.#fd
    this.#fd = null
    if (fd !== null) closeSync(fd)
  }

  protected override afterRemove(): void {
    this.close()
  }

  protected describe(): string {
    return 'temp file'
  }
}

/**
 * A temp directory, mode 0700 by default, removed with its contents at exit
 * unless released earlier. Removal never follows a symlink out of it, and
 * read-only subdirectories inside are still removed.
 *
 * @example
 * using dir = tempDirSync({ prefix: 'build-' })
 * fs.writeFileSync(path.join(dir.path, 'out.txt'), 'hi')
 */
export class TempDir extends TempGuard {
  /** @internal Use `tempDir()` or `tempDirSync()`. */
  constructor(path: string, identity: EntryIdentity, keep: boolean) {
    super(path, identity, keep, 'temp dir')
  }

  protected describe(): string {
    return 'temp dir'
  }
}

function resolveOptions(options: TempFileOptions | undefined, mode: number): Resolved {
  if (options === undefined || options === null) options = {}
  if (typeof options !== 'object') throw invalidArgType('options', 'an object', options)
  // An option given as undefined takes its default, as in Node's own APIs.
  const o = {
    prefix: options.prefix ?? DEFAULT_PREFIX,
    postfix: options.postfix ?? '',
    dir: options.dir ?? tmpdir(),
    mode: options.mode ?? mode,
    keep: options.keep ?? false,
    reap: options.reap ?? false,
    fd: options.fd ?? false,
  }
  checkCreatedNamePart('prefix', o.prefix)
  checkCreatedNamePart('postfix', o.postfix)
  if (typeof o.dir !== 'string') throw invalidArgType('dir', 'a string', o.dir)
  if (o.dir === '' || o.dir.includes('\0')) throw invalidArgValue('dir', o.dir, 'must be a non-empty path without NUL')
  if (!Number.isInteger(o.mode) || o.mode < 0 || o.mode > 0o7777) throw invalidArgValue('mode', o.mode, 'must be an integer from 0 to 0o7777')
  for (const flag of ['keep', 'reap', 'fd'] as const) {
    if (typeof o[flag] !== 'boolean') throw invalidArgType(flag, 'a boolean', o[flag])
  }
  return o
}

function tmpOptions(o: Resolved, name: string): Tmp.FileOptions & Tmp.DirOptions {
  // keep: true always: tmp only creates (O_EXCL, realpath'd parent); exitguard's registry removes.
  // tmp's own list is O(n) per removal and runs only on the 'exit' event (not on signals).
  // The descriptor always comes back: fstat on it says what was created (see fileIdentity).
  return { tmpdir: o.dir, name, mode: o.mode, keep: true, discardDescriptor: false, tries: 1 }
}

/** The identity of the file just created as `fd`, which is then closed unless `keepFd`. */
function fileIdentity(fd: number, keepFd: boolean): EntryIdentity {
  try {
    return identityOf(fstatSync(fd))
  } finally {
    if (!keepFd) closeSync(fd)
  }
}

/** The identity of the directory just created at `path`; in a sticky dir (/tmp) no one else can have moved it. */
function dirIdentity(path: string): EntryIdentity {
  return identityOf(lstatSync(path))
}

function isNameTaken(err: unknown): boolean {
  // tmp stat()s a fixed name first ("max tries reached"); O_EXCL/mkdir then say EEXIST.
  return (err as NodeJS.ErrnoException).code === 'EEXIST' || /max tries reached/.test((err as Error).message)
}

function nameTaken(o: Resolved): ExitguardError {
  return new ExitguardError('EEXIST', `Could not find a free temp name in ${o.dir} after ${TRIES} tries (prefix ${JSON.stringify(o.prefix)})`, { path: o.dir })
}

/**
 * Starts this thread's keeper (where the option is on) before the entry exists: started only
 * once the entry was made, its ~25 ms of spawning were a window in which a SIGKILL left the
 * entry behind for good. What is left is the µs between creating the entry and writing its line.
 */
function keeperFirst(o: Resolved): void {
  if (!o.keep) threadKeeper()
}

function createSync<T>(o: Resolved, create: (name: string) => T): T {
  if (o.reap) reapOnce(o.dir, o.prefix)
  keeperFirst(o)
  for (let i = 0; i < TRIES; i++) {
    try {
      return create((o.keep ? makeKeptName : makeTempName)(o.prefix, o.postfix))
    } catch (err) {
      if (!isNameTaken(err)) throw fsError(err, o.dir, 'create a temp entry in', { dir: true })
    }
  }
  throw nameTaken(o)
}

async function createAsync<T>(o: Resolved, create: (name: string) => Promise<T>): Promise<T> {
  if (o.reap) reapOnce(o.dir, o.prefix)
  keeperFirst(o)
  for (let i = 0; i < TRIES; i++) {
    try {
      return await create((o.keep ? makeKeptName : makeTempName)(o.prefix, o.postfix))
    } catch (err) {
      if (!isNameTaken(err)) throw fsError(err, o.dir, 'create a temp entry in', { dir: true })
    }
  }
  throw nameTaken(o)
}

/**
 * Creates a temp file now (O_EXCL, mode 0600, unpredictable name) and registers
 * its removal at exit.
 *
 * @example
 * const file = tempFileSync({ prefix: 'upload-', postfix: '.bin', fd: true })
 * fs.writeSync(file.fd!, data)
 * file.remove() // or leave it to the exit cleanup
 */
export function tempFileSync(options?: TempFileOptions): TempFile {
  const o = resolveOptions(options, 0o600)
  return createSync(o, (name) => {
    const { name: path, fd } = tmp().fileSync(tmpOptions(o, name))
    return new TempFile(path, o.fd ? fd : null, fileIdentity(fd, o.fd), o.keep)
  })
}

/**
 * Promise version of `tempFileSync`.
 *
 * @example
 * await using file = await tempFile({ postfix: '.csv' })
 * await fs.promises.writeFile(file.path, rows)
 */
export async function tempFile(options?: TempFileOptions): Promise<TempFile> {
  const o = resolveOptions(options, 0o600)
  return createAsync(
    o,
    (name) =>
      new Promise<TempFile>((resolve, reject) => {
        tmp().file(tmpOptions(o, name), (err, path, fd) => {
          if (err) return reject(err)
          try {
            resolve(new TempFile(path, o.fd ? fd : null, fileIdentity(fd, o.fd), o.keep))
          } catch (e) {
            reject(e)
          }
        })
      }),
  )
}

/**
 * Creates a temp directory now (mode 0700, unpredictable name) and registers its
 * recursive removal at exit.
 *
 * @example
 * const work = tempDirSync({ prefix: 'job-' })
 * fs.writeFileSync(path.join(work.path, 'a.txt'), 'a')
 * work.remove()
 */
export function tempDirSync(options?: TempDirOptions): TempDir {
  const o = resolveOptions(options, 0o700)
  return createSync(o, (name) => {
    const { name: path } = tmp().dirSync(tmpOptions(o, name))
    return new TempDir(path, dirIdentity(path), o.keep)
  })
}

/**
 * Promise version of `tempDirSync`.
 *
 * @example
 * await using work = await tempDir()
 * await fs.promises.writeFile(path.join(work.path, 'a.txt'), 'a')
 */
export async function tempDir(options?: TempDirOptions): Promise<TempDir> {
  const o = resolveOptions(options, 0o700)
  return createAsync(
    o,
    (name) =>
      new Promise<TempDir>((resolve, reject) => {
        tmp().dir(tmpOptions(o, name), (err, path) => {
          if (err) return reject(err)
          try {
            resolve(new TempDir(path, dirIdentity(path), o.keep))
          } catch (e) {
            reject(e)
          }
        })
      }),
  )
}

/**
 * Runs `fn` with a fresh temp dir and removes it when `fn` returns, throws, or
 * (for an async `fn`) settles. Returns what `fn` returns. If `fn` failed, its
 * error wins over a removal error; the dir then stays registered for exit.
 *
 * @example
 * const report = await withTempDir(async (dir) => {
 *   await run('make', ['-C', dir.path])
 *   return fs.promises.readFile(path.join(dir.path, 'report.txt'), 'utf8')
 * }, { prefix: 'build-' })
 */
export function withTempDir<T>(fn: (dir: TempDir) => T, options?: TempDirOptions): T {
  if (typeof fn !== 'function') throw invalidArgType('fn', 'a function', fn)
  return using(tempDirSync(options), fn)
}

/**
 * Runs `fn` with a fresh temp file and removes it when `fn` returns, throws, or
 * (for an async `fn`) settles. Returns what `fn` returns.
 *
 * @example
 * const size = withTempFile((file) => {
 *   fs.writeFileSync(file.path, render())
 *   return fs.statSync(file.path).size
 * }, { postfix: '.html' })
 */
export function withTempFile<T>(fn: (file: TempFile) => T, options?: TempFileOptions): T {
  if (typeof fn !== 'function') throw invalidArgType('fn', 'a function', fn)
  return using(tempFileSync(options), fn)
}

function using<G extends TempGuard, T>(guard: G, fn: (guard: G) => T): T {
  let result: T
  try {
    result = fn(guard)
  } catch (err) {
    removeAfterError(guard)
    throw err
  }
  if (result instanceof Promise || typeof (result as PromiseLike<unknown> | null)?.then === 'function') {
    return Promise.resolve(result).then(
      (value) => {
        guard.remove()
        return value
      },
      (err: unknown) => {
        removeAfterError(guard)
        throw err
      },
    ) as T
  }
  guard.remove()
  return result
}

function removeAfterError(guard: TempGuard): void {
  try {
    guard.remove()
  } catch {
    // The caller's error matters more; the guard is still registered, so exit retries.
  }
}
