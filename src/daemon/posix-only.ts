import { ExitguardError } from '../errors.js'

/**
 * Throws ENOTSUP on Windows for `what` (start, stop, signalHolder): a daemon there is started
 * behind a /bin/sh gate in a new session, and a signal is TerminateProcess, which runs no cleanup
 * (docs/platforms.md). Checked before anything is touched.
 */
export function posixOnly(what: string): void {
  if (process.platform !== 'win32') return
  throw new ExitguardError(
    'ENOTSUP',
    `ENOTSUP: ${what} is POSIX-only; it is not supported on Windows, where a signal is TerminateProcess and runs no cleanup. Run the program with \`exitguard run --lock PATH -- COMMAND\` under a service manager (Task Scheduler, a Windows service) instead.`,
  )
}
