import { pipeNameFor, pipeState } from '../internal/holder-pipe-name.js'
import { shown } from './describe.js'
import type { OwnerVerdict, ProcessIdentity } from './identity.js'
import { namespaceMembers } from './namespace.js'
import { pidExists } from './runs-as.js'
import { selfIdentity } from './self.js'
import { readStartTime } from './start-time.js'
import { isZombie } from './zombie.js'

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
