import type { Server, Socket } from 'node:net'
import { holdTemp, threadKeeper, type KeeperHold } from '../keeper/hold.js'
import { definedOnly } from '../defined-only.js'
import { net } from '../builtins.js'
import { unlinkSync } from 'node:fs'
import { resolve } from 'node:path'
import { ExitguardError, invalidArgType, invalidArgValue } from '../errors.js'
import { Guard } from '../exit/guard.js'
import { DEFAULT_MAX_BYTES, FrameError, FrameReader, describeThrown, frameOf, toJson } from './frame.js'
import { defaultSocketDir, ensurePrivateDir, socketPathFor } from './socket-dir.js'
import { writeStderr } from '../internal/stderr.js'

/**
 * Who sent a message, e.g. `{ pid: 4242, uid: 1000 }`. The sender states its own PID and uid in the message: Node has no
 * API for the socket's peer credentials (SO_PEERCRED), so they are informational. What is
 * enforced is that only the holder's user (and root) can reach the socket at all.
 */
export interface MessageSender {
  /** The sender's PID, as it claims. */
  pid: number
  /** The sender's uid, as it claims; null on Windows. */
  uid: number | null
}

/**
 * Receives a message sent to the lock holder; may return (or resolve) a JSON reply. If it
 * throws, the sender gets `EHANDLER` with the error's message (not its stack).
 *
 * @example
 * const onMessage: MessageHandler = (message, sender) => {
 *   console.log(`PID ${sender.pid} asked for the status`)
 *   return { done: 120, of: 500 }
 * }
 */
export type MessageHandler = (message: unknown, sender: MessageSender) => unknown

/**
 * How the holder listens; the `messaging` option of `acquirePidLock`. See docs/messaging.md.
 *
 * @example
 * await acquirePidLock(path, { onMessage, messaging: { maxBytes: 64 * 1024, timeout: 2000 } })
 */
export interface ListenOptions {
  /**
   * A private directory (0700, owned by this user) for the socket; created if missing,
   * refused if it is a symlink, someone else's or open to others. Default:
   * `$XDG_RUNTIME_DIR/exitguard`, else `/tmp/exitguard-<uid>` (created, or repaired to 0700).
   */
  socketDir?: string | undefined
  /** The most bytes of JSON a message, or a reply, may have. Default 1 MiB. */
  maxBytes?: number | undefined
  /** Connections served at once (reading, handling, replying). Default 64. */
  maxConnections?: number | undefined
  /**
   * Connections accepted but not yet read, waiting for a slot; they cost a socket each, no
   * buffer. Beyond this, a sender is told `EBUSY` and retries. Default 1024.
   */
  maxPending?: number | undefined
  /** Milliseconds a connection may last, from accept to reply, before it is cut. Default 10000. */
  timeout?: number | undefined
}

export const listenDefaults = { maxBytes: DEFAULT_MAX_BYTES, maxConnections: 64, maxPending: 1024, timeout: 10_000 }
/** Room for the envelope around a message: {"exitguard":1,"pid":…,"uid":…,"message":…}. */
export const ENVELOPE_BYTES = 256

