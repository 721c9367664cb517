import type { LockCompromisedError } from '../errors.js'
import { onExit, type Registration } from '../exit/registry.js'
import { writeStderr } from '../internal/stderr.js'

/**
 * The shell shared by `PidLock` and `FileLock`: released/compromised state, an exit
 * registration that releases at exit, idempotent `release()` / `using`, and reporting a
 * lost lock through `onCompromised` without ever throwing. A subclass supplies `drop`,
 * which removes what it holds.
 */
export abstract class LockGuard implements Disposable {
  abstract readonly path: string
  #released = false
  #compromised: LockCompromisedError | null = null
  readonly #registration: Registration
  readonly #onCompromised: (err: LockCompromisedError) => void

  /** @internal `label` names the exit registration, e.g. `pid lock /run/app.pid`. */
  constructor(label: string, onCompromised: ((err: LockCompromisedError) => void) | undefined) {
    this.#onCompromised = onCompromised ?? warnCompromised
    this.#registration = onExit(() => this.#release(true))
    this.#registration.label = label
  }

  /** True once released. */
  get released(): boolean {
    return this.#released
  }

  /** The error reported when the lock was lost while held, else null. */
  get compromised(): LockCompromisedError | null {
    return this.#compromised
  }

  /** Releases the lock and unregisters the exit callback. Idempotent. */
  release(): void {
    this.#release(false)
  }

  [Symbol.dispose](): void {
    this.#release(false)
  }

  /**
   * @internal Removes what the lock holds, once. At exit (`atExit`) it must not throw for a
   * failed removal: pass the error to `failed`, which throws it only for an explicit release.
   */
  protected abstract drop(atExit: boolean): void

  /** @internal An explicit release throws `error`; the exit-time one reports it on stderr. */
  protected failed(error: Error, atExit: boolean): void {
    if (!atExit) throw error
    writeStderr(`exitguard: ${error.message}`)
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

  /** @internal Renames the exit registration (`registered()` shows it). */
  protected relabel(label: string): void {
    this.#registration.label = label
  }

  /** @internal Takes the exit callback off the registry (nothing left to release at exit). */
  protected unregister(): void {
    this.#registration.unregister()
  }

  #release(atExit: boolean): void {
    if (this.#released) return
    this.#released = true
    if (!atExit) this.#registration.unregister()
    this.drop(atExit)
  }
}

function warnCompromised(err: LockCompromisedError): void {
  writeStderr(`exitguard: ${err.message}`)
}

