import { readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, resolve } from 'node:path'
import { readerFiles } from '../locks/readers-dir.js'
import { UNREADABLE_GRACE } from '../locks/lock-record.js'
import { slotNumber, slotPath } from '../locks/slot-name.js'
import { EX, parse, UsageError, type CliIo, type Outcome } from './cli-common.js'
import { isPgUrl, runCommand } from './cli-run.js'
import { lsbStatus } from '../daemon/lsb-status.js'
import { describeOwner } from '../owner/describe.js'
import { readPidLock } from '../locks/pid-lock.js'
import { fsError } from '../errors.js'
import { reapOrphans } from '../temp/reap.js'

export { EX, type CliIo, type Outcome } from './cli-common.js'

const HELP = {
  main: `Usage: exitguard <command> [options]

Commands:
  run      run a command while holding a lock (one instance at a time)
  status   tell whether a lock file is free, held or stale
  reap     remove temp files, dirs and locks left by dead exitguard processes
  start    start a daemon in the background, holding a lock in its own name
  stop     stop the verified holder of a lock (never a reused PID)
  wait     wait until a lock is free
  send     send a JSON message to a lock's holder and print its reply

Options:
  -h, --help     show this help (or a command's: exitguard run --help)
  -v, --version  print the version

Exit codes: 64 bad usage, 75 lock held; see each command's --help.
`,
  run: `Usage: exitguard run --lock PATH|postgres://USER@HOST:PORT/DB?key=NAME [options] -- COMMAND [ARGS...]

Takes the lock, runs COMMAND with this terminal's stdin/stdout/stderr, forwards to it
every signal that would end exitguard (SIGINT, SIGTERM, SIGHUP, SIGALRM, ...), and
releases the lock only once COMMAND has ended. A lock left by a dead holder (even one
killed with kill -9) is taken over, with one line on stderr naming it.

Options:
  -l, --lock PATH|URL  lock file path, or a PostgreSQL advisory lock URL
                       (password from PGPASSWORD or ~/.pgpass only, never in the URL)
  -w, --wait MS        wait up to MS milliseconds for the lock (default 0; "inf" waits for ever)
  -t, --tmpdir         give COMMAND a private temp dir in TMPDIR and EXITGUARD_TMPDIR,
                       removed when it ends
  -d, --data JSON      JSON stored in the owner record, shown to whoever finds the lock held
      --grace MS       if this wrapper is killed with SIGKILL, its keeper sends COMMAND
                       SIGTERM, then SIGKILL after MS milliseconds (default 5000); with
                       --group, also what COMMAND left running in its group when it ended
      --group          run COMMAND in a process group (and session) of its own: signals go
                       to the whole group, and the lock is released only once no process of
                       it is left (the rest is stopped: SIGTERM, SIGKILL after --grace)
      --no-keeper      no keeper process: a SIGKILL of the wrapper leaves COMMAND running
  -E, --conflict-exit-code N
                       exit N instead of 75 when the lock is held
  -q, --quiet          print nothing when the lock is held (cron mails every line)
      --timeout MS     send COMMAND SIGTERM after MS milliseconds; exit 124 if it then ends
      --kill-after MS  with --timeout: SIGKILL MS milliseconds after that SIGTERM (exit 137)
      --warn-after MS  when the lock is held, warn on stderr (even with --quiet) if the
                       holder has held it for longer than MS milliseconds: stuck runs pile up
      --replace        stop the verified holder first (as exitguard stop --kill), then run
      --shared         take the lock shared: any number of shared runs at once, or one
                       exclusive run (one without --shared)
      --slots N        at most N runs at once, each holding one of PATH.slot1 .. PATH.slotN
  -h, --help           show this help

COMMAND's environment has EXITGUARD_LOCK (the lock file it holds, or the URL) and,
with --slots, EXITGUARD_SLOT (which slot).

Exit codes:
  COMMAND's own exit code; if COMMAND dies by a signal, exitguard dies by the same signal
  75   the lock is held (or --wait ran out); stderr names the holder (see -E, -q)
  124  --timeout ran out and COMMAND ended on its SIGTERM    137  ... on the SIGKILL
  64   bad usage          69  PostgreSQL unreachable or pg not installed
  73   the lock file or temp dir could not be created (directory missing, permission, EISDIR)
  126  COMMAND not executable    127  COMMAND not found    71  COMMAND could not be started
`,
  status: `Usage: exitguard status PATH [--json] [--lsb]

Tells whether the lock file PATH is free, held (and by whom) or stale (its holder
is provably dead; the next run takes it over). Changes nothing.

Options:
  --json      print {"path","state","owner","reason","foreign"} as JSON on stdout
  --lsb       exit with LSB init-script status codes instead: 0 running, 1 dead but
              the PID file exists, 3 not running, 4 unknown (unreadable, another host);
              with --json: {"path","lsb","line","owner"}
  -h, --help  show this help

Exit codes: 0 free, 1 held, 2 stale, 64 bad usage, 66 PATH can't be read
(a directory, a symlink, no permission).
`,
  reap: `Usage: exitguard reap [DIR] [--prefix PREFIX] [--dry-run] [--json]

Removes the temp files and dirs, and the PID lock files, in DIR (default: the OS
temp dir) that exitguard processes left behind when they were killed, only with
proof that their owner is dead (same host, and the PID is gone, reused, or the
machine rebooted).

Options:
  --prefix PREFIX  only names made with this prefix (as given to tempDir/tempFile)
  -n, --dry-run    print what would be removed; remove nothing
  --json           print {"dir","dryRun","entries":[{"path","kind","reason"}]} on stdout
  -h, --help       show this help

Exit codes: 0 done (even if nothing was found), 64 bad usage, 66 DIR can't be read.
`,
}

