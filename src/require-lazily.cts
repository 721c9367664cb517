// A synchronous require() that works from both builds (this file is CommonJS in each).
// For dependencies with side effects at load: proper-lockfile installs signal-exit v3
// listeners when loaded, so exitguard loads it on first use, never at import.
export function requireLazily<T>(id: string): T {
  return require(id) as T
}
