import { crypto } from '../builtins.js'
import { invalidArgType, invalidArgValue } from '../errors.js'
import { randomBytes } from '../internal/random-bytes.js'
import { readBootId, selfIdentity } from '../owner/self.js'
import { readStartTime } from '../owner/start-time.js'
import type { ProcessIdentity } from '../owner/identity.js'

// A temp name carries what the next run needs to judge its owner, so a crashed
// run's leftovers can be reaped without any side file:
//
//   <prefix>exitguard-<host>-<pid>-<start>-<boot>-<random><postfix>
//   tmp-exitguard-1a2b3c4d-4242-2k9fz-5e6f7a8b-q8w7e6r5t4y3u2i1.txt
//
// host:   8 hex of sha256(hostname): another host's files are never judged here.
// pid:    decimal, for people reading `ls`.
// start:  Linux start time in clock ticks, base 36; elsewhere 'h' + 8 hex of a hash; 'x' if unknown.
// boot:   8 hex of sha256(boot id); 'x' if unknown.
// random: 16 chars of base32 (80 bits, internal/random-bytes.ts): names can't be guessed.

const MARKER = 'exitguard-'
const RANDOM_LENGTH = 16
// Sticky: tried at one position, the start of each occurrence of the marker.
const FIELDS = new RegExp(`${MARKER}([0-9a-f]{8})-([1-9][0-9]{0,9})-([0-9a-z]{1,13})-([0-9a-f]{8}|x)-([a-z2-7]{${RANDOM_LENGTH}})`, 'y')

/** The owner fields parsed out of a temp name. */
export interface TempNameOwner {
  prefix: string
  postfix: string
  hostTag: string
  pid: number
  startTag: string
  bootTag: string
}

/** Default `prefix` of temp files and dirs. */
export const DEFAULT_PREFIX = 'tmp-'

/**
 * Checks a prefix or postfix: a string with no path separator, no `..` and no NUL,
 * so the name can't climb out of `dir` or be cut short by the OS.
 */
export function checkNamePart(option: string, value: unknown): string {
  if (typeof value !== 'string') throw invalidArgType(option, 'a string', value)
  if (value.includes('/') || value.includes('\\')) throw invalidArgValue(option, value, 'must not contain a path separator')
  if (value.includes('..')) throw invalidArgValue(option, value, 'must not contain ".."')
  if (value.includes('\0')) throw invalidArgValue(option, value, 'must not contain a NUL byte')
  return value
}

/**
 * Checks a prefix or postfix given for creation: `checkNamePart`, and no owner marker
 * (`exitguard-`). A marker in it would give the name a second owner (say, a dead process's
 * name used as a prefix), and a reaper must never have to guess which one is real.
 */
export function checkCreatedNamePart(option: string, value: unknown): string {
  checkNamePart(option, value)
  if ((value as string).includes(MARKER)) throw invalidArgValue(option, value, `must not contain "${MARKER}", the owner marker of exitguard's temp names`)
  return value as string
}

function hashTag(text: string): string {
  return crypto().createHash('sha256').update(text).digest('hex').slice(0, 8)
}

/** The start field for a start time as `readStartTime` reports it. */
export function startTag(startTime: string | null): string {
  if (startTime === null) return 'x'
  // Linux clock ticks: exact and short in base 36. Other OSes report text (macOS: a date).
  return /^[0-9]{1,19}$/.test(startTime) ? BigInt(startTime).toString(36) : 'h' + hashTag(startTime)
}

let hostTagCache: { hostname: string; tag: string } | undefined

/** The host field for this host. */
export function selfHostTag(): string {
  const { hostname, pidNamespace } = selfIdentity()
  // The PID namespace is part of "where": a PID means nothing outside it (containers sharing a
  // host's /tmp), so another namespace's entries are, like another host's, never judged here.
  const where = pidNamespace ? `${hostname}\0${pidNamespace}` : hostname
  if (hostTagCache?.hostname !== where) hostTagCache = { hostname: where, tag: hashTag(where) }
  return hostTagCache.tag
}

