import { ExitguardError, systemCode } from '../errors.js'
import { writeStderr } from '../internal/stderr.js'
import { exitRegistry, onExit, type Registration } from './registry.js'

// The one shape of every guard, as Rust's tempfile: a checked release that throws, and a quiet
// drop at exit that reports on stderr and never throws. A subclass supplies `removeHeld`, which
// removes what it holds and throws on failure; this base decides what a failure means.

/**
 * A synchronous guard (temp files and dirs, PID and file locks). A removal that fails leaves the
 * guard held and registered: a later `release` or the exit drop tries again.
 */
export abstract class Guard<R = void> {
  #released = false
  /** Set while `removeHeld` runs: a release from inside it (an onCompromised callback) does nothing. */
  #removing = false
  #registration: Registration | null = null

  /** True once released (or kept, or lost). */
  get released(): boolean {
    return this.#released
  }

  /** @internal Removes what the guard holds; throws on failure. Runs until it has succeeded once. */
  protected abstract removeHeld(): R

  /** @internal The path named in an error that is not already an ExitguardError. */
  protected abstract readonly path: string

  /** @internal Has the exit drop run for this guard, shown by `registered()` as `label`. */
  protected guardAtExit(label: string): void {
    this.#registration = onExit(Guard.#dropAtExit, this)
    this.#registration.label = label
  }

  static #dropAtExit(guard: Guard<unknown>): void {
    guard.drop()
  }

  /** @internal Renames the exit registration (`registered()` shows it). */
  protected relabel(label: string): void {
    if (this.#registration) this.#registration.label = label
  }

  /** @internal The checked release: undefined if already released, else what `removeHeld` returned. */
  protected releaseChecked(): R | undefined {
    if (this.#released || this.#removing) return undefined
    let result: R
    this.#removing = true
    try {
      result = this.removeHeld()
    } catch (err) {
      throw typed(err, this.path, this.#registration?.label)
    } finally {
      this.#removing = false
    }
    this.settle()
    return result
  }

  /** @internal Nothing is held any more (released, kept, handed over): takes the exit drop off. */
  protected settle(): void {
    this.#released = true
    this.unregister()
  }

  /** @internal Nothing is left to do at exit (the lock was lost), though the guard is not released. */
  protected unregister(): void {
    this.#registration?.unregister()
    this.#registration = null
  }

  /** @internal The exit-time release: never throws, reports a failure on stderr. */
  protected drop(): void {
    try {
      this.releaseChecked()
    } catch (err) {
      writeStderr(`exitguard: ${(err as Error).message}`)
    }
  }
}

/**
 * An asynchronous guard (a PostgreSQL lock). Its release ends what it holds whether it succeeds
 * or not (the session closes), so it is final once started: every call gets the same promise.
 */
export abstract class AsyncGuard {
  #released = false
  #releasing: Promise<void> | null = null
  #registration: Registration | null = null

  /** True once released (or lost). */
  get released(): boolean {
    return this.#released
  }

  /** @internal Removes what the guard holds; rejects on failure. */
  protected abstract removeHeld(): Promise<void>

  /** @internal What an exit where nothing can be awaited (process.exit(), a crash) does instead. */
  protected abstract abandon(): void

  /** @internal The path named in an error that is not already an ExitguardError. */
  protected abstract readonly path: string

  /** @internal As `Guard.guardAtExit`. */
  protected guardAtExit(label: string): void {
    this.#registration = onExit(AsyncGuard.#dropAtExit, this)
    this.#registration.label = label
  }

  static #dropAtExit(guard: AsyncGuard): Promise<void> | undefined {
    return guard.drop()
  }

  /** @internal The checked release: idempotent, the same promise each time. */
  protected releaseChecked(): Promise<void> {
    this.#releasing ??= this.#release()
    return this.#releasing
  }

  /** @internal Nothing is held any more (lost): takes the exit drop off. */
  protected settle(): void {
    this.#released = true
    this.#registration?.unregister()
    this.#registration = null
  }

  /** @internal The exit-time release: never rejects, reports a failure on stderr. */
  protected drop(): Promise<void> | undefined {
    if (exitRegistry().runner?.synchronous) {
      if (!this.#released) this.abandon()
      this.#released = true
      return undefined
    }
    return this.releaseChecked().catch((err: unknown) => writeStderr(`exitguard: ${(err as Error)?.message ?? String(err)}`))
  }

  async #release(): Promise<void> {
    this.settle()
    try {
      await this.removeHeld()
    } catch (err) {
      throw typed(err, this.path, undefined)
    }
  }
}

/** An ExitguardError as it is; anything else wrapped in one that names the path and the cause. */
function typed(err: unknown, path: string, label: string | undefined): ExitguardError {
  if (err instanceof ExitguardError) return err
  const message = (err as Error)?.message ?? String(err)
  return new ExitguardError(systemCode(err, 'EIO'), `Could not release ${label ?? path}: ${message}`, { path, cause: err })
}
