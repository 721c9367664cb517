import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { EX, type CliIo } from './cli-common.js'
import { messageHolder } from '../daemon/message-holder.js'
import { MessageError } from '../messaging/message-error.js'

/** Exit codes of `exitguard send` beyond the shared ones (sysexits(3) where one fits). */
export const SEND_EX = {
  /** The holder's handler threw; its message is on stderr. */
  HANDLER: 1,
  /** EX_DATAERR: the message or the reply is over the size limit. */
  TOOBIG: 65,
  /** EX_UNAVAILABLE: no live process holds the lock. */
  NOTHELD: 69,
  /** EX_TEMPFAIL: no reply within --timeout. */
  TIMEDOUT: 75,
  /** EX_PROTOCOL: the holder does not listen, or broke off the reply. */
  NOLISTENER: 76,
  /** EX_NOPERM: the holder runs as another user. */
  NOPERM: 77,
} as const

export const SEND_HELP = `Usage: exitguard send PATH JSON [--timeout MS] [--holder-uid UID]

Sends the JSON message to the live holder of the PID lock PATH (a process that
took it with onMessage) and prints its reply as JSON on stdout.

Options:
  -t, --timeout MS     wait up to MS milliseconds for the reply (default 5000)
  --holder-uid UID     also send to a holder whose lock file belongs to UID; by
                       default only a lock file of yours or root's is trusted
  -h, --help           show this help

Exit codes:
  0   the reply is on stdout
  69  no live process holds the lock (free, or its holder is dead)
  76  the holder does not listen for messages (or closed without replying)
  75  no reply within the timeout
  1   the holder's handler threw; its message is on stderr
  77  the holder runs as another user, or its record is not trusted
  65  the message or the reply is too large
  64  bad usage (PATH or JSON missing, JSON invalid)
  66  PATH can't be read
`

/** `exitguard send PATH JSON [--timeout MS]`; returns the exit code. */
export async function sendCommand(argv: string[], io: CliIo): Promise<number> {
  const usage = (message: string) => {
    io.stderr(`exitguard send: ${message}\nTry 'exitguard send --help'.\n`)
    return EX.USAGE
  }
  const config = {
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { timeout: { type: 'string', short: 't' }, 'holder-uid': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  } as const
  let parsed: ReturnType<typeof parseArgs<typeof config>>
  try {
    parsed = parseArgs(config)
  } catch (err) {
    return usage((err as Error).message.replace(/\. To specify a positional argument.*$/s, '.'))
  }
  const { values, positionals } = parsed
  if (values.help) {
    io.stdout(SEND_HELP)
    return EX.OK
  }
  if (positionals.length !== 2) return usage(positionals.length < 2 ? 'PATH and JSON are required: exitguard send PATH JSON' : 'give exactly PATH and one JSON argument (quote it)')
  let message: unknown
  try {
    message = JSON.parse(positionals[1]!)
  } catch (err) {
    return usage(`the message must be JSON: ${(err as Error).message}`)
  }
  let timeout = 5000
  if (values.timeout !== undefined) {
    if (!/^\d+$/.test(values.timeout) || Number(values.timeout) < 1 || Number(values.timeout) > 2 ** 31 - 1) {
      return usage(`--timeout must be a whole number of milliseconds from 1 to 2147483647; got ${JSON.stringify(values.timeout)}`)
    }
    timeout = Number(values.timeout)
  }
  const holderUid = values['holder-uid']
  if (holderUid !== undefined && !/^\d{1,10}$/.test(holderUid)) return usage(`--holder-uid must be a numeric uid; got ${JSON.stringify(holderUid)}`)
  try {
    const reply = await messageHolder(resolve(positionals[0]!), message, { timeout, holderUid: holderUid === undefined ? undefined : Number(holderUid) })
    io.stdout(JSON.stringify(reply) + '\n')
    return EX.OK
  } catch (err) {
    io.stderr(`exitguard: ${(err as Error).message}\n`)
    if (!(err instanceof MessageError)) return EX.NOINPUT // the lock file could not be read
    switch (err.code) {
      case 'ENOTHELD':
        return SEND_EX.NOTHELD
      case 'ETIMEDOUT':
        return SEND_EX.TIMEDOUT
      case 'EHANDLER':
        return SEND_EX.HANDLER
      case 'EACCES':
      case 'EUNTRUSTED':
        return SEND_EX.NOPERM
      case 'ETOOBIG':
        return SEND_EX.TOOBIG
      default:
        return SEND_EX.NOLISTENER
    }
  }
}
