import type { Socket } from 'node:net'
import { net } from '../builtins.js'
import { statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { invalidArgType, invalidArgValue, type ExitguardErrorCode } from '../errors.js'
import { describeOwner, shown } from '../owner/describe.js'
import type { LockOwner } from '../owner/identity.js'
import { readPidLock, type PidLockTaken } from '../locks/pid-lock.js'
import { judgeSnapshot, readSnapshot, UNREADABLE_GRACE } from '../locks/lock-record.js'
import { checkSocket, type CheckedSocket } from '../locks/record-trust.js'
import { DEFAULT_MAX_BYTES, type FrameError, FrameReader, frameOf, toJson } from '../messaging/frame.js'
import { ENVELOPE_BYTES } from '../messaging/listener.js'
import { MessageError } from '../messaging/message-error.js'
import type { AbortSignalLike } from '../abort-signal-like.js'
import { definedOnly } from '../defined-only.js'

/** Options of `messageHolder`. */
export interface MessageHolderOptions {
  /** Milliseconds to wait for the reply, in all (connecting and retries included). Default 5000. */
  timeout?: number | undefined
  /** Aborts the wait; the promise rejects with `signal.reason`. */
  signal?: AbortSignalLike | undefined
  /** The most bytes of JSON the message, and the reply, may have. Default 1 MiB. */
  maxBytes?: number | undefined
  /**
   * Also send to a holder whose lock file belongs to this uid. By default a message goes only
   * to a holder whose lock file is yours or root's: in a shared directory (`/tmp`) another user
   * can hold your lock path, and would get your message and forge the reply (`EUNTRUSTED`).
   */
  holderUid?: number | undefined
}

export const sendDefaults = { timeout: 5000, maxBytes: DEFAULT_MAX_BYTES }

/**
 * Sends one JSON message to the live holder of the PID lock at `path` (one that took it
 * with `onMessage`) and resolves with its reply. Rejects with a `MessageError`:
 * `ENOTHELD` (free or stale), `ENOLISTENER`, `ETIMEDOUT`, `EHANDLER` (the handler threw).
 *
 * @example
 * try {
 *   await messageHolder('/tmp/editor.pid', { open: process.argv.slice(2) })
 *   process.exit(0) // the running instance opened them
 * } catch (err) {
 *   if (err.code !== 'ENOTHELD') throw err // else: we are the first, start up
 * }
 */
export async function messageHolder(path: string, message: unknown, options: MessageHolderOptions = {}): Promise<unknown> {
  if (typeof path !== 'string') throw invalidArgType('path', 'a string', path)
  if (path === '' || path.includes('\0')) throw invalidArgValue('path', path, 'must be a non-empty path without NUL bytes')
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options)
  const opts = { ...sendDefaults, ...definedOnly(options) }
  if (typeof opts.timeout !== 'number' || !(opts.timeout > 0) || opts.timeout > 2 ** 31 - 1) throw invalidArgValue('timeout', opts.timeout, 'must be a number of milliseconds from 1 to 2147483647')
  if (typeof opts.maxBytes !== 'number' || !Number.isInteger(opts.maxBytes) || opts.maxBytes < 1 || opts.maxBytes > 2 ** 31)
    throw invalidArgValue('maxBytes', opts.maxBytes, 'must be a whole number from 1 to 2147483648')
  if (opts.holderUid !== undefined && !(Number.isInteger(opts.holderUid) && opts.holderUid >= 0)) throw invalidArgValue('holderUid', opts.holderUid, 'must be a uid (a whole number >= 0)')
  const { signal } = opts
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('signal', 'an AbortSignal', signal)
  signal?.throwIfAborted()
  const lockPath = resolve(path)
  let json: string
  try {
    json = toJson(message, opts.maxBytes, 'message')
  } catch (err) {
    const e = err as FrameError
    if (e.code === 'ETOOBIG') throw new MessageError('ETOOBIG', lockPath, `Not sent to the holder of ${lockPath}: ${e.message} (the maxBytes option).`)
    throw invalidArgValue('message', message, `must be JSON-serialisable (${e.message})`)
  }
  const frame = frameOf(`{"exitguard":1,"pid":${process.pid},"uid":${process.getuid?.() ?? null},"message":${json}}`)

  const status = liveHolder(lockPath)
  const { owner } = status
  const me = process.getuid?.()
  const { fileOwner } = status
  if (me !== undefined && fileOwner !== null && fileOwner !== me && fileOwner !== 0 && fileOwner !== opts.holderUid) {
    throw untrustedError(
      lockPath,
      owner,
      `the lock file belongs to uid ${fileOwner}, neither to you (uid ${me}) nor to root, so another user holds ${lockPath}; to message that user's holder anyway, pass holderUid: ${fileOwner} (exitguard send --holder-uid ${fileOwner})`,
    )
  }
  if (!owner.socket) {
    throw new MessageError('ENOLISTENER', lockPath, `The lock ${lockPath} is held by ${describeOwner(owner)}, which does not listen for messages (it was not started with onMessage).`, owner)
  }
  const deadline = Date.now() + opts.timeout
  for (let round = 0; ; round++) {
    // Checked before every connection, against the lock file's owner: never a socket of someone else's choosing.
    const socket = checkSocket(owner, status.fileOwner)
    if (typeof socket === 'object' && 'untrusted' in socket) throw untrustedError(lockPath, owner, socket.untrusted)
    const outcome =
      socket === 'none' ? { kind: 'refused' as const } : socket === 'denied' ? { kind: 'denied' as const } : await exchangeClosing(socket, frame, opts.maxBytes + ENVELOPE_BYTES, deadline, signal)
    switch (outcome.kind) {
      case 'reply':
        return outcome.value
      case 'remote-error':
        if (outcome.code === 'EHANDLER') throw new MessageError('EHANDLER', lockPath, `The message handler of ${describeOwner(owner)} threw: ${outcome.message}`, owner)
        if (outcome.code !== 'EBUSY') throw new MessageError(replyCode(outcome.code), lockPath, `The holder of ${lockPath} (PID ${owner.pid}) refused the message: ${outcome.message}.`, owner)
        break // busy: retry below
      case 'busy':
        break
      case 'timeout':
        throw new MessageError(
          'ETIMEDOUT',
          lockPath,
          `No reply from ${describeOwner(owner)} within ${opts.timeout} ms (the timeout option). It may be busy or blocked; try again or raise the timeout.`,
          owner,
        )
      case 'refused':
        throw await afterFailure(
          lockPath,
          owner,
          deadline,
          'ENOLISTENER',
          `The lock ${lockPath} is held by ${describeOwner(owner)}, but nothing answers on its socket ${shown(owner.socket)} (it may be shutting down).`,
        )
      case 'denied':
        throw new MessageError(
          'EACCES',
          lockPath,
          `Permission denied on the message socket ${shown(owner.socket)}: only the holder's user (${socketOwner(owner.socket)}) and root can message ${describeOwner(owner)}.`,
          owner,
        )
      case 'closed':
        throw await afterFailure(lockPath, owner, deadline, 'ENOREPLY', `${describeOwner(owner)} closed the connection without a whole reply (${outcome.detail}).`)
    }
    // Busy (EBUSY reply, or the kernel's backlog full): back off a little, with jitter, until the deadline.
    const pause = Math.min(50, 1 + round * 2) * (0.5 + Math.random())
    if (Date.now() + pause >= deadline) {
      throw new MessageError('ETIMEDOUT', lockPath, `No reply from ${describeOwner(owner)} within ${opts.timeout} ms: it was busy with other connections all that time.`, owner)
    }
    await new Promise((r) => setTimeout(r, pause))
    signal?.throwIfAborted()
  }
}

