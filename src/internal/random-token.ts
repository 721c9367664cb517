import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { crypto } from '../builtins.js'

/**
 * 32 random hex digits (128 bits), for a lock record's token. Read from /dev/urandom where it is
 * the kernel's device: loading node:crypto (OpenSSL's set-up) was ~6 ms of `exitguard run`'s
 * start, the read is a few µs. /dev/urandom never blocks once the kernel's pool is seeded.
 * Elsewhere (Windows, a chroot without it), node:crypto.
 */
export function randomToken(): string {
  const bytes = Buffer.alloc(16)
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
    return bytes.toString('hex')
  } catch {
    return crypto().randomUUID().replaceAll('-', '')
  }
}
