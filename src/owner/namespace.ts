import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import type { ProcessIdentity } from './identity.js'
import { procIsOurs } from './linux-proc.js'
import { selfIdentity } from './self.js'

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