/** The boot field for a boot id. */
export function bootTag(bootId: string | null): string {
  return bootId === null ? 'x' : hashTag(bootId)
}

let ownerPartCache: { pid: number; part: string } | undefined

function ownerPart(): string {
  if (ownerPartCache?.pid !== process.pid) {
    const me = selfIdentity()
    ownerPartCache = { pid: me.pid, part: `${MARKER}${selfHostTag()}-${me.pid}-${startTag(me.startTime)}-${bootTag(me.bootId)}-` }
  }
  return ownerPartCache.part
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'
function randomPart(): string {
  const bytes = randomBytes(RANDOM_LENGTH)
  let out = ''
  for (let i = 0; i < RANDOM_LENGTH; i++) out += BASE32[bytes[i]! & 31]
  return out
}

/** A fresh, unpredictable temp name (basename only) for this process. */
export function makeTempName(prefix: string, postfix: string): string {
  return prefix + ownerPart() + randomPart() + postfix
}

/**
 * A name without the owner part, for what the caller keeps (`keep: true`, `keep()`): no
 * reaper can take it for a leftover. Still unpredictable: the same 80 random bits.
 */
export function makeKeptName(prefix: string, postfix: string): string {
  return prefix + randomPart() + postfix
}

/** `name` (made by this process) with its owner part taken out, or null if it has none. */
export function keptNameOf(name: string): string | null {
  const owner = ownerPart()
  return name.includes(owner) ? name.replace(owner, '') : null
}

/**
 * Parses a basename strictly. Returns null for anything that is not an exitguard
 * temp name, or whose prefix is not `prefix` when one is given.
 *
 * A name must hold exactly one owner part. With two (a prefix or postfix that itself holds
 * one, as older versions allowed: `prefix: deadName + '.'`), either could be the real owner,
 * and a live process's entry must never be judged by a dead one's part: such a name is kept.
 */
export function parseTempName(name: string, prefix?: string): TempNameOwner | null {
  if (prefix !== undefined && !name.startsWith(prefix)) return null
  let found: { at: number; match: RegExpExecArray } | null = null
  // The marker can't overlap itself, so every owner part starts at one of its occurrences.
  for (let at = name.indexOf(MARKER); at !== -1; at = name.indexOf(MARKER, at + 1)) {
    FIELDS.lastIndex = at
    const match = FIELDS.exec(name)
    if (!match) continue
    if (found) return null // two owner parts: ambiguous
    found = { at, match }
  }
  if (!found || (prefix !== undefined && found.at !== prefix.length)) return null
  const { at, match } = found
  const pid = Number(match[2])
  if (!Number.isSafeInteger(pid) || pid > 2 ** 31 - 1) return null
  return { prefix: name.slice(0, at), hostTag: match[1]!, pid, startTag: match[3]!, bootTag: match[4]!, postfix: name.slice(at + match[0].length) }
}

/** What `judgeOwner` needs, rebuilt from the tags of a name; null for another host. */
export function identityFromTags(owner: TempNameOwner): ProcessIdentity | null {
  const me = selfIdentity()
  if (owner.hostTag !== selfHostTag()) return null
  // Tags are one-way, so turn each back into a value that compares the same way:
  // our real boot id if the tags match, else something that can't equal it.
  const myBoot = readBootId()
  const bootId = owner.bootTag === 'x' ? null : owner.bootTag === bootTag(myBoot) ? myBoot : `boot-tag:${owner.bootTag}`
  let startTime: string | null = null
  if (owner.startTag !== 'x') {
    const now = readStartTime(owner.pid)
    // Unreadable now: pass a stand-in that judgeOwner will also fail to compare, so it stays alive.
    startTime = now !== null && startTag(now) === owner.startTag ? now : `start-tag:${owner.startTag}`
  }
  return { pid: owner.pid, hostname: me.hostname, startTime, bootId }
}