const defaultIo: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  env: process.env,
}

/**
 * The `exitguard` command line. Never exits, so it can be embedded and tested: it says how the
 * process should end, with an exit code or by a signal (bin.ts re-raises it).
 */
export async function cli(argv: string[], io: CliIo = defaultIo): Promise<Outcome> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'run':
        return await run(rest, io)
      case 'status':
        return done(status(rest, io))
      case 'reap':
        return done(reap(rest, io))
      case 'start':
      case 'stop':
      case 'wait':
        // Each command's modules load when it runs: `run` in a crontab pays only for its own.
        return await (await import('./cli-daemon.js')).daemonCommand(command, rest, io)
      case 'send':
        return done(await (await import('./cli-send.js')).sendCommand(rest, io))
      default:
        return done(top(argv, io))
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`exitguard${err.command ? ' ' + err.command : ''}: ${err.message}\nTry 'exitguard ${err.command ? err.command + ' ' : ''}--help'.\n`)
      return done(EX.USAGE)
    }
    io.stderr(`exitguard: internal error: ${(err as Error)?.stack ?? String(err)}\n`)
    return done(EX.SOFTWARE)
  }
}

function done(code: number): Outcome {
  return { code, signal: null }
}

function top(argv: string[], io: CliIo): number {
  const { values, positionals } = parse('', {
    args: argv,
    allowPositionals: true,
    options: { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } },
  })
  if (positionals.length > 0) throw new UsageError('', `unknown command ${JSON.stringify(positionals[0])}; the commands are run, status, reap, send, start, stop and wait`)
  if (values.version) {
    io.stdout(`${version()}\n`)
    return EX.OK
  }
  if (values.help) {
    io.stdout(HELP.main)
    return EX.OK
  }
  throw new UsageError('', 'a command is missing; the commands are run, status, reap, send, start, stop and wait')
}