/** The live holder's lock status, or ENOTHELD. */
function liveHolder(lockPath: string): PidLockTaken<'held'> {
  const status = readPidLock(lockPath)
  if (status.state === 'free') throw new MessageError('ENOTHELD', lockPath, `No process holds the lock ${lockPath}: there is no one to message.`)
  if (status.state === 'stale') {
    throw new MessageError('ENOTHELD', lockPath, `The lock ${lockPath} was held by ${describeOwner(status.owner!)}, which is dead (${status.reason}): there is no one to message.`, status.owner!)
  }
  if (status.foreign) {
    throw new MessageError('ENOLISTENER', lockPath, `The lock ${lockPath} is held by ${describeOwner(status.owner!)}, which can't be reached from this host (${status.reason}).`, status.owner!)
  }
  if (status.untrusted) throw untrustedError(lockPath, status.owner, status.untrusted)
  return status
}

function untrustedError(lockPath: string, owner: LockOwner, why: string): MessageError {
  return new MessageError(
    'EUNTRUSTED',
    lockPath,
    `Not sent to the holder of ${lockPath} (${describeOwner(owner)}): the record is not trusted: ${why}. If it is not your program's, remove ${lockPath} (docs/threat-model.md).`,
    owner,
  )
}

/** `exchange` over a checked socket, whose directory stays open until the connection has settled. */
async function exchangeClosing(socket: CheckedSocket, frame: Buffer, maxReply: number, deadline: number, signal: AbortSignalLike | undefined): Promise<Outcome> {
  try {
    return await exchange(socket.path, frame, maxReply, deadline, signal)
  } finally {
    socket.close()
  }
}

