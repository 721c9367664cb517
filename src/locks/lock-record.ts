import { closeSync, fstatSync, openSync, readSync, constants, type Stats } from 'node:fs'
import { basename } from 'node:path'
import { randomUUID } from 'node:crypto'
import { ExitguardError, fsError, invalidArgValue } from '../errors.js'
import { judgeOwner, readBootTime, readStartedAt, selfIdentity, type LockOwner } from '../owner.js'
import { keeperStillHolds, parseKeeperField } from '../keeper/keeper-record.js'

/**
 * The lock file format. The first line is the bare PID, so `kill $(head -n1 FILE)`
 * and systemd's `PIDFile=` keep working; the second line is the owner record as JSON.
 *
 *     4242
 *     {"exitguard":1,"pid":4242,"hostname":"web-1","startTime":"81234","bootId":"…","createdAt":"…","command":"…","data":null,"token":"…"}
 */
export const RECORD_VERSION = 1

/** The most we ever read of a lock file: a record is far smaller, and a huge file is not read whole. */
const MAX_READ = 8192
/** The most `data` may take as JSON, so a record always fits in MAX_READ. */
const MAX_DATA = 4096
const MAX_PID = 2 ** 31 - 1

const CLOCK_SLACK = 30_000

/**
 * Lock paths held by PidLocks of this process, so a bare PID equal to ours can be judged.
 * Counted: a lock found lost may still be unreleased when the path is taken again.
 */
const held = new Map<string, number>()
export const heldHere = {
  add: (path: string): void => void held.set(path, (held.get(path) ?? 0) + 1),
  delete: (path: string): void => {
    const n = (held.get(path) ?? 1) - 1
    if (n > 0) held.set(path, n)
    else held.delete(path)
  },
  has: (path: string): boolean => held.has(path),
}

/** What was found at a lock path, read once through a descriptor that never follows a symlink. */
export interface Snapshot {
  path: string
  /** Identifies this record and no other: its token, or for a bare PID file its inode and mtime. */
  id: string
  /** 'record': ours, whole; 'pid': a bare PID (pidOnly or another tool's PID file); 'invalid': unreadable. */
  kind: 'record' | 'pid' | 'invalid'
  owner: LockOwner
  stats: Stats
}

/** Makes this process's owner record for one acquisition. */
export function makeOwner(data: unknown, command: string | undefined): LockOwner {
  const me = selfIdentity()
  return {
    pid: me.pid,
    hostname: me.hostname,
    startTime: me.startTime,
    bootId: me.bootId,
    pidNamespace: me.pidNamespace ?? null,
    createdAt: new Date().toISOString(),
    command: command ?? defaultCommand(),
    data: data === undefined ? null : data,
    // Unique per acquisition, and safe in a file name (claims are named after it).
    // randomUUID draws from a cached entropy pool: a tenth of randomBytes' cost here.
    token: randomUUID().replaceAll('-', ''),
  }
}

/** The file body for `owner`; with `pidOnly`, the bare PID alone. */
export function formatRecord(owner: LockOwner, pidOnly: boolean): string {
  if (pidOnly) return `${owner.pid}\n`
  return `${owner.pid}\n{"exitguard":${RECORD_VERSION},${JSON.stringify(owner).slice(1)}\n`
}

/** Rejects `data` that is not JSON or too large to keep every record small. */
export function checkData(data: unknown): void {
  if (data === undefined) return
  let json: string | undefined
  try {
    json = JSON.stringify(data)
  } catch (err) {
    throw invalidArgValue('data', data, `must be JSON-serialisable (${(err as Error).message})`)
  }
  if (json === undefined) throw invalidArgValue('data', data, 'must be JSON-serialisable')
  if (Buffer.byteLength(json) > MAX_DATA) throw invalidArgValue('data', data, `must be at most ${MAX_DATA} bytes as JSON`)
}

/**
 * Reads the lock file at `path` without following a symlink. Returns null if
 * there is none. Throws a typed error for what can never be a lock: a
 * directory, a symlink, a device.
 */
export function readSnapshot(path: string): Snapshot | null {
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return null
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
    const buffer = Buffer.alloc(Math.min(MAX_READ, Math.max(stats.size, 1)))
    const length = stats.size === 0 ? 0 : readSync(fd, buffer, 0, buffer.length, 0)
    return parseRecord(path, buffer.subarray(0, length), stats, stats.size > MAX_READ)
  } finally {
    closeSync(fd)
  }
}

