import type { Server } from 'node:net'
import { net } from '../builtins.js'
import { ExitguardError } from '../errors.js'

// The Windows holder's pipe (proof of death: src/internal/holder-pipe-name.ts).
import { pipeNameFor } from '../internal/holder-pipe-name.js'
export { pipeNameFor, pipeState } from '../internal/holder-pipe-name.js'

/**
 * The pipe a Windows holder keeps while it holds a lock without `onMessage`. It answers nobody:
 * a connection is dropped at once. Never keeps the event loop alive.
 */
export class HolderPipe {
  readonly #server: Server

  constructor(token: string) {
    const name = pipeNameFor(token)
    this.#server = net().createServer((socket) => socket.destroy())
    this.#server.listen(name)
    // On Windows the pipe is created by listen() itself; 'listening' only follows next tick.
    if (!this.#server.listening) {
      this.#server.on('error', () => {})
      throw new ExitguardError('EADDRINUSE', `Could not create the lock's named pipe ${name}, by which other processes see this holder alive.`, { path: name })
    }
    this.#server.on('error', () => {})
    this.#server.unref()
  }

  /** Nothing to hand over: the pipe only says "alive". (The Listener's counterpart starts answering.) */
  activate(): void {}

  /** Closes the pipe: after this, a checker gets ENOENT. Call only once the lock file is gone. */
  close(): void {
    this.#server.close()
  }
}