async function run(argv: string[], io: CliIo): Promise<Outcome> {
  const { values, positionals, tokens } = parse('run', {
    args: argv,
    allowPositionals: true,
    tokens: true,
    options: {
      lock: { type: 'string', short: 'l' },
      wait: { type: 'string', short: 'w' },
      tmpdir: { type: 'boolean', short: 't' },
      data: { type: 'string', short: 'd' },
      grace: { type: 'string' },
      group: { type: 'boolean' },
      'no-keeper': { type: 'boolean' },
      'conflict-exit-code': { type: 'string', short: 'E' },
      quiet: { type: 'boolean', short: 'q' },
      timeout: { type: 'string' },
      'kill-after': { type: 'string' },
      'warn-after': { type: 'string' },
      replace: { type: 'boolean' },
      shared: { type: 'boolean' },
      slots: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    io.stdout(HELP.run)
    return done(EX.OK)
  }
  // Everything after `--` is the command, untouched; a bare word before it is a mistake
  // (it could be taken for an option's value or the command), so it is refused.
  const terminator = tokens.find((t) => t.kind === 'option-terminator')
  const before = tokens.filter((t) => t.kind === 'positional' && (!terminator || t.index < terminator.index))
  if (before.length > 0) throw new UsageError('run', `unexpected argument ${JSON.stringify(before[0]!.kind === 'positional' ? before[0]!.value : '')}; put the command after --`)
  const command = terminator ? argv.slice(terminator.index + 1) : []
  if (command.length === 0) throw new UsageError('run', 'the command is missing: exitguard run --lock PATH -- COMMAND [ARGS...]')
  if (command[0] === '') throw new UsageError('run', 'the command name is empty')
  if (positionals.length !== command.length) throw new UsageError('run', 'could not tell the command from the options; put it after --')
  if (values.lock === undefined) throw new UsageError('run', '--lock PATH is required')
  if (values.lock === '') throw new UsageError('run', 'the --lock path is empty; give a lock file path such as /tmp/job.pid')
  if (isPgUrl(values.lock)) checkPgUrl(values.lock)
  else checkLockPath('run', '--lock', values.lock)
  let data: unknown
  if (values.data !== undefined) {
    try {
      data = JSON.parse(values.data)
    } catch (err) {
      throw new UsageError('run', `--data must be JSON: ${(err as Error).message}`)
    }
  }
  const grace = values.grace === undefined ? undefined : parseMs('--grace', values.grace)
  const ms = (option: 'timeout' | 'kill-after' | 'warn-after') => (values[option] === undefined ? undefined : parseMs(`--${option}`, values[option]))
  const conflictText = values['conflict-exit-code']
  if (conflictText !== undefined && (!/^\d{1,3}$/.test(conflictText) || Number(conflictText) > 255)) {
    throw new UsageError('run', `--conflict-exit-code must be an exit code from 0 to 255; got ${JSON.stringify(conflictText)}`)
  }
  const slotsText = values.slots
  if (slotsText !== undefined && (!/^\d{1,4}$/.test(slotsText) || Number(slotsText) < 1 || Number(slotsText) > 1000)) {
    throw new UsageError('run', `--slots must be a whole number from 1 to 1000; got ${JSON.stringify(slotsText)}`)
  }
  if (values.shared && slotsText !== undefined) throw new UsageError('run', '--shared and --slots exclude each other')
  if ((values.shared || slotsText !== undefined) && isPgUrl(values.lock)) throw new UsageError('run', '--shared and --slots need a lock file, not a PostgreSQL URL')
  if (values.replace && (values.shared || slotsText !== undefined)) throw new UsageError('run', '--replace stops the one holder of an exclusive lock; it does not go with --shared or --slots')
  if (values['kill-after'] !== undefined && values.timeout === undefined) throw new UsageError('run', '--kill-after needs --timeout (it counts from the SIGTERM that --timeout sends)')
  return runCommand(
    {
      lock: values.lock,
      wait: parseWait(values.wait),
      tmpdir: values.tmpdir ?? false,
      data,
      command,
      keeper: !values['no-keeper'],
      grace,
      group: values.group ?? false,
      conflictCode: conflictText === undefined ? undefined : Number(conflictText),
      quiet: values.quiet ?? false,
      timeout: ms('timeout'),
      killAfter: ms('kill-after'),
      warnAfter: ms('warn-after'),
      replace: values.replace ?? false,
      shared: values.shared ?? false,
      slots: slotsText === undefined ? undefined : Number(slotsText),
    },
    io,
  )
}

function parseMs(option: string, text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 2 ** 31 - 1) {
    throw new UsageError('run', `${option} must be a whole number of milliseconds from 0 to 2147483647; got ${JSON.stringify(text)}`)
  }
  return Number(text)
}

function parseWait(text: string | undefined): number {
  if (text === undefined) return 0
  if (/^(inf|infinity)$/i.test(text)) return Infinity
  // Capped where setTimeout still works (about 24.8 days), as the pg lock requires.
  if (!/^\d+$/.test(text) || Number(text) > 2 ** 31 - 1) {
    throw new UsageError('run', `--wait must be a whole number of milliseconds from 0 to 2147483647, or "inf"; got ${JSON.stringify(text)}`)
  }
  return Number(text)
}

/** A password in the URL would show in `ps`, in the owner record and in messages: refuse it. */
function checkPgUrl(url: string): void {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new UsageError('run', 'the --lock URL is not a valid URL; expected postgres://USER@HOST:PORT/DB?key=NAME')
  }
  // pg also reads a password from ?password= (and a passfile or an SSL key password from the query).
  const secret = ['password', 'passfile', 'sslpassword'].find((name) => parsed.searchParams.has(name))
  if (parsed.password !== '' || secret) {
    throw new UsageError('run', 'the --lock URL must not contain a password (nor ?password=, ?passfile=, ?sslpassword=); use PGPASSWORD or ~/.pgpass')
  }
  const keys = parsed.searchParams.getAll('key')
  if (keys.length !== 1 || keys[0] === '') throw new UsageError('run', 'the --lock URL needs exactly one key parameter: postgres://USER@HOST:PORT/DB?key=NAME')
}

