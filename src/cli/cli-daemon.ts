import { posixOnly } from '../daemon/posix-only.js'
import { resolve } from 'node:path'
import { ExitguardError, LockHeldError } from '../errors.js'
import { describeOwner } from '../owner/describe.js'
import { DaemonStartError, startDaemon } from '../daemon/start.js'
import { STOP_TIMEOUT, signalNumber, stopHolder } from '../daemon/stop.js'
import { waitForRelease } from '../daemon/wait.js'
import { EX, parse, signalled, UsageError, type CliIo, type Outcome } from './cli-common.js'

/** `stop`'s codes beside 0 (LSB: 1 generic error, 4 insufficient privilege). */
export const STOP_EX = { STILL_RUNNING: 1, REFUSED: 4 } as const

export const DAEMON_HELP = {
  start: `Usage: exitguard start --lock PATH [--log FILE] [--wait MS] -- COMMAND [ARGS...]

Starts COMMAND in the background, detached from the terminal (a new session, stdin
from /dev/null, stdout and stderr appended to FILE or sent to /dev/null), holding the
PID lock PATH in its own name: the file's first line is COMMAND's PID, and the lock is
held for as long as COMMAND lives. Returns once COMMAND runs. COMMAND must stay in the
foreground (not fork into the background itself).

Options:
  -l, --lock PATH  the lock (PID) file
  --log FILE       append COMMAND's stdout and stderr to FILE (default /dev/null)
  -w, --wait MS    wait up to MS milliseconds for a running holder to go ("inf": for ever)
  -h, --help       show this help

Exit codes:
  0    COMMAND runs and holds the lock; stdout says its PID
  75   already running (or --wait ran out); stderr names the holder
  126  COMMAND not executable    127  COMMAND not found
  64   bad usage    73  the lock file or log can't be created    71  could not start
  COMMAND's own code if it ended before start returned (128+N for signal N; 1 for 0)
`,
  stop: `Usage: exitguard stop PATH [--signal SIG] [--timeout MS] [--kill]

Sends SIG to the process holding the lock PATH, only after checking that the lock's
record still describes that live process (PID, start time, boot id, PID namespace):
a reused PID is never signalled. Waits up to MS for it to die or release the lock,
then removes the lock file it left.

Options:
  -s, --signal SIG   the signal to send (default TERM): a name (TERM, SIGHUP) or a number
  -t, --timeout MS   how long to wait for it to end (default ${STOP_TIMEOUT})
  -k, --kill         if it still runs after MS, send SIGKILL and wait up to MS again
  -h, --help         show this help

Exit codes (LSB stop):
  0    stopped, or was not running (a stale lock file is removed)
  1    still running when the timeout ran out
  4    refused: the holder is on another host or in another PID namespace, the file
       holds a bare PID or no valid record, its record is not trusted (another user
       could have written it), PATH can't be read, or no permission
  64   bad usage
`,
  wait: `Usage: exitguard wait PATH [--timeout MS]

Waits until the lock PATH is free: no lock file, or one whose holder is dead (stale;
the next start takes it over). Takes and removes nothing.

Options:
  -t, --timeout MS  give up after MS milliseconds (default: wait for ever)
  -h, --help        show this help

Exit codes: 0 free (or stale), 75 still held when the timeout ran out,
64 bad usage, 66 PATH can't be read (a directory, a symlink, no permission).
`,
}

/** Runs `exitguard start|stop|wait`. Usage errors are thrown as UsageError for cli.ts to print. */
export async function daemonCommand(command: 'start' | 'stop' | 'wait', argv: string[], io: CliIo): Promise<Outcome> {
  if (command !== 'wait' && process.platform === 'win32' && !argv.includes('--help') && !argv.includes('-h')) {
    try {
      posixOnly(`exitguard ${command}`)
    } catch (err) {
      io.stderr(`exitguard: ${(err as Error).message}\n`)
      return { code: EX.UNAVAILABLE, signal: null }
    }
  }
  if (command === 'start') return start(argv, io)
  return { code: command === 'stop' ? await stop(argv, io) : await wait(argv, io), signal: null }
}

