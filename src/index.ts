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
} from './temp.js'
export { reapOrphans, type ReapOptions, type ReapedEntry } from './reap.js'