function status(argv: string[], io: CliIo): number {
  const { values, positionals } = parse('status', {
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, lsb: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  })
  if (values.help) {
    io.stdout(HELP.status)
    return EX.OK
  }
  if (positionals.length !== 1) throw new UsageError('status', positionals.length === 0 ? 'the lock file PATH is missing' : 'give exactly one lock file PATH')
  if (positionals[0] === '') throw new UsageError('status', 'the lock file PATH is empty')
  if (isPgUrl(positionals[0]!)) throw new UsageError('status', 'status reads lock files; for a PostgreSQL lock, look in pg_locks')
  checkLockPath('status', 'PATH', positionals[0]!)
  const path = resolve(positionals[0]!)
  if (values.lsb) {
    const lsb = lsbStatus(path)
    io.stdout(values.json ? JSON.stringify({ path, lsb: lsb.code, line: lsb.line, owner: lsb.owner }) + '\n' : `${lsb.line}\n`)
    return lsb.code
  }
  let result: ReturnType<typeof readPidLock>
  try {
    result = readPidLock(path, { unreadableGrace: UNREADABLE_GRACE })
  } catch (err) {
    io.stderr(`exitguard: ${(err as Error).message}\n`)
    return EX.NOINPUT
  }
  // Shared holders and slots: each its own PID lock file beside PATH.
  const others = otherHolders(path)
  const states = [result.state, ...others.map((o) => o.status.state)]
  const code = states.includes('held') ? EX.HELD : states.includes('stale') ? EX.STALE : EX.OK
  if (values.json) {
    const holders = others.map((o) => ({ path: o.path, kind: o.kind, slot: o.slot, state: o.status.state, owner: o.status.owner ?? null, reason: o.status.reason ?? null }))
    io.stdout(
      JSON.stringify({
        path,
        state: result.state,
        owner: result.owner ?? null,
        reason: result.reason ?? null,
        foreign: result.foreign ?? false,
        fileOwner: result.fileOwner ?? null,
        untrusted: result.untrusted ?? null,
        ...(holders.length ? { holders } : {}),
      }) + '\n',
    )
    return code
  }
  for (const o of others) {
    const what = o.kind === 'slot' ? `slot ${o.slot}` : 'shared'
    if (o.status.state !== 'free') io.stdout(`${what}: ${o.status.state} by ${describeOwner(o.status.owner)} (${o.status.reason})\n`)
  }
  if (others.length > 0 && result.state === 'free') return code
  if (result.state === 'free') io.stdout(`free: ${path} is not held\n`)
  // No record to name a holder by (PID 0 is a placeholder): say what the file is, as run does.
  else if (result.owner!.pid === 0) {
    const what = `${path} holds no valid record (empty or unreadable, last written ${result.owner!.createdAt})`
    if (result.state === 'held') io.stdout(`held: ${what}; it counts as stale once it is ${UNREADABLE_GRACE} ms old; if no process uses it, remove it\n`)
    else io.stdout(`stale: ${what}; the next run takes it over\n`)
  } else if (result.untrusted)
    io.stdout(`held: ${path} names ${describeOwner(result.owner!)} (${result.reason}), but the record is not trusted: ${result.untrusted}; stop, send and status --lsb refuse to act on it\n`)
  else if (result.state === 'held') io.stdout(`held: ${path} is held by ${describeOwner(result.owner!)} (${result.reason})\n`)
  else io.stdout(`stale: ${path} was held by ${describeOwner(result.owner!)}, now dead (${result.reason}); the next run takes it over\n`)
  return code
}