/** Checks the listening options up front, so a bad one fails before the lock is touched. */
export function validateListen(onMessage: unknown, options: unknown): Required<Omit<ListenOptions, 'socketDir'>> & { socketDir: string | undefined } {
  if (typeof onMessage !== 'function') throw invalidArgType('onMessage', 'a function', onMessage)
  if (options !== undefined && (options === null || typeof options !== 'object')) throw invalidArgType('messaging', 'an object', options)
  const given = (options ?? {}) as ListenOptions
  const opts = { ...listenDefaults, ...definedOnly(given), socketDir: given.socketDir }
  if (opts.socketDir !== undefined && (typeof opts.socketDir !== 'string' || opts.socketDir === '' || opts.socketDir.includes('\0'))) {
    throw invalidArgValue('messaging.socketDir', opts.socketDir, 'must be a non-empty path without NUL bytes')
  }
  // Absolute: the path goes into the lock record, and a sender's working directory is not ours.
  if (opts.socketDir !== undefined) opts.socketDir = resolve(opts.socketDir)
  for (const name of ['maxBytes', 'maxConnections', 'maxPending', 'timeout'] as const) {
    if (typeof opts[name] !== 'number' || !Number.isInteger(opts[name]) || opts[name] < 1) {
      throw invalidArgValue(`messaging.${name}`, opts[name], 'must be a whole number >= 1')
    }
  }
  // A frame's length is a 32-bit number; a 2**31 setTimeout fires at once.
  if (opts.maxBytes > 2 ** 31) throw invalidArgValue('messaging.maxBytes', opts.maxBytes, 'must be at most 2147483648')
  if (opts.timeout > 2 ** 31 - 1) throw invalidArgValue('messaging.timeout', opts.timeout, 'must be at most 2147483647 ms')
  return opts
}

/**
 * The holder's side: a Unix socket server (a named pipe on Windows) that answers one
 * message per connection. It never keeps the event loop alive (the server and its
 * connections are unref'd): the holder lives as long as its own work does. It answers
 * only once `activate()`d, i.e. once the lock is won; `close()` stops it and removes the
 * socket file, synchronously, so it can run at exit.
 */
export class Listener extends Guard {
  readonly path: string
  readonly #server: Server
  readonly #connections = new Set<Socket>()
  /** Accepted, not yet read (pauseOnConnect): they wait for a slot without buffering anything. */
  readonly #pending = new Set<Socket>()
  #active = false
  /** The keeper's copy, where this thread has one: it removes the socket file if we are killed. */
  readonly #keeperHold: KeeperHold | null

  constructor(
    token: string,
    readonly handler: MessageHandler,
    readonly opts: ReturnType<typeof validateListen>,
  ) {
    super()
    const dir = opts.socketDir ?? defaultSocketDir()
    if (process.platform !== 'win32') ensurePrivateDir(dir, opts.socketDir === undefined)
    this.path = socketPathFor(dir, token)
    // The keeper before the socket file exists, so that a SIGKILL never finds one it doesn't know of.
    threadKeeper()
    this.#server = net().createServer({ pauseOnConnect: true }, (socket) => this.#accept(socket))
    this.#server.on('error', (err) => writeStderr(`exitguard: the message socket ${this.path} failed: ${err.message}`))
    // For a Unix socket, bind and listen happen inside listen(): `listening` tells at once.
    this.#server.listen(this.path)
    if (!this.#server.listening) {
      this.#server.removeAllListeners('error').on('error', () => {}) // its error comes next tick; we report now
      throw new ExitguardError('EADDRINUSE', `Could not listen on the message socket ${this.path} (it exists already, or the directory refused it).`, { path: this.path })
    }
    this.#server.unref()
    // Its own exit entry covers a process that ends while still waiting for the lock; once the
    // lock is won, the lock's entry (newer, so run first) removes the lock file, then this.
    this.guardAtExit(`message socket ${this.path}`)
    this.#keeperHold = holdTemp(this.path)
  }

  /** Starts handing messages to the handler (the lock is ours now). */
  activate(): void {
    this.#active = true
  }

  /** Stops listening, cuts open connections and removes the socket file. Idempotent; never throws. */
  close(): void {
    this.releaseChecked()
  }

