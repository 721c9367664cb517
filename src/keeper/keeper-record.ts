import { readBootId, type LockOwner } from '../owner.js'

/**
 * The keeper in a PID lock record: `"keeper":{"pgid":N}`, one optional field of version 1
 * records. It makes the keeper a co-holder: the lock counts as held while the holder or any
 * process of group N lives, so after the holder's SIGKILL no taker acts until the keeper has
 * stopped the holder's command and unlinked the file. An older exitguard ignores the field
 * and judges the holder alone: it may take the lock over while the keeper still works, and
 * the keeper then leaves the file alone (the token no longer matches).
 */
export function parseKeeperField(value: unknown): { pgid: number } | null {
  const pgid = (value as { pgid?: unknown } | null)?.pgid
  return typeof pgid === 'number' && Number.isInteger(pgid) && pgid > 1 && pgid <= 2 ** 31 - 1 ? { pgid } : null
}

/**
 * Why a lock whose holder is dead is still held: its keeper runs. Null if it has none or the
 * keeper is gone too. Asked only for a holder proven dead on this host, in this PID namespace;
 * after a reboot the group id means nothing, so it is not asked.
 */
export function keeperStillHolds(owner: LockOwner): string | null {
  if (!owner.keeper) return null
  const boot = readBootId()
  if (owner.bootId && boot && owner.bootId !== boot) return null
  try {
    // A process group id is not reused while any member lives; EPERM means it exists.
    process.kill(-owner.keeper.pgid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return null
  }
  return `PID ${owner.pid} has ended and its keeper (process group ${owner.keeper.pgid}) is releasing what it held; the lock is free once it is done`
}
