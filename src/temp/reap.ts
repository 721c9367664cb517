import { lstatSync, readdirSync, realpathSync, unlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { debuglog } from 'node:util'
import { invalidArgType } from '../errors.js'
import { judgeOwner } from '../owner/judge.js'
import type { OwnerVerdict } from '../owner/identity.js'
import { identityOf, removeEntrySync } from './remove-tree.js'
import { checkNamePart, identityFromTags, parseTempName } from './temp-name.js'
import { judgeSnapshot, MAX_RECORD, readSnapshot } from '../locks/lock-record.js'
import { reapLockAt } from '../locks/pid-lock.js'

const debug = debuglog('exitguard')

/**
 * Options of `reapOrphans`.
 *
 * @example
 * reapOrphans({ dir: '/var/tmp', prefix: 'cache-' } satisfies ReapOptions)
 */
export interface ReapOptions {
  /** The directory to clean. Default `os.tmpdir()`. */
  dir?: string | undefined
  /** Only names that start with this prefix (as given to `tempDir`/`tempFile`). Default: any exitguard name. */
  prefix?: string | undefined
  /** Only report what would be removed; remove nothing. The same checks run, so the report matches a real run made at that moment. Default false. */
  dryRun?: boolean | undefined
}

/**
 * One thing `reapOrphans` removed.
 *
 * @example
 * const removed: ReapedEntry[] = reapOrphans()
 * // [{ path: '/tmp/tmp-exitguard-...', kind: 'dir', reason: 'no process has PID 4242' }]
 */
export interface ReapedEntry {
  /** Absolute path that was removed (or, with `dryRun`, would be). */
  path: string
  kind: 'file' | 'dir' | 'pid-lock'
  /** Why its owner counts as dead, e.g. "no process has PID 4242". */
  reason: string
}

/** A waiter's private record: `.<lock name>.<token>.new` (exitguard's tokens are 32 hex digits). */
const PRIVATE_NAME = /^\..+\.[0-9a-f]{32}\.new$/

/**
 * A PID lock file, or a claim or private file of one, that an exitguard
 * process left: removed only when the file holds a whole exitguard record
 * (never a bare PID lock or anyone else's file) whose owner is provably dead,
 * or is a private file by its name holding a bare PID (a `pidOnly` waiter's) that is dead.
 */
function reapLockFile(path: string, name: string, prefix: string | undefined, euid: number | undefined, dryRun: boolean): ReapedEntry | null {
  if (prefix !== undefined && !name.startsWith(prefix) && !name.startsWith(`.${prefix}`)) return null
  try {
    const st = lstatSync(path, { throwIfNoEntry: false })
    const isPrivate = name.startsWith('.') && name.endsWith('.new')
    // A record is a few hundred bytes, a bare PID a few: skip anything else without opening it.
    if (!st?.isFile() || st.size < (isPrivate ? 2 : 20) || st.size > MAX_RECORD || (euid !== undefined && st.uid !== euid)) return null
    const snapshot = readSnapshot(path)
    if (!(snapshot?.kind === 'record' || (snapshot?.kind === 'pid' && PRIVATE_NAME.test(name)))) return null
    const verdict = judgeSnapshot(snapshot, 0)
    if (!verdict.dead) return null
    const entry: ReapedEntry = { path, kind: 'pid-lock', reason: verdict.reason }
    if (isPrivate) {
      // A dead process's private record: only its owner (by the token in the name) ever
      // writes or links that name, so nobody can be using it.
      if (dryRun) return entry
      return unlinkIfSame(path, snapshot.stats.ino) ? entry : null
    }
    const claim = /^(.+)\.break\.([\w-]+)$/.exec(name)
    const lock = claim ? join(dirname(path), claim[1]!) : path
    // A dead taker's claim on the record still at the lock: the next taker needs it (breaking
    // it here could let two in), and takes the lock over through it.
    if (claim && readSnapshot(lock)?.id === claim[2]) return null
    if (dryRun) return entry
    // Lock or claim, it goes through the takeover protocol: a taker may be breaking it right now.
    return reapLockAt(lock, path) ? entry : null
  } catch (err) {
    debug('reap: skipped %s: %s', path, (err as Error).message)
    return null
  }
}

function unlinkIfSame(path: string, ino: number): boolean {
  if (lstatSync(path, { throwIfNoEntry: false })?.ino !== ino) return false
  unlinkSync(path)
  return true
}

/**
 * Removes, synchronously, the temp files and dirs, and the PID lock files, in
 * `dir` that exitguard processes left behind when they could not clean up (SIGKILL, crash, power
 * loss), and returns what it removed and why.
 *
 * The owner is read from the name, and an entry goes only with proof that its
 * owner is dead: same host and the PID is gone, or now belongs to a process that
 * started at another time, or the machine has rebooted since. Never removed: a
 * live process's entries, another host's, another user's, anything whose name
 * does not parse as an exitguard temp name, symlinks, and anything that is not a
 * regular file or directory. Directories are removed without following symlinks.
 *
 * @example
 * // At startup, before creating new temp dirs:
 * for (const r of reapOrphans({ prefix: 'build-' })) console.error(`removed ${r.path}: ${r.reason}`)
 */
export function reapOrphans(options: ReapOptions = {}): ReapedEntry[] {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options)
  if (options.dir !== undefined && typeof options.dir !== 'string') throw invalidArgType('dir', 'a string', options.dir)
  if (options.dryRun !== undefined && typeof options.dryRun !== 'boolean') throw invalidArgType('dryRun', 'a boolean', options.dryRun)
  const dryRun = options.dryRun ?? false
  const prefix = options.prefix === undefined ? undefined : checkNamePart('prefix', options.prefix)
  const dir = realpathSync(options.dir ?? tmpdir())
  const euid = process.geteuid?.()
  // Thousands of leftovers usually share a few owners: judge each owner once.
  const verdicts = new Map<string, OwnerVerdict | null>()
  const reaped: ReapedEntry[] = []

  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    const owner = parseTempName(name, prefix)
    if (!owner) {
      const entry = reapLockFile(path, name, prefix, euid, dryRun)
      if (entry) reaped.push(entry)
      continue
    }
    const key = `${owner.hostTag}-${owner.pid}-${owner.startTag}-${owner.bootTag}`
    let verdict = verdicts.get(key)
    if (verdict === undefined) {
      const identity = identityFromTags(owner)
      verdict = identity === null ? null : judgeOwner(identity) // null: another host, can't be judged
      verdicts.set(key, verdict)
    }
    if (verdict === null || verdict.alive) continue

    const entry = removeOrphan(path, verdict.reason, euid, dryRun)
    if (entry) reaped.push(entry)
  }
  return reaped
}

