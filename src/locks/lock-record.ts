import { closeSync, fstatSync, lstatSync, openSync, readSync, constants, type Stats } from 'node:fs'
import { basename } from 'node:path'
import { randomToken } from '../internal/random-bytes.js'
import { ExitguardError, fsError, invalidArgValue } from '../errors.js'
import { inInitialPidNamespace, localPid } from '../owner/namespace.js'
import { judgeOwner, onThisMachine } from '../owner/judge.js'
import { openInThisProcess } from '../owner/open-in-this-process.js'
import { selfIdentity } from '../owner/self.js'
import type { LockOwner, ProcessIdentity } from '../owner/identity.js'
import { keeperStillHolds, parseKeeperField } from '../keeper/keeper-record.js'
import { processDistrust, writerOf } from './record-trust.js'
import { retryWhileBusy } from './busy-retry.js'

/**
 * The lock file format. The first line is the bare PID, so `kill $(head -n1 FILE)`
 * and systemd's `PIDFile=` keep working; the second is the owner record as JSON.
 *
 *     4242
 *     {"exitguard":1,"pid":4242,"hostname":"web-1","startTime":"81234","bootId":"…","createdAt":"…","command":"…","data":null,"token":"…"}
 *
 * Version rule: adding an optional field keeps version 1 (readers ignore fields they don't
 * know). A change an old reader would misjudge bumps the version, and a reader never judges
 * a record of a version it doesn't know: such a lock is held, never stale (docs/lock-rules.md).
 */
export const RECORD_VERSION = 1

/** The most we ever read of a lock file, and so the most a record we write may take. */
export const MAX_RECORD = 8192
/** The most `data` may take as JSON. */
const MAX_DATA = 4096
/** The most characters of `command` a record keeps (longer ones are shortened with "..."). */
export const MAX_COMMAND = 256
const MAX_PID = 2 ** 31 - 1

/** What was found at a lock path, read once through a descriptor that never follows a symlink. */
export interface Snapshot {
  path: string
  /** Identifies this record and no other: its token, or for a bare PID file its inode and mtime. */
  id: string
  /**
   * 'record': ours, whole; 'pid': a bare PID (pidOnly or another tool's PID file); 'unknown': an
   * exitguard record this version can't read (a newer version, or longer than MAX_RECORD), never
   * judged; 'invalid': unreadable (empty, garbage).
   */
  kind: 'record' | 'pid' | 'unknown' | 'invalid'
  owner: LockOwner
  stats: Stats
}

/**
 * @internal An acquire option (symbol-keyed, so not part of the public options type) that
 * writes the record for another process of this host and namespace: `exitguard start` takes
 * the lock on behalf of its gated child, which then holds it for as long as it lives.
 */
export const holderOption = Symbol('exitguard.holder')

/**
 * Makes the owner record for one acquisition: this process's, or `holder`'s (see holderOption).
 * `dataJson` comes from `serialiseData`.
 */
export function makeOwner(dataJson: string | undefined, command: string | undefined, holder?: ProcessIdentity): LockOwner {
  const me = holder ?? selfIdentity()
  return {
    pid: me.pid,
    hostname: me.hostname,
    startTime: me.startTime,
    bootId: me.bootId,
    pidNamespace: me.pidNamespace ?? null,
    machineId: me.machineId ?? null,
    createdAt: new Date().toISOString(),
    command: command === undefined ? defaultCommand() : shorten(command),
    // A plain copy of what was checked: a toJSON() can't answer differently when the record is written.
    data: dataJson === undefined ? null : JSON.parse(dataJson),
    // Unique per acquisition, and safe in a file name (claims are named after it).
    token: randomToken(),
  }
}

/**
 * The file body for `owner`; with `pidOnly`, the bare PID alone. Throws if the record would
 * exceed MAX_RECORD: a reader sees only that much, and must never take a live holder's
 * too-long record for garbage.
 */
export function formatRecord(owner: LockOwner, pidOnly: boolean): string {
  if (pidOnly) return `${owner.pid}\n`
  const record = `${owner.pid}\n{"exitguard":${RECORD_VERSION},${JSON.stringify(owner).slice(1)}\n`
  const bytes = Buffer.byteLength(record)
  if (bytes > MAX_RECORD) {
    throw new ExitguardError('ERR_INVALID_ARG_VALUE', `The lock record would take ${bytes} bytes, more than the ${MAX_RECORD} a reader reads; shorten "data" or "command".`)
  }
  return record
}