function parseRecord(path: string, bytes: Buffer, stats: Stats, truncated: boolean): Snapshot {
  const fileId = `i${stats.ino}m${Math.round(stats.mtimeMs * 1000)}`
  const invalid = (): Snapshot => ({ path, id: fileId, kind: 'invalid', owner: placeholderOwner(0, stats), stats })
  if (truncated) return invalid()
  const text = bytes.toString('utf8')
  const newline = text.indexOf('\n')
  const first = (newline === -1 ? text : text.slice(0, newline)).trim()
  if (!/^\d{1,10}$/.test(first)) return invalid()
  const pid = Number(first)
  if (pid < 1 || pid > MAX_PID) return invalid()
  const rest = newline === -1 ? '' : text.slice(newline + 1).trim()
  if (rest === '') return { path, id: fileId, kind: 'pid', owner: placeholderOwner(pid, stats), stats }
  let record: Partial<LockOwner> & { exitguard?: unknown }
  try {
    record = JSON.parse(rest) as typeof record
  } catch {
    return invalid()
  }
  if (
    record === null || typeof record !== 'object' || record.exitguard !== RECORD_VERSION || record.pid !== pid ||
    typeof record.hostname !== 'string' || typeof record.token !== 'string' || !/^[\w-]{1,64}$/.test(record.token) ||
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
    createdAt: record.createdAt,
    command: typeof record.command === 'string' ? record.command : '',
    data: record.data ?? null,
    token: record.token,
  }
  // Optional (docs/keeper.md): records without it, and older readers, are unchanged.
  const keeper = parseKeeperField(record.keeper)
  if (keeper) owner.keeper = keeper
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

export interface SnapshotVerdict {
  dead: boolean
  reason: string
  foreign: boolean
}

/**
 * Proof of death for what a snapshot holds. A full record: `judgeOwner`.
 * A bare PID: the file's mtime stands in for the start time (a process that
 * started after the file was written cannot have written it). Unreadable: dead
 * only once older than `unreadableGrace`, since a person may be mid-edit.
 */
export function judgeSnapshot(snapshot: Snapshot, unreadableGrace: number): SnapshotVerdict {
  const { owner, stats } = snapshot
  if (snapshot.kind === 'record') {
    const verdict = judgeOwner(owner)
    // The holder is dead, but its keeper (a co-holder) may still be releasing: held until it is done.
    const keeper = verdict.alive ? null : keeperStillHolds(owner)
    if (keeper) return { dead: false, reason: keeper, foreign: false }
    return { dead: !verdict.alive, reason: verdict.reason, foreign: verdict.foreign }
  }
  if (snapshot.kind === 'invalid') {
    const age = Date.now() - stats.mtimeMs
    // Clamped: a file's mtime can be a fraction of a ms ahead of Date.now().
    return Math.max(0, age) >= unreadableGrace
      ? { dead: true, foreign: false, reason: `the lock file holds no valid record and is ${Math.round(age)} ms old` }
      : { dead: false, foreign: false, reason: `the lock file holds no valid record yet (younger than ${unreadableGrace} ms)` }
  }
  // A bare PID: our own PID in a file no lock of this process holds was written by an
  // earlier process with this PID (the container case: the app is PID 1 on every run).
  if (owner.pid === process.pid && !heldHere.has(snapshot.path)) {
    return { dead: true, foreign: false, reason: `PID ${owner.pid} is this process, which does not hold the lock: an earlier process had this PID (PID reused)` }
  }
  // Otherwise the file's mtime stands in for a start time. It comes from the file system's clock
  // and boot time from ours now: 30 s of slack keeps a clock step or an NFS server's skew from
  // making a live holder look dead (failing safe: a reuse within 30 s is judged alive).
  const bootTime = readBootTime()
  if (bootTime !== null && stats.mtimeMs < bootTime - CLOCK_SLACK) {
    return { dead: true, foreign: false, reason: `the machine has rebooted since PID ${owner.pid} took it` }
  }
  const byPid = judgeOwner({ pid: owner.pid, hostname: owner.hostname, startTime: null, bootId: null })
  if (!byPid.alive) return { dead: true, foreign: false, reason: byPid.reason }
  const startedAt = readStartedAt(owner.pid)
  if (startedAt !== null && startedAt > stats.mtimeMs + CLOCK_SLACK) {
    return { dead: true, foreign: false, reason: `PID ${owner.pid} now belongs to a process started after the lock was written (PID reused)` }
  }
  return { dead: false, foreign: false, reason: `PID ${owner.pid} is running` }
}


let commandCache: string | undefined
function defaultCommand(): string {
  if (commandCache === undefined) {
    const command = [basename(process.argv0), ...process.argv.slice(1)].join(' ')
    commandCache = command.length > 200 ? command.slice(0, 197) + '...' : command
  }
  return commandCache
}
