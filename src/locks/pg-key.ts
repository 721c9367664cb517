import { crypto } from '../builtins.js'
import { invalidArgType, invalidArgValue } from '../errors.js'

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * The PostgreSQL advisory lock id of a key: a bigint is used as it is (it must
 * fit a signed 64-bit `bigint` column); a string is hashed as follows, so any
 * language can compute the same id:
 *
 *   lockId = the first 8 bytes of SHA-256(UTF-8 bytes of key), read as a
 *            big-endian two's-complement signed 64-bit integer.
 *
 * No normalisation: "Deploy" and "deploy" are different locks, and so are the
 * NFC and NFD spellings of one accented word. In SQL, the same id is
 * `('x' || left(encode(sha256(convert_to(key, 'UTF8')), 'hex'), 16))::bit(64)::bigint`.
 *
 * @example
 * pgLockId('migrations') // -3058229681751119483n (the same in every process, on every machine)
 * pgLockId(42n)          // 42n
 */
export function pgLockId(key: string | bigint): bigint {
  if (typeof key === 'bigint') {
    if (key < INT64_MIN || key > INT64_MAX) {
      throw invalidArgValue('key', key, 'must fit a signed 64-bit integer (-2^63 to 2^63-1)')
    }
    return key
  }
  if (typeof key !== 'string') throw invalidArgType('key', 'a non-empty string or a bigint', key)
  if (key.length === 0) throw invalidArgValue('key', key, 'must not be empty')
  // A lone surrogate would be encoded as U+FFFD, so two different strings would share one lock.
  if (LONE_SURROGATE.test(key)) throw invalidArgValue('key', key, 'must be well-formed Unicode (no lone surrogates)')
  return crypto().createHash('sha256').update(key, 'utf8').digest().readBigInt64BE(0)
}

/**
 * How `pg_locks` shows a 64-bit advisory lock: `classid` holds the high 32
 * bits, `objid` the low 32 bits (both as unsigned `oid`), and `objsubid` is 1
 * (2 would be the two-int4 form of the lock functions).
 *
 * @example
 * pgLockOids(-1n) // { classid: 4294967295, objid: 4294967295 }
 */
export function pgLockOids(lockId: bigint): { classid: number; objid: number } {
  const unsigned = BigInt.asUintN(64, lockId)
  return { classid: Number(unsigned >> 32n), objid: Number(unsigned & 0xffff_ffffn) }
}
