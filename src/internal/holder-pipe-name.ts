import { closeSync, openSync } from 'node:fs'

// Windows proof of death. Windows reuses PIDs and Node can't read a process's start
// time there, so a PID proves nothing about who holds a lock. Instead the holder listens on a
// named pipe named after its record's token for as long as it holds the lock, and closes it only
// after removing the lock file. The system removes a pipe when the last server handle closes,
// also when its process is killed (TerminateProcess closes every handle). So opening
// `\\.\pipe\exitguard-<token>` with ENOENT proves that no process holds that token, with no
// PID-reuse window; any other outcome (opened, EBUSY: every instance busy, EACCES) means a
// server is there: alive. With onMessage, the message Listener is that pipe (same name).

/** The pipe a Windows holder of the record with `token` listens on. */
export function pipeNameFor(token: string): string {
  return `\\\\.\\pipe\\exitguard-${token}`
}

/**
 * 'gone' only when opening the pipe gives ENOENT (no server has that name); else 'there'.
 * Synchronous (acquirePidLockSync judges with it); a successful open is a connection the
 * holder's server drops at once.
 */
export function pipeState(token: string): 'gone' | 'there' {
  try {
    closeSync(openSync(pipeNameFor(token), 'r'))
    return 'there'
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : 'there'
  }
}