/**
 * Serialises `data` once, rejecting what is not JSON or too large. The record is made from
 * this JSON, never from `data` again.
 */
export function serialiseData(data: unknown): string | undefined {
  if (data === undefined) return undefined
  let json: string | undefined
  try {
    json = JSON.stringify(data)
  } catch (err) {
    throw invalidArgValue('data', data, `must be JSON-serialisable (${(err as Error).message})`)
  }
  if (json === undefined) throw invalidArgValue('data', data, 'must be JSON-serialisable')
  if (Buffer.byteLength(json) > MAX_DATA) throw invalidArgValue('data', data, `must be at most ${MAX_DATA} bytes as JSON`)
  return json
}

/**
 * Reads the lock file at `path` without following a symlink. Returns null if
 * there is none. Throws a typed error for what can never be a lock: a
 * directory, a symlink, a device.
 */
export function readSnapshot(path: string): Snapshot | null {
  let fd: number
  try {
    // Windows has no O_NOFOLLOW: a link there is refused by lstat first (making one takes a privilege).
    if (process.platform === 'win32' && lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink()) throw Object.assign(new Error('a symlink'), { code: 'ELOOP' })
    fd = retryWhileBusy(() => openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return null
    // open(2) of a Unix socket: ENXIO. It is no lock file, as a FIFO or device is not.
    if (code === 'ENXIO') throw new ExitguardError('ENOTFILE', `The lock path ${path} is a socket, not a regular file; exitguard will not use it.`, { path, cause: err })
    if (code === 'ELOOP') {
      throw new ExitguardError('ESYMLINK', `The lock path ${path} is a symbolic link; exitguard never follows one there. Remove it or choose another path.`, { path, cause: err })
    }
    throw fsError(err, path, 'read the lock file')
  }
  try {
    const stats = fstatSync(fd)
    if (stats.isDirectory()) {
      throw new ExitguardError('EISDIR', `The lock path ${path} is a directory, not a lock file. Choose a file path, e.g. ${path}/${basename(path)}.pid.`, { path })
    }
    if (!stats.isFile()) {
      throw new ExitguardError('ENOTFILE', `The lock path ${path} is not a regular file (a device, socket or FIFO); exitguard will not use it.`, { path })
    }
    const buffer = Buffer.alloc(Math.min(MAX_RECORD + 1, Math.max(stats.size, 1)))
    const length = stats.size === 0 ? 0 : readSync(fd, buffer, 0, buffer.length, 0)
    return parseRecord(path, buffer.subarray(0, length), stats, length > MAX_RECORD)
  } finally {
    closeSync(fd)
  }
}

function parseRecord(path: string, bytes: Buffer, stats: Stats, tooLong: boolean): Snapshot {
  const fileId = `i${stats.ino}m${Math.round(stats.mtimeMs * 1000)}`
  const invalid = (): Snapshot => ({ path, id: fileId, kind: 'invalid', owner: placeholderOwner(0, stats), stats })
  const text = bytes.toString('utf8')
  const newline = text.indexOf('\n')
  const first = (newline === -1 ? text : text.slice(0, newline)).trim()
  if (!/^\d{1,10}$/.test(first)) return invalid()
  const pid = Number(first)
  if (pid < 1 || pid > MAX_PID) return invalid()
  const rest = newline === -1 ? '' : text.slice(newline + 1).trim()
  const unknown = (owner: LockOwner): Snapshot => ({ path, id: fileId, kind: 'unknown', owner, stats })
  // A PID, then an exitguard record too long to read whole: someone's record, never garbage.
  if (tooLong) return rest.startsWith('{"exitguard":') ? unknown(placeholderOwner(pid, stats)) : invalid()
  if (rest === '') return { path, id: fileId, kind: 'pid', owner: placeholderOwner(pid, stats), stats }
  let record: Partial<LockOwner> & { exitguard?: unknown }
  try {
    record = JSON.parse(rest) as typeof record
  } catch {
    return invalid()
  }
  if (record === null || typeof record !== 'object') return invalid()
  // A version this reader doesn't know may mean something it would misjudge: never judge it.
  if (Number.isSafeInteger(record.exitguard) && (record.exitguard as number) > RECORD_VERSION) {
    const shown = placeholderOwner(pid, stats)
    if (typeof record.hostname === 'string') shown.hostname = record.hostname
    if (typeof record.createdAt === 'string') shown.createdAt = record.createdAt
    if (typeof record.command === 'string') shown.command = shorten(record.command)
    return unknown(shown)
  }
  if (
    record.exitguard !== RECORD_VERSION ||
    record.pid !== pid ||
    typeof record.hostname !== 'string' ||
    typeof record.token !== 'string' ||
    !/^[\w-]{1,64}$/.test(record.token) ||
    typeof record.createdAt !== 'string'
  ) {
    return invalid()
  }
  const owner: LockOwner = {
    pid,
    hostname: record.hostname,
    startTime: typeof record.startTime === 'string' ? record.startTime : null,
    bootId: typeof record.bootId === 'string' ? record.bootId : null,
    pidNamespace: typeof record.pidNamespace === 'string' ? record.pidNamespace : null,
    machineId: typeof record.machineId === 'string' ? record.machineId : null,
    createdAt: record.createdAt,
    command: typeof record.command === 'string' ? record.command : '',
    data: record.data ?? null,
    token: record.token,
  }
  // Optional: present when the holder listens for messages (src/messaging/).
  if (typeof record.socket === 'string' && record.socket !== '') owner.socket = record.socket
  // Optional: the Windows holder's pipe (holder-pipe.ts); judgeOwner uses it only on Windows.
  if (typeof record.pipe === 'string' && record.pipe !== '') owner.pipe = record.pipe
  // Optional (docs/keeper.md): records without it, and older readers, are unchanged.
  const keeper = parseKeeperField(record.keeper)
  if (keeper) owner.keeper = keeper
  const location = record.location as { dir?: unknown; name?: unknown } | null | undefined
  if (typeof location?.dir === 'string' && /^\d+:\d+$/.test(location.dir) && typeof location.name === 'string' && location.name.length <= 255) {
    owner.location = { dir: location.dir, name: location.name }
  }
  return { path, id: `t${owner.token}`, kind: 'record', owner, stats }
}

/** What we know of the holder of a bare PID file or an unreadable one: its PID and the file's time. */
function placeholderOwner(pid: number, stats: Stats): LockOwner {
  return {
    pid,
    hostname: selfIdentity().hostname,
    startTime: null,
    bootId: null,
    createdAt: stats.mtime.toISOString(),
    command: '',
    data: null,
    token: '',
  }
}

/** How far ahead of the clock an mtime may be and still count as "just now" (rounding, NFS skew). */
const FUTURE_SLACK_MS = 2000

/** How old an unreadable lock file (empty, garbage) must be before it counts as stale, by default: it may be mid-write. */
export const UNREADABLE_GRACE = 5000

export interface SnapshotVerdict {
  dead: boolean
  reason: string
  foreign: boolean
  /** The holder has ended and only its keeper still holds the lock, while it releases (keeperHolds). */
  releasing?: boolean
}

/**
 * Proof of death for what a snapshot holds. A full record: `judgeOwner`. An unreadable
 * file: dead only once older than `unreadableGrace`, since a person may be mid-edit. A
 * record this version can't read: never. A bare PID: see `judgeBarePid`.
 */
export function judgeSnapshot(snapshot: Snapshot, unreadableGrace: number): SnapshotVerdict {
  const { owner, stats } = snapshot
  if (snapshot.kind === 'record') {
    const verdict = judgeOwner(owner)
    // The holder is dead, but its keeper (a co-holder) may still be releasing: held until it is done.
    const keeper = verdict.alive ? null : keeperHolds(snapshot)
    if (keeper) return { dead: false, reason: keeper, foreign: false, releasing: true }
    return { dead: !verdict.alive, reason: verdict.reason, foreign: verdict.foreign }
  }
  if (snapshot.kind === 'unknown') {
    return {
      dead: false,
      foreign: false,
      reason: `the lock file holds an exitguard record this version can't read (written by a newer version, or longer than ${MAX_RECORD} bytes), so PID ${owner.pid} can't be checked`,
    }
  }
  if (snapshot.kind === 'invalid') {
    const age = Date.now() - stats.mtimeMs
    // Dated ahead by more than any mtime rounding or NFS skew: written before the clock was set
    // back, at a time that can't be known. The grace is for a file caught mid-write, which this
    // is not; counting its age from the future would keep it held until the clock caught up.
    if (age < -FUTURE_SLACK_MS) {
      return {
        dead: true,
        foreign: false,
        reason: `the lock file holds no valid record and is dated ${Math.round(-age)} ms in the future (the clock was set back since it was written), so its age is unknown`,
      }
    }
    // Clamped: a file's mtime can be a fraction of a ms ahead of Date.now().
    return Math.max(0, age) >= unreadableGrace
      ? { dead: true, foreign: false, reason: `the lock file holds no valid record and is ${Math.round(age)} ms old` }
      : { dead: false, foreign: false, reason: `the lock file holds no valid record yet (younger than ${unreadableGrace} ms)` }
  }
  return judgeBarePid(owner.pid, stats)
}

/**
 * Why a record whose holder is dead is still held: its keeper runs (see keeperStillHolds). A
 * keeper counts only if the record's writer could signal it (the trust rule, record-trust.ts):
 * a planted record can't make a stranger's process hold a lock for ever.
 */
export function keeperHolds(snapshot: Snapshot): string | null {
  const { owner } = snapshot
  if (snapshot.kind !== 'record' || !owner.keeper) return null
  const why = keeperStillHolds(owner)
  const pid = why === null ? undefined : localPid(owner, owner.keeper.pid)
  return pid !== undefined && processDistrust(writerOf(snapshot.stats), pid) === null ? why : null
}

/**
 * A bare PID file has no start time, boot id or namespace; only what needs none of them
 * proves death:
 * - our own PID in a file no descriptor of this process has open: an earlier process with
 *   our PID wrote it (a held PidLock keeps its file open, in whatever thread or copy);
 * - no process has the PID, or it is a zombie.
 * No clock is consulted: the file's mtime against a start time derived from the boot time
 * turns a live holder "dead" after a forward clock step, so a reused PID counts as alive.
 * Outside the initial PID namespace (a container) the PID may be a sibling container's, so
 * nothing is judged: the file counts as foreign.
 */
function judgeBarePid(pid: number, stats: Stats): SnapshotVerdict {
  if (pid === process.pid && openInThisProcess(stats)) {
    return { dead: false, foreign: false, reason: `PID ${pid} is this process, which holds the lock` }
  }
  if (!inInitialPidNamespace()) {
    return {
      dead: false,
      foreign: true,
      reason: `held by PID ${pid} in a bare PID file, which names no PID namespace; this process runs in a PID namespace other than the host's (a container), so it can't be checked from here`,
    }
  }
  if (pid === process.pid) {
    return { dead: true, foreign: false, reason: `PID ${pid} is this process, which does not hold the lock: an earlier process had this PID (PID reused)` }
  }
  const byPid = judgeOwner({ pid, hostname: selfIdentity().hostname, startTime: null, bootId: null })
  if (!byPid.alive) return { dead: true, foreign: false, reason: byPid.reason }
  return { dead: false, foreign: false, reason: `PID ${pid} is running` }
}

/**
 * True if the snapshot is a lock held by this very process (in any thread, through any
 * copy of exitguard): our record (PID and start time), or a bare PID file we have open.
 */
export function heldByThisProcess(snapshot: Snapshot): boolean {
  const me = selfIdentity()
  if (snapshot.owner.pid !== me.pid) return false
  if (snapshot.kind === 'pid') return openInThisProcess(snapshot.stats)
  return snapshot.kind === 'record' && onThisMachine(snapshot.owner) && snapshot.owner.startTime === me.startTime && (snapshot.owner.pidNamespace ?? null) === (me.pidNamespace ?? null)
}

function shorten(command: string): string {
  return command.length > MAX_COMMAND ? command.slice(0, MAX_COMMAND - 3) + '...' : command
}

let commandCache: string | undefined
function defaultCommand(): string {
  commandCache ??= shorten([basename(process.argv0), ...process.argv.slice(1)].join(' '))
  return commandCache
}
