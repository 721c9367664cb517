export { ExitguardError } from './errors.js'
export {
  onExit,
  unregister,
  registered,
  configure,
  gracefulExit,
  type ExitHandler,
  type Registration,
  type RegisteredHandler,
  type ExitOptions,
} from './registry.js'
export { LockHeldError, LockTimeoutError, LockCompromisedError } from './errors.js'
export type { LockOwner } from './owner.js'
export { pgLockId } from './pg-key.js'
export {
  acquirePgLock,
  parsePgLockUrl,
  type PgLock,
  type PgLockOptions,
  type PgLockOwner,
  type PgLockUrl,
  type PgClientLike,
} from './pg-lock.js'
