/**
 * The part of an `AbortSignal` that exitguard uses. Options are typed with it, not with
 * `AbortSignal`, so that exitguard's declarations compile without `@types/node` and without the
 * DOM lib; Node's `AbortSignal` (and the DOM's) fit it. Pass a real `AbortSignal`: anything else
 * is refused with `ERR_INVALID_ARG_TYPE`.
 *
 * @example
 * const signal: AbortSignalLike = AbortSignal.timeout(5000)
 * await acquirePidLock('/tmp/job.pid', { wait: Infinity, signal })
 */
export interface AbortSignalLike {
  readonly aborted: boolean
  // biome-ignore lint/suspicious/noExplicitAny: as the DOM's AbortSignal declares it, so every AbortSignal fits
  readonly reason: any
  throwIfAborted(): void
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void
  removeEventListener(type: 'abort', listener: () => void): void
}
