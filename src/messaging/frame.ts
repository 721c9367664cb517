/**
 * The wire format of one message or reply: a 4-byte big-endian length, then that many
 * bytes of UTF-8 JSON. A length prefix (rather than a newline) lets the reader refuse an
 * oversized frame from its first 4 bytes, before it buffers any of it.
 */

/** The default cap on a message and on a reply, in bytes of JSON: 1 MiB. */
export const DEFAULT_MAX_BYTES = 1024 * 1024

/** Why a frame could not be made or read; `code` goes into the error reply. */
export class FrameError extends Error {
  constructor(
    readonly code: 'ETOOBIG' | 'EBADMSG',
    message: string,
  ) {
    super(message)
  }
}

/** `value` as JSON; throws FrameError if it is not JSON or is larger than `maxBytes`. */
export function toJson(value: unknown, maxBytes: number, what: string): string {
  let json: string | undefined
  try {
    json = JSON.stringify(value === undefined ? null : value)
  } catch (err) {
    throw new FrameError('EBADMSG', `the ${what} is not JSON-serialisable (${describeThrown(err)})`)
  }
  if (json === undefined) throw new FrameError('EBADMSG', `the ${what} is not JSON-serialisable`)
  const length = Buffer.byteLength(json)
  if (length > maxBytes) throw new FrameError('ETOOBIG', `the ${what} is ${length} bytes of JSON, more than the limit of ${maxBytes}`)
  return json
}

/**
 * What a thrown value says: an Error's message, else its string form. Never throws: the value
 * may be anything (a null-prototype object, a throwing getter or toString, a revoked proxy).
 */
export function describeThrown(value: unknown): string {
  try {
    const text = value instanceof Error ? value.message : value
    return typeof text === 'string' ? text : String(text)
  } catch {
    try {
      return Object.prototype.toString.call(value) // "[object Object]"
    } catch {
      return 'a value that cannot be shown'
    }
  }
}

/** One frame holding the JSON text `json`. */
export function frameOf(json: string): Buffer {
  const length = Buffer.byteLength(json)
  const frame = Buffer.allocUnsafe(4 + length)
  frame.writeUInt32BE(length, 0)
  frame.write(json, 4, 'utf8')
  return frame
}

/**
 * Collects one frame from a stream of chunks. `push` returns `{ value }` once the frame is
 * whole, undefined while it needs more, and throws FrameError for an oversized or bad frame
 * or bytes after it. It never holds more than 4 + `maxBytes` bytes, nor more than about twice
 * what has arrived: chunks are copied into one buffer, grown by doubling up to the frame's
 * length. (Kept as they came, a byte at a time, each byte cost the holder ~190.)
 */
export class FrameReader {
  readonly #head = Buffer.alloc(4)
  #body: Buffer | null = null
  #filled = 0 // bytes of the body in #body
  #have = 0
  #length = -1
  #done = false

  constructor(
    readonly maxBytes: number,
    readonly what: string,
  ) {}

  push(chunk: Buffer): { value: unknown } | undefined {
    if (this.#done) throw new FrameError('EBADMSG', `bytes after the end of the ${this.what}`)
    this.#have += chunk.length
    if (this.#length === -1) {
      const n = chunk.copy(this.#head, this.#have - chunk.length)
      if (this.#have < 4) return undefined
      this.#length = this.#head.readUInt32BE(0)
      if (this.#length > this.maxBytes) throw new FrameError('ETOOBIG', `the ${this.what} is ${this.#length} bytes, more than the limit of ${this.maxBytes}`)
      chunk = chunk.subarray(n)
    }
    const filled = this.#filled + chunk.length
    if (filled > this.#length) throw new FrameError('EBADMSG', `bytes after the end of the ${this.what}`)
    if (this.#body === null || filled > this.#body.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.#length, Math.max(filled, 2 * (this.#body?.length ?? 0))))
      this.#body?.copy(grown, 0, 0, this.#filled)
      this.#body = grown
    }
    chunk.copy(this.#body, this.#filled)
    this.#filled = filled
    if (filled < this.#length) return undefined
    this.#done = true
    const body = this.#body
    this.#body = null
    try {
      return { value: JSON.parse(body.toString('utf8')) }
    } catch (err) {
      throw new FrameError('EBADMSG', `the ${this.what} is not valid JSON (${(err as Error).message})`)
    }
  }

  /** Bytes received so far (0 means the peer sent nothing). */
  get received(): number {
    return this.#have
  }
}
