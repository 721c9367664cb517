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