/**
 * After a failed exchange: if the holder has gone meanwhile, say so (ENOTHELD) rather than
 * `code`. A process killed with SIGKILL closes its sockets a moment before it counts as dead
 * (its descriptors close before it becomes a zombie), so this looks again for a short while.
 */
async function afterFailure(lockPath: string, owner: LockOwner, deadline: number, code: 'ENOLISTENER' | 'ENOREPLY', message: string): Promise<MessageError> {
  const until = Math.min(deadline, Date.now() + DEATH_GRACE_MS)
  for (;;) {
    // Only who holds it, polled: not readPidLock, whose trust checks (path walk, socket) need no repeating.
    let now: { gone: boolean; what: string } | null = null
    try {
      const snapshot = readSnapshot(lockPath)
      const verdict = snapshot && judgeSnapshot(snapshot, UNREADABLE_GRACE)
      if (!snapshot) now = { gone: true, what: 'released the lock' }
      else if (verdict!.dead) now = { gone: true, what: `died (${verdict!.reason})` }
      else now = { gone: snapshot.owner.token !== owner.token, what: 'lost the lock' }
    } catch {
      // unreadable now: report what we saw
    }
    if (now?.gone) return new MessageError('ENOTHELD', lockPath, `${describeOwner(owner)} ${now.what} before it replied; nothing holds ${lockPath} for it now.`, owner)
    if (now === null || Date.now() >= until) return new MessageError(code, lockPath, message, owner)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** A refusal's code as the holder sent it: one of the listener's, else the holder broke the protocol. */
function replyCode(code: string): ExitguardErrorCode {
  return (['ENOTHELD', 'ETOOBIG', 'EBADMSG', 'EHANDLER'] as const).find((known) => known === code) ?? 'EBADMSG'
}

/** How long a holder that broke a connection off gets to show up as dead (its teardown); past it: ENOREPLY. */
const DEATH_GRACE_MS = 500

function socketOwner(socketPath: string): string {
  try {
    return `uid ${statSync(dirname(socketPath)).uid}`
  } catch {
    return 'another uid'
  }
}

type Outcome = { kind: 'reply'; value: unknown } | { kind: 'remote-error'; code: string; message: string } | { kind: 'busy' | 'timeout' | 'refused' | 'denied' } | { kind: 'closed'; detail: string }

/** One connection: send the frame, read one reply frame. Never rejects but for an abort. */
function exchange(socketPath: string, frame: Buffer, maxReply: number, deadline: number, signal: AbortSignalLike | undefined): Promise<Outcome> {
  return new Promise((resolveOutcome, rejectOutcome) => {
    let socket: Socket | null = null
    let settled = false
    const finish = (outcome: Outcome | { abort: unknown }) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      socket?.destroy()
      if ('abort' in outcome) rejectOutcome(outcome.abort)
      else resolveOutcome(outcome)
    }
    const onAbort = () => finish({ abort: signal!.reason })
    const timer = setTimeout(() => finish({ kind: 'timeout' }), Math.max(0, deadline - Date.now()))
    signal?.addEventListener('abort', onAbort, { once: true })
    const reader = new FrameReader(maxReply, 'reply')
    let connected = false
    socket = net().createConnection(socketPath, () => {
      connected = true
      socket!.write(frame)
    })
    socket.on('data', (chunk: Buffer) => {
      let got: { value: unknown } | undefined
      try {
        got = reader.push(chunk)
      } catch (err) {
        const e = err as FrameError
        return finish(e.code === 'ETOOBIG' ? { kind: 'remote-error', code: 'ETOOBIG', message: `its ${e.message}` } : { kind: 'closed', detail: e.message })
      }
      if (!got) return
      const reply = got.value as { ok?: unknown; reply?: unknown; code?: unknown; message?: unknown } | null
      if (reply && reply.ok === true) return finish({ kind: 'reply', value: reply.reply ?? null })
      if (reply && reply.ok === false && typeof reply.code === 'string') {
        return finish({ kind: 'remote-error', code: reply.code, message: typeof reply.message === 'string' ? reply.message : '' })
      }
      finish({ kind: 'closed', detail: 'the reply is not an exitguard reply' })
    })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected) {
        if (err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK') return finish({ kind: 'busy' }) // the listen backlog is full
        if (err.code === 'EACCES' || err.code === 'EPERM') return finish({ kind: 'denied' })
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') return finish({ kind: 'refused' })
      }
      // A reset after an EBUSY reply is still that reply, if it arrived whole: 'close' decides.
      if (reader.received === 0) finish({ kind: 'closed', detail: err.message })
    })
    socket.on('close', () => finish({ kind: 'closed', detail: reader.received === 0 ? 'no bytes received' : `only ${reader.received} bytes received` }))
  })
}
