// A synchronous require() that works from both builds (this file is CommonJS in each).
// For dependencies with side effects at load: proper-lockfile installs signal-exit v3
// listeners, tmp an `exit` listener, signal-exit captures process.emit. exitguard loads
// each on first use, never at import.
export function requireLazily<T>(id: string): T {
  return require(id) as T
}

/** A loader for `id` that requires it on its first call and returns the same module after. */
export function lazyModule<T>(id: string): () => T {
  let loaded: T | undefined
  return () => (loaded ??= require(id) as T)
}