/** The shared holders (`PATH.readers/*`) and slots (`PATH.slotN`) of the lock PATH, each read as a PID lock. */
function otherHolders(path: string): { path: string; kind: 'shared' | 'slot'; slot: number | null; status: ReturnType<typeof readPidLock> }[] {
  const found: { path: string; kind: 'shared' | 'slot'; slot: number | null; status: ReturnType<typeof readPidLock> }[] = []
  const read = (file: string, kind: 'shared' | 'slot', slot: number | null) => {
    try {
      found.push({ path: file, kind, slot, status: readPidLock(file, { unreadableGrace: UNREADABLE_GRACE }) })
    } catch {
      // not a lock file (a directory, a symlink): nobody's
    }
  }
  for (const file of readerFiles(path)?.files ?? []) read(file, 'shared', null)
  const base = basename(path)
  let names: string[] = []
  try {
    names = readdirSync(dirname(path))
  } catch {
    // the directory can't be listed: no slots to show
  }
  const slots = names.map((name) => slotNumber(base, name)).filter((n): n is number => n !== null)
  for (const n of slots.sort((a, b) => a - b)) read(slotPath(path, n), 'slot', n)
  return found
}

function reap(argv: string[], io: CliIo): number {
  const { values, positionals } = parse('reap', {
    args: argv,
    allowPositionals: true,
    options: {
      prefix: { type: 'string' },
      'dry-run': { type: 'boolean', short: 'n' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    io.stdout(HELP.reap)
    return EX.OK
  }
  if (positionals.length > 1) throw new UsageError('reap', 'give at most one DIR')
  const dryRun = values['dry-run'] ?? false
  let entries: ReturnType<typeof reapOrphans>
  const dir = resolve(positionals[0] ?? tmpdir())
  try {
    entries = reapOrphans({ dir, prefix: values.prefix, dryRun })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_INVALID_ARG_TYPE') throw new UsageError('reap', (err as Error).message)
    // "the directory does not exist", not "ENOENT: no such file or directory, lstat '…'".
    io.stderr(`exitguard: ${fsError(err, dir, 'reap', { dir: true }).message}\n`)
    return EX.NOINPUT
  }
  if (values.json) {
    io.stdout(JSON.stringify({ dir, dryRun, entries }) + '\n')
    return EX.OK
  }
  const verb = dryRun ? 'would remove' : 'removed'
  for (const e of entries) io.stdout(`${verb} ${e.kind} ${e.path} (${e.reason})\n`)
  if (entries.length === 0) io.stdout(`nothing to reap in ${dir}\n`)
  return EX.OK
}

/** A lock file path must name a file: "app.pid/" would lock "app.pid", "." the directory. */
function checkLockPath(command: string, what: string, path: string): void {
  if (/\/$/.test(path)) throw new UsageError(command, `the ${what} ${JSON.stringify(path)} ends with "/"; a lock is a file: remove the slash`)
  if (/(^|\/)\.\.?$/.test(path)) throw new UsageError(command, `the ${what} ${JSON.stringify(path)} names a directory; a lock is a file, e.g. ${path}/job.pid`)
}

let versionCache: string | undefined
function version(): string {
  // Read at run time, so it never drifts from package.json: the nearest one above this file
  // (dist/exitguard.cjs, the bundled CLI, or dist/esm/cli/cli.js).
  for (let up = 1; versionCache === undefined && up <= 3; up++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(`${'../'.repeat(up)}package.json`, import.meta.url), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'exitguard') versionCache = String(pkg.version)
    } catch {
      // not at this level
    }
  }
  return versionCache ?? 'unknown'
}
