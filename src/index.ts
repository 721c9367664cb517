// The declarations use Disposable, AsyncDisposable and Symbol.(async)dispose; this brings in the
// lib that has them (TypeScript >= 5.2), so they compile with any `lib` and no @types/node.
/// <reference lib="esnext.disposable" preserve="true" />
export { ExitguardError, type ExitguardErrorCode, type ExitguardOwnErrorCode, type SystemErrorCode } from './errors.js'
export type { AbortSignalLike } from './abort-signal-like.js'
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
export { describeOwner } from './owner/describe.js'
export type { LockOwner, ProcessIdentity } from './owner/identity.js'
export {
  acquirePidLock,
  acquirePidLockSync,
  readPidLock,
  reapPidLock,
  PidLock,
  type PidLockOptions,
  type PidLockAsyncOptions,
  type PidLockStatus,
  type PidLockFree,
  type PidLockTaken,
} from './locks/pid-lock.js'
export { messageHolder, type MessageHolderOptions } from './daemon/message-holder.js'
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
export {
  stopHolder,
  signalHolder,
  type StopHolderOptions,
  type StopResult,
  type SignalResult,
} from './daemon/stop.js'
export type { SignalName } from './daemon/signal-name.js'
