import { childProcess } from './builtins.js'
import { isExitedState, statFields } from './internal/proc-stat.js'
import { fstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { hostname as osHostname } from 'node:os'
import { pipeNameFor, pipeState } from './internal/holder-pipe-name.js'

/** Who a process is, in a form that survives PID reuse and reboots. */
export interface ProcessIdentity {
  pid: number
  hostname: string
  /** The process start time as the OS reports it (Linux: `/proc/<pid>/stat` field 22, clock ticks since boot). */
  startTime: string | null
  /** Linux: `/proc/sys/kernel/random/boot_id`; null where the OS has none we can read. */
  bootId: string | null
  /**
   * Linux: the PID namespace (`/proc/self/ns/pid`, e.g. "pid:[4026531836]"). A PID means
   * nothing outside its namespace: containers sharing a hostname and a volume.
   */
  pidNamespace?: string | null
  /**
   * `/etc/machine-id` (systemd's, stable across reboots), or null where there is none. It tells a
   * reboot (another boot id, same machine) from another machine that has the same hostname.
   */
  machineId?: string | null
}

/** The verdict on a recorded owner. `alive` also covers "cannot prove it dead" (fail closed). */
export interface OwnerVerdict {
  alive: boolean
  /** For people: why, e.g. "no process has PID 4242" or "held on another host (web-2)". */
  reason: string
  /** True when the owner is on another host, so it can't be judged here. */
  foreign: boolean
}

let self: ProcessIdentity | undefined

/** This process's identity, read once. */
export function selfIdentity(): ProcessIdentity {
  // Checked against process.pid each time: a heap snapshot restored elsewhere must not claim our identity.
  if (self?.pid !== process.pid) {
    self = { pid: process.pid, hostname: osHostname(), startTime: readStartTime(process.pid), bootId: readBootId(), pidNamespace: readPidNamespace(), machineId: readMachineId() }
  }
  return self
}

/**
 * What a lock records about its holder: identity plus what a person needs to know. `D` is the
 * type of its `data` option: `null` when none was given, `unknown` for a record read from disk
 * (say what you expect with `readPidLock<{ port: number }>(path)`).
 */
export interface LockOwner<D = unknown> extends ProcessIdentity {
  /** ISO time the lock was taken. */
  createdAt: string
  /** The holder's command line, shortened, for messages. */
  command: string
  /** The `data` option of the holder (e.g. its port), or null. */
  data: D
  /** Unique per acquisition: tells two records of the same process apart. */
  token: string
  /** The holder's message socket (a named pipe on Windows), when it took the lock with `onMessage`. */
  socket?: string
  /**
   * Windows: the named pipe (`\\.\pipe\exitguard-<token>`) the holder listens on while it
   * holds the lock; gone means dead (src/locks/holder-pipe.ts). Absent elsewhere.
   */
  pipe?: string
  /**
   * The holder's keeper process (docs/keeper.md), a co-holder: the lock stays held while the
   * holder or its keeper runs, so the keeper can stop the holder's work and unlink the file
   * after a SIGKILL without racing a taker. Absent (or null) without a keeper.
   */
  keeper?: { pid: number; startTime: string } | null
  /**
   * Where the record was written: its directory (`"<dev>:<ino>"`) and file name. A record is acted
   * on (signalled, messaged) only where it is found (docs/threat-model.md): one moved or linked to
   * another lock path by someone who can rename files is not taken for that lock's holder.
   */
  location?: { dir: string; name: string } | null
}

/**
 * "PID 4242 (node server.js) on host web-1 since 2026-11-23T16:40:00.000Z". What a record says is
 * shown with its control characters escaped: anyone who can plant a record could otherwise
 * write terminal escapes (erase a line, forge another) to whoever reads it.
 */
export function describeOwner(owner: Pick<LockOwner, 'pid' | 'hostname' | 'command'> & { createdAt: string | null }): string {
  const command = owner.command ? ` (${shown(owner.command)})` : ''
  const since = owner.createdAt ? ` since ${shown(owner.createdAt)}${ago(owner.createdAt)}` : ''
  return `PID ${owner.pid}${command} on host ${shown(owner.hostname)}${since}`
}

/** Text from a record, safe to print: control characters (a terminal's escapes) shown as \\xNN. */
export function shown(text: string): string {
  // eslint-disable-next-line no-control-regex
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it escapes
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

function ago(iso: string): string {
  const ms = Date.now() - Date.parse(iso)
  if (!Number.isFinite(ms) || ms < 0) return ''
  if (ms < 60_000) return ` (${Math.round(ms / 1000)} s ago)`
  if (ms < 3_600_000) return ` (${Math.round(ms / 60_000)} min ago)`
  return ` (${(ms / 3_600_000).toFixed(1)} h ago)`
}

function readMachineId(): string | null {
  try {
    const id = readFileSync('/etc/machine-id', 'latin1').trim()
    return /^[0-9a-f]{32}$/.test(id) ? id : null // "uninitialized", empty: none
  } catch {
    return null
  }
}

function readPidNamespace(): string | null {
  try {
    return readlinkSync('/proc/self/ns/pid')
  } catch {
    return null
  }
}

let bootIdCache: string | null | undefined

/** The boot identifier, or null where the OS has none. */
export function readBootId(): string | null {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null
    } catch {
      bootIdCache = process.platform === 'darwin' ? darwinBootTime() : null
    }
  }
  return bootIdCache
}