async function start(argv: string[], io: CliIo): Promise<Outcome> {
  const { values, positionals, tokens } = parse('start', {
    args: argv,
    allowPositionals: true,
    tokens: true,
    options: {
      lock: { type: 'string', short: 'l' },
      log: { type: 'string' },
      wait: { type: 'string', short: 'w' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    io.stdout(DAEMON_HELP.start)
    return { code: EX.OK, signal: null }
  }
  const terminator = tokens.find((t) => t.kind === 'option-terminator')
  const before = tokens.find((t) => t.kind === 'positional' && (!terminator || t.index < terminator.index))
  if (before?.kind === 'positional') throw new UsageError('start', `unexpected argument ${JSON.stringify(before.value)}; put the command after --`)
  const cmd = terminator ? argv.slice(terminator.index + 1) : []
  if (cmd.length === 0) throw new UsageError('start', 'the command is missing: exitguard start --lock PATH -- COMMAND [ARGS...]')
  if (cmd[0] === '') throw new UsageError('start', 'the command name is empty')
  if (positionals.length !== cmd.length) throw new UsageError('start', 'could not tell the command from the options; put it after --')
  if (values.lock === undefined || values.lock === '') throw new UsageError('start', '--lock PATH is required')
  if (values.log === '') throw new UsageError('start', '--log needs a file name')
  const waitMs = parseMs('start', '--wait', values.wait, 0)
  // A signal while waiting for the lock ends the wait: the gated child is killed unrun, and we
  // die by that signal. Once the lock is ours, start finishes (a few ms) and reports.
  const abort = new AbortController()
  let received: NodeJS.Signals | null = null
  const onSignal = (signal: NodeJS.Signals) => {
    received ??= signal
    abort.abort(new ExitguardError('EINTR', `interrupted by ${signal}`))
  }
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
  for (const s of signals) process.on(s, onSignal)
  try {
    const daemon = await startDaemon({ lock: values.lock, log: values.log ?? null, wait: waitMs, command: cmd, signal: abort.signal })
    const log = values.log === undefined ? 'its output goes to /dev/null' : `its output goes to ${resolve(values.log)}`
    io.stdout(`started: PID ${daemon.pid} (${daemon.owner.command}) holds ${resolve(values.lock)}; ${log}\n`)
    return { code: EX.OK, signal: null }
  } catch (err) {
    if (received && (err as ExitguardError)?.code === 'EINTR') return signalled(received)
    return { code: startFailure(err, io, resolve(values.lock)), signal: null }
  } finally {
    for (const s of signals) process.removeListener(s, onSignal)
  }
}

function startFailure(err: unknown, io: CliIo, lock: string): number {
  if (err instanceof LockHeldError) {
    if (err.code === 'ELOCKED' && !err.message.includes('holds no valid record')) {
      io.stderr(`exitguard: already running: ${describeOwner(err.owner)} holds ${lock}. Stop it with: exitguard stop ${lock}\n`)
    } else {
      io.stderr(`exitguard: ${err.message}\n`)
    }
    return EX.TEMPFAIL
  }
  io.stderr(`exitguard: ${(err as Error)?.message ?? String(err)}\n`)
  if (err instanceof DaemonStartError) {
    if (err.code === 'ENOENT') return EX.NOTFOUND
    if (err.code === 'EACCES') return EX.NOEXEC
    if (err.code === 'EEXITED') return err.signal ? signalled(err.signal).code : err.exitCode || 1
    return EX.OSERR
  }
  const code = (err as NodeJS.ErrnoException | null)?.code
  if (code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_INVALID_ARG_TYPE') return EX.USAGE
  if (err instanceof ExitguardError) return code === 'EIO' ? EX.IOERR : EX.CANTCREAT
  return EX.SOFTWARE
}

async function stop(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('stop', {
    args: argv,
    allowPositionals: true,
    options: {
      signal: { type: 'string', short: 's' },
      timeout: { type: 'string', short: 't' },
      kill: { type: 'boolean', short: 'k' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    io.stdout(DAEMON_HELP.stop)
    return EX.OK
  }
  const path = onePath('stop', positionals)
  let signal: number
  try {
    signal = signalNumber('--signal', values.signal ?? 'SIGTERM')
  } catch {
    throw new UsageError('stop', `--signal must be a signal name or number, e.g. TERM, SIGHUP or 15; got ${JSON.stringify(values.signal)}`)
  }
  const timeout = parseMs('stop', '--timeout', values.timeout, STOP_TIMEOUT, false)
  try {
    const r = await stopHolder(path, { killSignal: signal, timeout, kill: values.kill ?? false })
    if (r.stopped) {
      io.stdout(`${r.how === 'not-running' ? 'not running' : 'stopped'}: ${r.reason}\n`)
      return EX.OK
    }
    io.stderr(`exitguard: still running: ${r.reason}. Try again with a longer --timeout, or add --kill.\n`)
    return STOP_EX.STILL_RUNNING
  } catch (err) {
    io.stderr(`exitguard: ${(err as Error).message}\n`)
    if (err instanceof ExitguardError) return STOP_EX.REFUSED
    throw err
  }
}

async function wait(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('wait', {
    args: argv,
    allowPositionals: true,
    options: { timeout: { type: 'string', short: 't' }, help: { type: 'boolean', short: 'h' } },
  })
  if (values.help) {
    io.stdout(DAEMON_HELP.wait)
    return EX.OK
  }
  const path = onePath('wait', positionals)
  const timeout = parseMs('wait', '--timeout', values.timeout, Infinity)
  let r: Awaited<ReturnType<typeof waitForRelease>>
  try {
    r = await waitForRelease(path, { timeout })
  } catch (err) {
    io.stderr(`exitguard: ${(err as Error).message}\n`)
    return EX.NOINPUT
  }
  const { status } = r
  if (status.state === 'free') io.stdout(`free: ${path} is not held\n`)
  else if (status.state === 'stale') io.stdout(`free: ${path} was held by ${describeOwner(status.owner!)}, now dead (${status.reason})\n`)
  else {
    io.stderr(`exitguard: gave up after ${r.waited} ms: ${path} is still held by ${describeOwner(status.owner!)}\n`)
    return EX.TEMPFAIL
  }
  return EX.OK
}

function onePath(command: string, positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError(command, positionals.length === 0 ? 'the lock file PATH is missing' : 'give exactly one lock file PATH')
  return resolve(positionals[0]!)
}

/** Milliseconds from 0 to 2^31-1 (setTimeout's range), or "inf" where `inf` is allowed. */
function parseMs(command: string, option: string, text: string | undefined, fallback: number, inf = true): number {
  if (text === undefined) return fallback
  if (inf && /^(inf|infinity)$/i.test(text)) return Infinity
  if (!/^\d+$/.test(text) || Number(text) > 2 ** 31 - 1) {
    throw new UsageError(command, `${option} must be a whole number of milliseconds from 0 to 2147483647${inf ? ', or "inf"' : ''}; got ${JSON.stringify(text)}`)
  }
  return Number(text)
}
