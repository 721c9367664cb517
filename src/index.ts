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
} from './exit/registry.js'
export { LockHeldError, LockTimeoutError, LockCompromisedError } from './errors.js'
export { describeOwner, type LockOwner, type ProcessIdentity } from './owner.js'
export {
  acquirePidLock,
  acquirePidLockSync,
  readPidLock,
  reapPidLock,
  PidLock,
  type PidLockOptions,
  type PidLockAsyncOptions,
  type PidLockStatus,
} from './locks/pid-lock.js'
export { messageHolder, type MessageHolderOptions } from './messaging/message-holder.js'
export { MessageError } from './messaging/message-error.js'
export type { MessageHandler, MessageSender, ListenOptions } from './messaging/listener.js'
export {
  tempFile,
  tempFileSync,
  tempDir,
  tempDirSync,
  withTempDir,
  withTempFile,
  TempFile,
  TempDir,
  type TempOptions,
  type TempFileOptions,
  type TempDirOptions,
} from './temp/temp.js'
export { reapOrphans, type ReapOptions, type ReapedEntry } from './temp/reap.js'
export { pgLockId } from './locks/pg-key.js'
export {
  acquirePgLock,
  parsePgLockUrl,
  type PgLock,
  type PgLockOptions,
  type PgLockOwner,
  type PgLockUrl,
  type PgClientLike,
} from './locks/pg-lock.js'
export {
  acquireFileLock,
  acquireFileLockSync,
  FileLock,
  FileLockHeldError,
  FileLockTimeoutError,
  type FileLockOptions,
  type FileLockAsyncOptions,
} from './locks/file-lock.js'
