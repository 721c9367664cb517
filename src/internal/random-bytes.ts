import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { crypto } from '../builtins.js'

// Random bytes for lock tokens and temp names, drawn from one pool per thread: one read of the
// pool's size serves 256 tokens or 400 names, so a lock or temp file costs no system call for
// them. The pool is filled from /dev/urandom where it is the kernel's device (loading node:crypto,
// OpenSSL's set-up, was ~6 ms of `exitguard run`'s start; /dev/urandom never blocks once the
// kernel's pool is seeded), elsewhere (Windows, a chroot without it) from node:crypto.
// Bytes handed out are never handed out again.
const POOL_SIZE = 4096
let pool: Buffer = Buffer.alloc(0)
let poolAt = 0

/** `n` (at most POOL_SIZE) random bytes, a view into the pool: copy them to keep them. */
export function randomBytes(n: number): Buffer {
  if (poolAt + n > pool.length) {
    pool = fill(Buffer.allocUnsafe(POOL_SIZE))
    poolAt = 0
  }
  poolAt += n
  return pool.subarray(poolAt - n, poolAt)
}

/** 32 random hex digits (128 bits), for a lock record's token. */
export function randomToken(): string {
  return randomBytes(16).toString('hex')
}

function fill(bytes: Buffer): Buffer {
  try {
    const fd = openSync('/dev/urandom', 'r')
    try {
      if (!fstatSync(fd).isCharacterDevice()) throw new Error('not a device')
      for (let n = 0; n < bytes.length; ) {
        const got = readSync(fd, bytes, n, bytes.length - n, null)
        if (got <= 0) throw new Error('short read')
        n += got
      }
    } finally {
      closeSync(fd)
    }
    return bytes
  } catch {
    return crypto().randomBytes(bytes.length)
  }
}