  /** @internal Never throws: a socket file already gone is fine. */
  protected removeHeld(): void {
    this.#active = false
    this.#keeperHold?.release()
    // Unlink first and synchronously: at exit, the server's own asynchronous close never completes.
    if (process.platform !== 'win32') {
      try {
        unlinkSync(this.path)
      } catch {
        // gone already
      }
    }
    this.#server.close()
    for (const socket of [...this.#connections, ...this.#pending]) socket.destroy()
    this.#connections.clear()
    this.#pending.clear()
  }

  #accept(socket: Socket): void {
    socket.unref()
    socket.on('error', () => {}) // a sender that went away mid-reply is its own problem
    if (this.released) return void socket.destroy()
    // The deadline runs from accept, queue time included: a slow or silent sender can't pin a slot.
    const timer = setTimeout(() => socket.destroy(), this.opts.timeout).unref()
    socket.on('close', () => {
      clearTimeout(timer)
      this.#pending.delete(socket)
      if (this.#connections.delete(socket)) this.#next()
    })
    if (this.#connections.size < this.opts.maxConnections) {
      this.#serve(socket)
      return
    }
    if (this.#pending.size < this.opts.maxPending) {
      this.#pending.add(socket)
      return
    }
    socket.end(errorFrame('EBUSY', `the holder is serving ${this.opts.maxConnections} connections with ${this.opts.maxPending} more waiting; try again`))
    // Read (and drop) what it sends, so its EOF is seen and it closes when the sender does:
    // paused, it stayed open until the deadline. Not closed at once: the sender's own write
    // would then fail (EPIPE) before it read the refusal.
    socket.resume()
  }

  /** A slot is free: serve the oldest waiting connection. */
  #next(): void {
    for (const socket of this.#pending) {
      this.#pending.delete(socket)
      if (socket.destroyed) continue
      this.#serve(socket)
      return
    }
  }

  #serve(socket: Socket): void {
    this.#connections.add(socket)
    const reader = new FrameReader(this.opts.maxBytes + ENVELOPE_BYTES, 'message')
    const onData = (chunk: Buffer) => {
      let frame: { value: unknown } | undefined
      try {
        frame = reader.push(chunk)
      } catch (err) {
        socket.off('data', onData)
        const e = err as FrameError
        return void socket.end(errorFrame(e.code, e.message)) // still read and dropped: closed at its EOF
      }
      if (!frame) return
      socket.off('data', onData)
      // The request is all in, so the sender writes no more: close once the reply is flushed.
      void this.#answer(frame.value).then((reply) => socket.end(reply, () => socket.destroy()))
    }
    socket.on('data', onData)
    socket.resume()
  }

  /**
   * The reply frame for one request. Never rejects, whatever the handler returns or throws:
   * a rejection here would be unhandled and end the holder's process.
   */
  async #answer(request: unknown): Promise<Buffer> {
    try {
      const r = request as { exitguard?: unknown; pid?: unknown; uid?: unknown; message?: unknown } | null
      if (r === null || typeof r !== 'object' || r.exitguard !== 1 || !Number.isSafeInteger(r.pid) || !(r.uid === null || Number.isSafeInteger(r.uid)) || !('message' in r)) {
        return errorFrame('EBADMSG', 'the message is not an exitguard request ({"exitguard":1,"pid":…,"uid":…,"message":…})')
      }
      if (!this.#active) return errorFrame('ENOTHELD', 'this process does not hold the lock (yet or any more)')
      let reply: unknown
      try {
        reply = await this.handler(r.message, { pid: r.pid as number, uid: r.uid as number | null })
      } catch (err) {
        // The message only: a stack would show the holder's source paths to the sender.
        const text = describeThrown(err)
        return errorFrame('EHANDLER', text.length > 1000 ? text.slice(0, 997) + '...' : text)
      }
      // The cap is on the reply itself, as the sender's is on its message.
      return frameOf(`{"ok":true,"reply":${toJson(reply, this.opts.maxBytes, 'reply')}}`)
    } catch (err) {
      const code = err instanceof FrameError && err.code === 'ETOOBIG' ? 'ETOOBIG' : 'EHANDLER'
      return errorFrame(code, `the handler's reply could not be sent: ${describeThrown(err)}`)
    }
  }
}

function errorFrame(code: string, message: string): Buffer {
  return frameOf(JSON.stringify({ ok: false, code, message }))
}