function removeOrphan(path: string, reason: string, euid: number | undefined, dryRun: boolean): ReapedEntry | null {
  try {
    // lstat: a symlink named like ours (planted, or a collision) is never followed or removed.
    const st = lstatSync(path, { throwIfNoEntry: false })
    if (!st || !(st.isFile() || st.isDirectory())) return null
    // Another user's tree could be changed under us while we walk it: leave it to that user (even as root).
    if (euid !== undefined && st.uid !== euid) return null
    const kind = st.isFile() ? 'file' : 'dir'
    if (dryRun) return { path, kind, reason }
    // Only what lstat just saw: an entry swapped in meanwhile is left alone, and nothing is followed.
    return removeEntrySync(path, identityOf(st)) ? { path, kind, reason } : null
  } catch (err) {
    // Someone else may be reaping the same dir, or it is not ours to remove: skip, don't fail the rest.
    debug('reap: could not remove %s: %s', path, (err as Error).message)
    return null
  }
}

const reapedDirs = new Set<string>()

/** @internal The `reap: true` option: reap `dir` for `prefix` once per process. */
export function reapOnce(dir: string, prefix: string): void {
  const key = `${dir}\0${prefix}`
  if (reapedDirs.has(key)) return
  try {
    const reaped = reapOrphans({ dir, prefix })
    reapedDirs.add(key) // only once it has worked: a failure is tried again on the next creation
    debug('reap %s (prefix %j): removed %d', dir, prefix, reaped.length)
  } catch (err) {
    // Reaping is a courtesy to dead runs: it must not stop this one from creating its temp entry.
    debug('reap %s (prefix %j) failed: %s', dir, prefix, (err as Error).message)
  }
}
