import { constants as osConstants } from 'node:os'
import { parseArgs, type ParseArgsConfig } from 'node:util'

/**
 * Exit codes of the `exitguard` command. Lock contention and usage follow
 * sysexits(3), so cron wrappers and systemd can tell "busy, try later" from a bug.
 */
export const EX = {
  OK: 0,
  /** `status`: the lock is held by a live process. */
  HELD: 1,
  /** `status`: the lock file's owner is provably dead. */
  STALE: 2,
  /** EX_USAGE: bad command line. */
  USAGE: 64,
  /** EX_NOINPUT: `status`/`reap` could not read the path or directory. */
  NOINPUT: 66,
  /** EX_UNAVAILABLE: PostgreSQL unreachable, or pg not installed. */
  UNAVAILABLE: 69,
  /** EX_SOFTWARE: an unexpected internal error. */
  SOFTWARE: 70,
  /** EX_OSERR: the command could not be started for a reason other than 126/127. */
  OSERR: 71,
  /** EX_CANTCREAT: the lock file or temp dir could not be created. */
  CANTCREAT: 73,
  /** EX_IOERR */
  IOERR: 74,
  /** EX_TEMPFAIL: the lock is held (or `--wait` ran out). */
  TEMPFAIL: 75,
  /** As a shell: the command was found but could not be executed. */
  NOEXEC: 126,
  /** As a shell: the command was not found. */
  NOTFOUND: 127,
  /** As a shell: 128 + signal number when the command died by a signal (bin.ts re-raises instead). */
  signalBase: 128,
} as const

/** Where the CLI writes, and the environment it passes on; tests and embedders can replace them. */
export interface CliIo {
  stdout(text: string): void
  stderr(text: string): void
  env: NodeJS.ProcessEnv
}

/** How a command ended: an exit code, or a signal the process should die by. */
export interface Outcome {
  code: number
  signal: NodeJS.Signals | null
}

/** Death by `signal`; `code` is what a shell would report (128 + its number), used if re-raising fails. */
export function signalled(signal: NodeJS.Signals): Outcome {
  return { code: EX.signalBase + (osConstants.signals[signal] ?? 0), signal }
}

/** A bad command line for `command` (empty for the program itself); the CLI prints it and exits 64. */
export class UsageError extends Error {
  constructor(
    readonly command: string,
    message: string,
  ) {
    super(message)
  }
}

/** parseArgs with its errors (unknown option, missing value) turned into usage errors for `command`. */
export function parse<T extends ParseArgsConfig>(command: string, config: T): ReturnType<typeof parseArgs<T & { strict: true }>> {
  try {
    return parseArgs({ ...config, strict: true })
  } catch (err) {
    // parseArgs's messages already say what was wrong, e.g. "Unknown option '--x'".
    throw new UsageError(command, (err as Error).message.replace(/\. To specify a positional argument.*$/s, '.'))
  }
}
