import { ExitguardError, type ExitguardErrorCode } from '../errors.js'
import type { LockOwner } from '../owner/identity.js'

/**
 * Why `messageHolder` got no reply. `code`:
 * - `ENOTHELD`: the lock is free, or its holder is dead (or died before replying);
 * - `ENOLISTENER`: the holder does not listen (no `onMessage`, another host, or shutting down);
 * - `ETIMEDOUT`: no reply within `timeout`;
 * - `EHANDLER`: the holder's handler threw; the message is its error's message, without the stack;
 * - `EACCES`: the socket belongs to another user; `ETOOBIG`: the message or reply is over `maxBytes`;
 * - `EUNTRUSTED`: the record, or the socket it names, is not its file owner's (docs/threat-model.md);
 * - `EBADMSG`, `ENOREPLY`: the holder broke the protocol or closed the connection without a reply.
 *
 * @example
 * try { await messageHolder('/tmp/app.pid', { open: 'a.txt' }) }
 * catch (err) { if (err instanceof MessageError && err.code === 'ENOTHELD') startFirstInstance() }
 */
export class MessageError extends ExitguardError {
  declare readonly path: string
  /** The holder's record, when there is one. */
  readonly owner: LockOwner | null

  constructor(code: ExitguardErrorCode, path: string, message: string, owner: LockOwner | null = null) {
    super(code, message, { path })
    this.owner = owner
  }
}
