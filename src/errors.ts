/**
 * Every error exitguard throws on purpose is an `ExitguardError` with a `code`
 * (Node's style: `ELOCKED`, `ERR_INVALID_ARG_VALUE`, ...) and, when a file is
 * involved, the `path` it is about, so callers can branch without parsing text.
 *
 * @example
 * try { acquirePidLockSync('/run/app.pid') }
 * catch (err) { if (err instanceof ExitguardError && err.code === 'ELOCKED') process.exit(75) }
 */
export class ExitguardError extends Error {
  readonly code: string
  readonly path: string | undefined

  constructor(code: string, message: string, options?: { path?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.path = options?.path
  }
}

/** Thrown for an argument of the wrong type (`ERR_INVALID_ARG_TYPE`), naming the argument. */
export function invalidArgType(name: string, expected: string, actual: unknown): ExitguardError {
  return new ExitguardError(
    'ERR_INVALID_ARG_TYPE',
    `The "${name}" argument must be ${expected}. Received ${describe(actual)}`,
  )
}

/** Thrown for an argument of the right type but a bad value (`ERR_INVALID_ARG_VALUE`), naming it. */
export function invalidArgValue(name: string, actual: unknown, reason: string): ExitguardError {
  return new ExitguardError(
    'ERR_INVALID_ARG_VALUE',
    `The "${name}" argument ${reason}. Received ${describe(actual)}`,
  )
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value)
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`
  return `${typeof value} ${String(value)}`
}
