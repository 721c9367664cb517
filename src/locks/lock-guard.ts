import type { LockCompromisedError } from '../errors.js'
import { Guard } from '../exit/guard.js'
import { writeStderr } from '../internal/stderr.js'

/**
 * What `PidLock` and `FileLock` add to the guard shape: `release()` / `using`, and a lost lock
 * (`compromised`) reported through `onCompromised`, never thrown. A subclass supplies
 * `removeHeld`, which removes what it holds and throws on failure.
 */
export abstract class LockGuard extends Guard implements Disposable {
  abstract override readonly path: string
  #compromised: LockCompromisedError | null = null
  readonly #onCompromised: (err: LockCompromisedError) => void

  /** @internal `label` names the exit registration, e.g. `pid lock /run/app.pid`. */
  constructor(label: string, onCompromised: ((err: LockCompromisedError) => void) | undefined) {
    super()
    this.#onCompromised = onCompromised ?? warnCompromised
    this.guardAtExit(label)
  }

  /** The error reported when the lock was lost while held, else null. */
  get compromised(): LockCompromisedError | null {
    return this.#compromised
  }

  /**
   * Releases the lock and unregisters the exit callback. Idempotent. A removal that fails
   * throws (an `ExitguardError` naming the path) and leaves the lock registered: the exit
   * cleanup tries again.
   */
  release(): void {
    this.releaseChecked()
  }

  [Symbol.dispose](): void {
    this.releaseChecked()
  }

  /** @internal Records the loss and reports it through onCompromised; never throws. */
  protected compromise(err: LockCompromisedError): void {
    this.#compromised = err
    try {
      this.#onCompromised(err)
    } catch (thrown) {
      writeStderr(`exitguard: onCompromised for ${this.path} threw: ${(thrown as Error)?.stack ?? String(thrown)}`)
    }
  }
}

function warnCompromised(err: LockCompromisedError): void {
  writeStderr(`exitguard: ${err.message}`)
}
