import { localPid } from '../owner/namespace.js'
import { readBootId } from '../owner/self.js'
import { runsAs } from '../owner/runs-as.js'
import type { LockOwner } from '../owner/identity.js'

/**
 * The keeper in a PID lock record: `"keeper":{"pid":N,"startTime":"…"}`, one optional field of
 * version 1 records. It makes the keeper a co-holder: the lock counts as held while the holder
 * or its keeper runs, so after the holder's SIGKILL no taker acts until the keeper has stopped
 * the holder's command and unlinked the file. An older exitguard ignores the field and judges
 * the holder alone: it may take the lock over while the keeper still works, and the keeper
 * then leaves the file alone (its token no longer matches).
 */
export function parseKeeperField(value: unknown): { pid: number; startTime: string } | null {
  const { pid, startTime } = (value ?? {}) as { pid?: unknown; startTime?: unknown }
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 2 || pid > 2 ** 31 - 1) return null
  return typeof startTime === 'string' && startTime !== '' && startTime.length < 64 ? { pid, startTime } : null
}

/**
 * Why a lock whose holder is dead is still held: its keeper runs. Null if it has none or the
 * keeper is gone too (no such PID, a zombie, or another start time). Asked only for a holder
 * proven dead on this host, in this PID namespace; after a reboot, never.
 */
export function keeperStillHolds(owner: LockOwner): string | null {
  const keeper = owner.keeper
  if (!keeper) return null
  const boot = readBootId()
  if (owner.bootId && boot && owner.bootId !== boot) return null
  // A container's keeper, judged from the host: its PID is the namespace's, not ours.
  const pid = localPid(owner, keeper.pid)
  if (pid === undefined || !runsAs(pid, keeper.startTime)) return null
  return `PID ${owner.pid} has ended and its keeper (PID ${keeper.pid}) is releasing what it held; the lock is free once it is done`
}