/**
 * The start time the OS reports for `pid`, or null if no such process exists or
 * the OS won't tell. Two processes that share a PID never share a start time.
 */
export function readStartTime(pid: number): string | null {
  if (process.platform === 'linux') return hostStartTime(readLinuxStat(pid)?.[19]) // field 22 overall
  if (process.platform === 'darwin') {
    try {
      return (
        childProcess()
          .execFileSync('ps', ['-o', 'lstart=', '-p', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
          .trim() || null
      )
    } catch {
      return null
    }
  }
  return null
}

let procOurs: { pid: number; ours: boolean } | undefined

/**
 * True if /proc numbers processes as this process's PID namespace does. After `unshare --pid`
 * without a /proc mount of its own, /proc is the host's: `/proc/<pid>` of a PID from a record
 * (and from kill(2), which uses our numbering) is then some other process, whose start time
 * would "prove" the holder dead or name a stranger as it. Such a /proc is not read at all.
 */
export function procIsOurs(): boolean {
  if (procOurs?.pid !== process.pid) {
    let ours = false
    try {
      ours = readlinkSync('/proc/self') === String(process.pid)
    } catch {
      // no /proc
    }
    procOurs = { pid: process.pid, ours }
  }
  return procOurs.ours
}

/**
 * A start time as /proc/<pid>/stat field 22 gives it to this process, in the host's terms.
 * The kernel adds the reader's time-namespace boottime offset (`unshare --time`, a CRIU
 * restore), so the same process has another start time inside such a namespace than outside:
 * a holder there would look like a reused PID to everyone else. Its offset is taken off here,
 * so every reader records and compares the same number.
 */
export function hostStartTime(ticks: string | undefined): string | null {
  if (ticks === undefined || !/^\d+$/.test(ticks)) return null
  const offset = bootTimeOffsetTicks()
  return offset === 0n ? ticks : String(BigInt(ticks) - offset)
}

/** A start time as this process sees it, without that correction: what the keeper, reading /proc itself, compares. */
export function startTimeAsSeen(pid: number): string | null {
  return process.platform === 'linux' ? (readLinuxStat(pid)?.[19] ?? null) : readStartTime(pid)
}

let offsetCache: bigint | undefined

/** This process's time-namespace boottime offset in clock ticks (USER_HZ, 100 a second); 0 outside one. */
function bootTimeOffsetTicks(): bigint {
  if (offsetCache === undefined) {
    offsetCache = 0n
    try {
      const match = /^boottime\s+(-?\d+)\s+(\d+)/m.exec(readFileSync('/proc/self/timens_offsets', 'latin1'))
      if (match) offsetCache = BigInt(match[1]!) * 100n + BigInt(match[2]!) / 10_000_000n
    } catch {
      // no time namespaces (Linux < 5.6): no offset
    }
  }
  return offsetCache
}

/** `/proc/<pid>/stat` from field 3 (state) on, or null (also where /proc is another namespace's). */
function readLinuxStat(pid: number): string[] | null {
  if (!procIsOurs()) return null
  try {
    return statFields(readFileSync(`/proc/${pid}/stat`, 'latin1'))
  } catch {
    return null
  }
}

/**
 * True if `pid` has exited and only waits to be reaped by its parent (Linux). The main
 * thread alone is not the process: one that called pthread_exit() shows as a zombie while
 * other threads still run, and a killed process's main thread turns zombie before its other
 * threads have finished their in-flight system calls. So every task must be a zombie.
 */
function isZombie(pid: number): boolean {
  if (process.platform !== 'linux' || !isExitedState(readLinuxStat(pid)?.[0])) return false
  let tasks: string[]
  try {
    tasks = readdirSync(`/proc/${pid}/task`)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' // reaped meanwhile; else can't tell: alive
  }
  return tasks.every((tid) => {
    try {
      return isExitedState(statFields(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1'))[0])
    } catch (err) {
      // That thread is gone: ENOENT, or ESRCH when it was released between the listing and the read.
      const code = (err as NodeJS.ErrnoException).code
      return code === 'ENOENT' || code === 'ESRCH'
    }
  })
}

/** The inode number of the initial (host) PID namespace on Linux (PROC_PID_INIT_INO, fixed since 3.8). */
const INITIAL_PID_NAMESPACE = 'pid:[4026531836]'

/**
 * True where a bare PID means one process for everyone who may read it: in Linux's initial
 * (host) PID namespace, or on an OS without PID namespaces. In a container (another PID
 * namespace) a PID may equal one in a sibling container sharing the volume, so it is false.
 * Unknown (no /proc on Linux): false, the safe answer.
 */
export function inInitialPidNamespace(): boolean {
  if (process.platform !== 'linux') return true
  return selfIdentity().pidNamespace === INITIAL_PID_NAMESPACE
}

/**
 * True if a descriptor of this process refers to the file `stats` describes (same dev and
 * inode). A held PidLock keeps its lock file open, so this answers "does this process hold
 * that lock file?" for every thread (workers share the descriptor table) and every copy of
 * exitguard loaded (ESM and CommonJS), and whatever path the file was reached by. Cannot tell
 * (no /proc/self/fd or /dev/fd): true, so the file counts as held (fail closed).
 */
export function openInThisProcess(stats: { dev: number; ino: number }): boolean {
  let fds: string[]
  try {
    fds = readdirSync(process.platform === 'linux' ? '/proc/self/fd' : '/dev/fd')
  } catch {
    return true
  }
  for (const fd of fds) {
    try {
      const st = fstatSync(Number(fd))
      if (st.ino === stats.ino && st.dev === stats.dev) return true
    } catch {
      // closed meanwhile (e.g. the descriptor readdir itself used)
    }
  }
  return false
}

/**
 * True while `pid` runs (a zombie does not) with `startTime`, in readStartTime's terms: the test
 * a record's co-holder (its keeper) must pass to hold a lock.
 */
export function runsAs(pid: number, startTime: string): boolean {
  if (process.platform !== 'linux') return pidExists(pid) && readStartTime(pid) === startTime
  if (!procIsOurs()) return pidExists(pid) // another namespace's /proc: only kill(2) speaks for our PIDs
  const fields = readLinuxStat(pid)
  return fields !== null && !isExitedState(fields[0]) && hostStartTime(fields[19]) === startTime
}

/** `kill(pid, 0)`: ESRCH means no such process; EPERM means it exists under another user. */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

/**
 * True if `owner` was recorded on this machine: the same hostname, or the same boot id (random
 * per boot of a kernel) whatever the hostname says: it was changed since, or the holder ran in
 * a UTS namespace of its own (a container). Whether its PID means anything here is the PID
 * namespace's question, asked next.
 */
export function onThisMachine(owner: Pick<ProcessIdentity, 'hostname' | 'bootId'>): boolean {
  const me = selfIdentity()
  return owner.hostname === me.hostname || (!!owner.bootId && owner.bootId === me.bootId)
}

/**
 * Judges a recorded owner. Dead only with proof: same host and either the PID
 * is gone, the PID now belongs to a process with another start time, or the
 * machine has rebooted since. Another host, or anything unknown: alive.
 */
export function judgeOwner(owner: ProcessIdentity & { token?: string; pipe?: string | undefined }): OwnerVerdict {
  const me = selfIdentity()
  if (!onThisMachine(owner)) {
    return { alive: true, foreign: true, reason: `held on another host (${shown(owner.hostname)}); it cannot be checked from ${shown(me.hostname)}` }
  }
  // Before the namespace: no PID namespace outlives a reboot.
  if (owner.bootId && me.bootId && owner.bootId !== me.bootId) {
    // Another boot id and the same hostname: a reboot, or another machine with this hostname.
    if (owner.machineId && me.machineId && owner.machineId !== me.machineId) {
      return { alive: true, foreign: true, reason: `held on another machine with the same hostname (${shown(owner.hostname)}, machine id ${shown(owner.machineId)}); it cannot be checked from here` }
    }
    return { alive: false, foreign: false, reason: `the machine has rebooted since PID ${owner.pid} took it` }
  }
  if (owner.pidNamespace && me.pidNamespace && owner.pidNamespace !== me.pidNamespace) {
    return (
      judgeInNamespace(owner) ?? {
        alive: true,
        foreign: true,
        reason: `held in another PID namespace (${shown(owner.pidNamespace)}, e.g. another container) on ${shown(owner.hostname)}; its PID can't be checked from here`,
      }
    )
  }
  // Windows: the holder's pipe, not its PID, which Windows reuses (holder-pipe.ts). Only a pipe
  // named after the record's token counts: the name is never taken from the record as such.
  if (process.platform === 'win32' && owner.token && owner.pipe === pipeNameFor(owner.token) && pipeState(owner.token) === 'gone') {
    return { alive: false, foreign: false, reason: `its named pipe ${owner.pipe} is gone: no process holds this lock (PID ${owner.pid} has ended, even if that PID now names another process)` }
  }
  if (!pidExists(owner.pid)) {
    return { alive: false, foreign: false, reason: `no process has PID ${owner.pid}` }
  }
  if (isZombie(owner.pid)) {
    return { alive: false, foreign: false, reason: `PID ${owner.pid} has exited (its parent has not reaped it yet)` }
  }
  if (owner.startTime !== null) {
    const now = readStartTime(owner.pid)
    if (now !== null && now !== owner.startTime) {
      return { alive: false, foreign: false, reason: `PID ${owner.pid} now belongs to another process (PID reused)` }
    }
  }
  return { alive: true, foreign: false, reason: `PID ${owner.pid} is running` }
}

/**
 * The processes of PID namespace `ns` (as `/proc/self/ns/pid` names it), each as its PID there
 * (the last `NSpid` entry of /proc/<pid>/status) mapped to its PID here. Only where every process
 * can be seen: from the host's namespace, as root, with our own /proc; else null, as it is when
 * any process can't be read.
 */
export function namespaceMembers(ns: string): Map<number, number> | null {
  if (process.platform !== 'linux' || !inInitialPidNamespace() || process.geteuid?.() !== 0 || !procIsOurs()) return null
  const members = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // /proc/<pid>/status is world-readable; NSpid has one PID per namespace from ours down to its own.
      const nsPids =
        /^NSpid:\s+(.*)$/m
          .exec(readFileSync(`/proc/${entry}/status`, 'latin1'))?.[1]
          ?.trim()
          .split(/\s+/) ?? []
      if (nsPids.length === 1) continue // in our (the host's) namespace
      let itsNs: string
      try {
        itsNs = readlinkSync(`/proc/${entry}/ns/pid`)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'ENOENT' || code === 'ESRCH') continue
        return null // a process in some namespace whose name we may not read: it may be the holder
      }
      if (itsNs === ns) members.set(Number(nsPids[nsPids.length - 1]), Number(entry))
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOENT' && code !== 'ESRCH') return null // can't see every process: can't prove anything
    }
  }
  return members
}

/**
 * The PID here of the process that is `pid` in the PID namespace `owner` names: itself in ours,
 * else as namespaceMembers maps it; undefined where it has none or that can't be seen.
 */
export function localPid(owner: Pick<ProcessIdentity, 'pidNamespace'>, pid: number): number | undefined {
  const ours = selfIdentity().pidNamespace
  if (!owner.pidNamespace || !ours || owner.pidNamespace === ours) return pid
  return namespaceMembers(owner.pidNamespace)?.get(pid)
}

/**
 * Judges a record from another PID namespace (a container) where every process can be seen
 * (see namespaceMembers). The holder is the namespace's process with the recorded PID there; its
 * start time (ticks since this boot, as the holder read it) must match. No process left in the
 * namespace, or none with that PID there, is proof of death: a container's holder SIGKILLed with
 * its container, or a namespace whose number has since gone to another, no longer holds the lock
 * for ever. Null where that can't be told (not root, not the host's namespace, no start time).
 */
function judgeInNamespace(owner: ProcessIdentity): OwnerVerdict | null {
  if (owner.startTime === null || !owner.pidNamespace) return null
  const members = namespaceMembers(owner.pidNamespace)
  if (members === null) return null
  if (members.size === 0) {
    return { alive: false, foreign: false, reason: `its PID namespace (${shown(owner.pidNamespace)}, e.g. a container) has ended: no process is left in it` }
  }
  const here = members.get(owner.pid)
  if (here === undefined) return { alive: false, foreign: false, reason: `no process has PID ${owner.pid} in its PID namespace (${shown(owner.pidNamespace)})` }
  const verdict = judgeOwner({ pid: here, hostname: selfIdentity().hostname, startTime: owner.startTime, bootId: null })
  const where = `PID ${owner.pid} of its PID namespace (${shown(owner.pidNamespace)}; PID ${here} here)`
  // Still foreign while alive: its PID means another process here, so nothing may act on it.
  return verdict.alive
    ? { alive: true, foreign: true, reason: `held in another PID namespace: ${where} is running` }
    : { alive: false, foreign: false, reason: `${where} ${/reused/.test(verdict.reason) ? 'now belongs to another process' : 'has exited'}` }
}

function darwinBootTime(): string | null {
  try {
    return (
      childProcess()
        .execFileSync('sysctl', ['-n', 'kern.boottime'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .trim() || null
    )
  } catch {
    return null
  }
}
