import { definedOnly } from '../defined-only.js'
import { crypto } from '../builtins.js'
import { ExitguardError, LockCompromisedError, LockHeldError, LockTimeoutError, invalidArgType, invalidArgValue, isThisProcess, systemCode } from '../errors.js'
import { describeOwner } from '../owner/describe.js'
import { selfIdentity } from '../owner/self.js'
import type { LockOwner } from '../owner/identity.js'
import { pgLockId, pgLockOids } from './pg-key.js'
import type { AbortSignalLike } from '../abort-signal-like.js'
import { AsyncGuard } from '../exit/guard.js'
import { writeStderr } from '../internal/stderr.js'

/**
 * The part of a node-postgres `Client` we use. Typed structurally so that
 * exitguard's .d.ts files do not need `@types/pg` in projects without pg.
 *
 * @example
 * const client = new pg.Client(); await client.connect()
 * const lock = await acquirePgLock('job', { client }) // a pg.Client fits PgClientLike
 */
export interface PgClientLike {
  // biome-ignore lint/suspicious/noExplicitAny: pg's Client returns rows: any[]; unknown[] would not accept it
  query(text: string, values?: unknown[]): Promise<{ rows: any[] }>
  on(event: 'error', listener: (err: Error) => void): unknown
  on(event: 'end', listener: () => void): unknown
  // biome-ignore lint/suspicious/noExplicitAny: pg's Client declares its listeners this way
  removeListener(event: 'error' | 'end', listener: (...args: any[]) => void): unknown
  host?: string | undefined
  port?: number | undefined
  database?: string | undefined
  user?: string | undefined
}

/**
 * Options of `acquirePgLock`. Give `connectionString` or `client`; with neither, pg reads the PG* environment.
 *
 * @example
 * const options: PgLockOptions = { connectionString: 'postgres://app@db/app', wait: 30_000, data: { release: 'v42' } }
 */
export interface PgLockOptions<D = unknown> {
  /** e.g. `postgres://app@db.internal:5432/app`; a connection is opened for the lock and closed on release. */
  connectionString?: string | undefined
  /**
   * An already connected, dedicated `pg.Client` (not a `Pool` or a pool's client:
   * a session lock lives on one connection). It is left open on release.
   */
  client?: PgClientLike | undefined
  /** Milliseconds to wait for the lock; 0 (default) fails at once, `Infinity` waits forever. */
  wait?: number | undefined
  /** Aborts the wait; the promise then rejects with `signal.reason`. */
  signal?: AbortSignalLike | undefined
  /** Any JSON value, shown to processes that find the lock held (e.g. a deploy id). */
  data?: D | undefined
  /** Called (never thrown) if the connection is lost while the lock is held: the server has then dropped the lock. */
  onCompromised?: ((err: LockCompromisedError) => void) | undefined
  /** The command shown to processes that find the lock held; defaults to this process's command line. */
  command?: string | undefined
}

/**
 * A lock holder as read from the server: the usual owner fields plus what PostgreSQL knows.
 *
 * @example
 * catch (err) { if (err instanceof LockHeldError) console.error((err.owner as PgLockOwner).backendPid) }
 */
export interface PgLockOwner<D = unknown> extends LockOwner<D> {
  /** The holder's server process (`pg_terminate_backend(backendPid)` ends its session and its lock). */
  backendPid: number
  /** The holder's address as the server sees it, or null (Unix socket, or not visible to our role). */
  clientAddr: string | null
  /** The holder's `application_name`; exitguard sets `exitguard <host> <pid> <command>`. */
  applicationName: string
}

/**
 * A held PostgreSQL session advisory lock. Release it with `release()` or `await using`.
 *
 * @example
 * const lock: PgLock = await acquirePgLock('nightly-report')
 * try { await report() } finally { await lock.release() }
 */
export interface PgLock<D = unknown> extends AsyncDisposable {
  /** The key it was acquired with. */
  readonly key: string | bigint
  /** The 64-bit advisory lock id (see `pgLockId`). */
  readonly lockId: bigint
  /** Who holds it: this process. */
  readonly owner: LockOwner<D>
  /** True once released, or once lost with the connection. */
  readonly released: boolean
  /** Unlocks with `pg_advisory_unlock`, then closes the connection if exitguard opened it. Idempotent. */
  release(): Promise<void>
}

/**
 * What `parsePgLockUrl` returns.
 *
 * @example
 * const { connectionString, key }: PgLockUrl = parsePgLockUrl('postgres://app@db/app?key=jobs')
 */
export interface PgLockUrl {
  /** The URL without its `key` parameter, for `pg`. */
  connectionString: string
  key: string
}

const APP_PREFIX = 'exitguard'
// application_name is cut by the server at NAMEDATALEN-1 bytes.
const APP_NAME_MAX = 63
// pg_stat_activity.query is cut at track_activity_query_size (1024 bytes by default).
const OWNER_QUERY_MAX = 1000
const OWNER_MARK = "SELECT 'exitguard owner' /* "

type PgModule = { Client: new (config: Record<string, unknown>) => OwnedClient }
type OwnedClient = PgClientLike & { connect(): Promise<unknown>; end(): Promise<void>; connection?: { stream?: { ref?(): void; unref?(): void; destroy?(): void } } }

let pgModule: Promise<PgModule> | undefined

/** Loads `pg` on first use, so that projects without it never pay for (or fail on) it. */
function loadPg(): Promise<PgModule> {
  pgModule ??= import('pg').then(
    (mod: PgModule & { default?: PgModule }) => (mod.Client ? mod : mod.default) as PgModule,
    (err: unknown) => {
      pgModule = undefined
      const code = (err as NodeJS.ErrnoException | null)?.code
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
        throw new ExitguardError('ENOPG', 'acquirePgLock needs the "pg" package (node-postgres), an optional peer dependency of exitguard: run `npm install pg`.', { cause: err })
      }
      throw err
    },
  )
  return pgModule
}

/**
 * Takes a PostgreSQL session advisory lock, so that one process across many
 * machines runs a piece of work. The lock lives as long as the database
 * session: exitguard unlocks it on every graceful exit (signals, natural end,
 * `gracefulExit()`), and on `process.exit()`, a crash or SIGKILL the server
 * drops it as soon as the connection closes.
 *
 * Rejects with `LockHeldError` (`ELOCKED`) naming the holder, `LockTimeoutError`
 * (`ETIMEDOUT`) after `wait` ms, or `signal.reason` when aborted; it leaves no
 * lock and no connection behind in every case.
 *
 * @example
 * await using lock = await acquirePgLock('migrations', { connectionString: process.env.DATABASE_URL, wait: 60_000 })
 * await migrate() // one instance at a time, across all hosts
 */
export function acquirePgLock<D = null>(key: string | bigint, options?: PgLockOptions<D>): Promise<PgLock<D>>
export async function acquirePgLock(key: string | bigint, options: PgLockOptions = {}): Promise<PgLock> {
  const lockId = pgLockId(key)
  const opts = validate(options)
  opts.signal?.throwIfAborted()
  const pg = await loadPg()
  const me = selfIdentity()
  const owner: LockOwner = {
    ...me,
    createdAt: '',
    command: opts.command ?? commandLine(),
    data: opts.data ?? null,
    token: crypto().randomUUID(),
  }
  const appName = applicationName(me.hostname, me.pid, owner.command)
  const own = opts.client === undefined
  const config: Record<string, unknown> = {
    application_name: appName,
    // Notices a dead peer on a silent network (cable pulled) long before the OS default of hours.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  }
  if (opts.connectionString !== undefined) config.connectionString = opts.connectionString
  const client = (opts.client as OwnedClient | undefined) ?? new pg.Client(config)
  // An 'error' event without a listener would crash the process; until the lock is held, the
  // failing query rejects too, so this listener only keeps the event quiet.
  const quiet = () => {}
  client.on('error', quiet)
  let connected = !own
  let locked = false
  let previousAppName: string | null = null
  const cleanup = async () => {
    client.removeListener('error', quiet)
    // On a caller's client the session outlives us: a lock taken before a later step failed must go.
    if (locked && !own) await client.query('SELECT pg_advisory_unlock($1::bigint)', [lockId.toString()]).catch(() => {})
    if (own) {
      if (connected) await client.end().catch(() => {})
    } else if (previousAppName !== null) {
      await client.query("SELECT set_config('application_name', $1, false)", [previousAppName]).catch(() => {})
    }
  }
  try {
    if (own) {
      await untilAborted(client.connect(), opts.signal, () => client.end().catch(() => {}))
      connected = true
    }
    const { rows } = await client.query("SELECT pg_backend_pid() AS pid, current_setting('application_name') AS app, current_database() AS db, set_config('application_name', $1, false)", [appName])
    const session = rows[0] as { pid: number; app: string; db: string }
    if (!own) previousAppName = session.app
    const where = lockLabel(key, lockId, client, session.db)
    opts.signal?.throwIfAborted()
    if (!own) {
      // Session locks stack: a second acquire on the same connection would succeed, so refuse it.
      const { classid, objid } = pgLockOids(lockId)
      const mine = await client.query("SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 1 AND granted", [classid, objid])
      if (mine.rows.length > 0) {
        throw new LockHeldError(where, owner, {
          message: `The PostgreSQL advisory lock ${where} is already held on this same connection (session locks stack, so it would not exclude anyone). Release the other PgLock first, or use another connection.`,
        })
      }
    }
    await takeLock({ pg, client, own, cancelConfig: own ? config : configOf(client), lockId, where, backendPid: session.pid, opts })
    locked = true
    owner.createdAt = new Date().toISOString()
    // Leaves the full owner record in pg_stat_activity.query, where other sessions of the
    // same role (or with pg_read_all_stats) read it; application_name is the short fallback.
    await client.query(ownerQuery(owner))
    client.removeListener('error', quiet)
    return new HeldPgLock({ key, lockId, owner, where, client, own, previousAppName, onCompromised: opts.onCompromised })
  } catch (err) {
    await cleanup()
    throw err
  }
}

/** @internal What `takeLock` needs: the session that asks, and how to cancel its wait. */
interface LockRequest {
  pg: PgModule
  client: PgClientLike
  /** True when exitguard opened `client` (a cancel that gets nowhere may then close it). */
  own: boolean
  /** Connection settings for the short connection that cancels the wait. */
  cancelConfig: Record<string, unknown>
  lockId: bigint
  where: string
  /** The server process of `client`, for pg_cancel_backend. */
  backendPid: number
  opts: ValidOptions
}

/** Waits for the lock on the server: pg_try_advisory_lock, or pg_advisory_lock bounded by lock_timeout. */
async function takeLock(request: LockRequest): Promise<void> {
  const { pg, client, own, cancelConfig, lockId, where, backendPid, opts } = request
  const id = lockId.toString()
  if (opts.wait === 0) {
    // The holder may let go between our try and our look at pg_locks: then try again.
    for (let attempt = 0; ; attempt++) {
      const { rows } = await client.query('SELECT pg_try_advisory_lock($1::bigint) AS ok', [id])
      if (rows[0]?.ok === true) return
      const holder = await readHolder(client, lockId)
      if (holder || attempt >= 2) throw new LockHeldError(where, holder ?? unknownOwner(), { message: heldMessage(where, holder) })
    }
  }
  const started = Date.now()
  // set_config(..., true) is local to this one-statement transaction, so a caller's client keeps
  // its own lock_timeout afterwards; the FROM clause runs before the lock call.
  const timeout = opts.wait === Infinity ? '0' : `${Math.max(1, Math.round(opts.wait))}ms`
  const lockQuery = client.query("SELECT pg_advisory_lock($1::bigint) FROM (SELECT set_config('lock_timeout', $2, true)) AS t", [id, timeout])
  const settled = lockQuery.then(
    () => ({ ok: true as const }),
    (error: unknown) => ({ ok: false as const, error }),
  )
  let onAbort: (() => void) | undefined
  const aborted = new Promise<'aborted'>((resolve) => {
    onAbort = () => resolve('aborted')
    opts.signal?.addEventListener('abort', onAbort, { once: true })
  })
  let outcome: Awaited<typeof settled> | 'aborted'
  try {
    outcome = await Promise.race([settled, aborted])
  } finally {
    if (onAbort) opts.signal?.removeEventListener('abort', onAbort)
  }
  if (outcome === 'aborted') {
    // Closing our socket would not stop the server's wait (it does not read the socket while
    // blocked), so the backend could still take the lock later: cancel the statement instead.
    const result = await cancelUntilSettled(pg, cancelConfig, backendPid, settled, own ? client : null)
    if (result.ok) await client.query('SELECT pg_advisory_unlock($1::bigint)', [id])
    throw opts.signal!.reason
  }
  if (outcome.ok) return
  const error = outcome.error as { code?: string }
  if (error?.code === '55P03') {
    const holder = await readHolder(client, lockId)
    throw new LockTimeoutError(where, holder ?? unknownOwner(), Date.now() - started)
  }
  throw outcome.error
}

/** Sends pg_cancel_backend from a short second connection until the lock statement has ended. */
async function cancelUntilSettled<T>(pg: PgModule, config: Record<string, unknown>, backendPid: number, settled: Promise<T>, ownClient: PgClientLike | null): Promise<T> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const canceller = new pg.Client({ ...config, application_name: `${APP_PREFIX}-cancel ${process.pid}` })
    canceller.on('error', () => {})
    try {
      await canceller.connect()
      await canceller.query('SELECT pg_cancel_backend($1)', [backendPid])
    } catch {
      // Could not cancel (e.g. no free connection slot): retry; the lock statement may also end by itself.
    } finally {
      await canceller.end().catch(() => {})
    }
    // The cancel can arrive between statements and be lost: check, and send another if needed.
    const done = await Promise.race([settled.then((r) => ({ r })), sleep(250).then(() => null)])
    if (done) return done.r
  }
  // No cancel got through (e.g. no free connection slot). On a connection of our own, give up
  // on it: the wait ends now, and should the server grant the lock later, it finds the socket
  // closed and ends the session, which drops the lock. A caller's client can only be waited on.
  if (ownClient) (ownClient as OwnedClient).connection?.stream?.destroy?.()
  return settled
}

/** @internal What a won acquire hands to the `HeldPgLock` it makes. */
interface WonPgLock {
  key: string | bigint
  lockId: bigint
  owner: LockOwner
  /** The lock as people read it: `"jobs" (id 42) on db:5432/app`. */
  where: string
  client: OwnedClient
  /** True when exitguard opened the connection (and closes it on release). */
  own: boolean
  /** A caller's client's application_name, restored on release; null for our own connection. */
  previousAppName: string | null
  onCompromised: ((err: LockCompromisedError) => void) | undefined
}

class HeldPgLock extends AsyncGuard implements PgLock {
  readonly key: string | bigint
  readonly lockId: bigint
  readonly owner: LockOwner
  readonly #won: WonPgLock
  #lost = false
  readonly #onError: (err: Error) => void
  readonly #onEnd: () => void

  constructor(won: WonPgLock) {
    super()
    this.#won = won
    this.key = won.key
    this.lockId = won.lockId
    this.owner = won.owner
    const { client } = won
    this.#onError = (err) => this.#lostConnection(`the connection failed (${err.message})`)
    this.#onEnd = () => this.#lostConnection('the connection was closed')
    client.on('error', this.#onError)
    client.on('end', this.#onEnd)
    // A held lock should not keep the process alive, any more than a lock file does: natural
    // end then runs the exit drop, which unlocks. Only for connections we opened.
    if (won.own) client.connection?.stream?.unref?.()
    this.guardAtExit(`release PostgreSQL lock ${won.where}`)
  }

  /** @internal The lock, for errors. */
  protected get path(): string {
    return this.#won.where
  }

  release(): Promise<void> {
    return this.releaseChecked()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.releaseChecked()
  }

  /** process.exit(), a crash: closing the socket now makes the server drop the lock at once. */
  protected abandon(): void {
    if (this.#won.own) this.#won.client.connection?.stream?.destroy?.()
  }

  protected async removeHeld(): Promise<void> {
    const { client, own, where, previousAppName } = this.#won
    client.removeListener('end', this.#onEnd)
    if (this.#lost) {
      client.removeListener('error', this.#onError)
      return
    }
    // Keep a listener: an 'error' event while we close must not crash the process.
    client.removeListener('error', this.#onError)
    const quiet = () => {}
    client.on('error', quiet)
    if (own) client.connection?.stream?.ref?.()
    try {
      const { rows } = await client.query('SELECT pg_advisory_unlock($1::bigint) AS ok', [this.lockId.toString()]).catch((err: unknown) => {
        throw new ExitguardError(
          systemCode(err, 'EIO'),
          `Could not release the PostgreSQL lock ${where}: ${(err as Error)?.message ?? String(err)}. The server drops it when this process's connection closes.`,
          { path: where, cause: err },
        )
      })
      if (rows[0]?.ok !== true) {
        throw new ExitguardError(
          'ECOMPROMISED',
          `The PostgreSQL advisory lock ${where} was no longer held by this session when it was released (something ran pg_advisory_unlock or pg_advisory_unlock_all on it). Another process may have held it meanwhile.`,
          { path: where },
        )
      }
    } finally {
      if (own) {
        await client.end().catch(() => {})
      } else if (previousAppName !== null) {
        await client.query("SELECT set_config('application_name', $1, false)", [previousAppName]).catch(() => {})
      }
      client.removeListener('error', quiet)
    }
  }

  /** An event handler: it must never throw. */
  #lostConnection(cause: string): void {
    if (this.released || this.#lost) return
    const { client, where, onCompromised } = this.#won
    this.#lost = true
    this.settle()
    client.removeListener('end', this.#onEnd)
    // Leave #onError attached: more 'error' events may follow on a broken client.
    const err = new LockCompromisedError(where, `${cause}. PostgreSQL has RELEASED the advisory lock with the session, and any other process can take it now`)
    if (onCompromised) {
      try {
        onCompromised(err)
      } catch (thrown) {
        writeStderr(`exitguard: onCompromised threw: ${(thrown as Error)?.stack ?? String(thrown)}`)
      }
    } else {
      writeStderr(`exitguard: ${err.message}`)
    }
    if (this.#won.own) client.end().catch(() => {})
  }
}

/** Who holds the advisory lock, from pg_locks joined with pg_stat_activity; null if nobody now. */
async function readHolder(client: PgClientLike, lockId: bigint): Promise<PgLockOwner | null> {
  const { classid, objid } = pgLockOids(lockId)
  const { rows } = await client.query(
    `SELECT l.pid, a.application_name, a.client_addr::text AS client_addr, a.client_hostname,
            a.backend_start, a.state_change, a.query
       FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1 AND l.granted
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      LIMIT 1`,
    [classid, objid],
  )
  const row = rows[0] as
    | { pid: number; application_name: string | null; client_addr: string | null; client_hostname: string | null; backend_start: Date | null; state_change: Date | null; query: string | null }
    | undefined
  if (!row) return null
  const appName = row.application_name ?? ''
  const clientAddr = row.client_addr ? row.client_addr.replace(/\/(32|128)$/, '') : null
  const base: PgLockOwner = {
    pid: row.pid,
    hostname: row.client_hostname ?? clientAddr ?? 'the database host (Unix socket)',
    startTime: null,
    bootId: null,
    // state_change of an idle holder is when its last statement ended; backend_start when it connected.
    createdAt: (row.state_change ?? row.backend_start)?.toISOString() ?? '',
    command: appName ? `application_name "${appName}"` : '',
    data: null,
    token: `backend:${row.pid}`,
    backendPid: row.pid,
    clientAddr,
    applicationName: appName,
  }
  const short = /^exitguard (\S+) (\d+)(?: (.*))?$/.exec(appName)
  if (short) {
    base.hostname = short[1]!
    base.pid = Number(short[2])
    base.command = short[3] ?? ''
  }
  // The full record, when our role may read the holder's last statement.
  if (row.query?.startsWith(OWNER_MARK)) {
    try {
      const full = JSON.parse(row.query.slice(OWNER_MARK.length, row.query.lastIndexOf(' */'))) as Partial<LockOwner>
      return { ...base, ...full, backendPid: row.pid, clientAddr, applicationName: appName }
    } catch {
      // Cut at track_activity_query_size: keep the short form.
    }
  }
  return base
}

function unknownOwner(): PgLockOwner {
  return {
    pid: 0,
    hostname: 'unknown',
    startTime: null,
    bootId: null,
    createdAt: '',
    command: '(released while we looked)',
    data: null,
    token: '',
    backendPid: 0,
    clientAddr: null,
    applicationName: '',
  }
}

function heldMessage(where: string, holder: PgLockOwner | null): string {
  if (!holder) return `The PostgreSQL advisory lock ${where} is held, but its holder let go before we could see who it was. Try again.`
  const from = holder.clientAddr ? ` from ${holder.clientAddr}` : ''
  const data = holder.data !== null && holder.data !== undefined ? ` Its data: ${JSON.stringify(holder.data)}.` : ''
  if (isThisProcess(holder)) {
    return `The PostgreSQL advisory lock ${where} is held by another connection of this process (another PgLock, thread or copy of exitguard; server backend ${holder.backendPid}).${data} Release that PgLock first.`
  }
  return (
    `The PostgreSQL advisory lock ${where} is held by ${describeOwner(holder)} (server backend ${holder.backendPid}${from}).${data} ` +
    `Wait for it (the "wait" option), or stop that process: the server drops the lock as soon as its connection closes. ` +
    `To end its session from SQL: SELECT pg_terminate_backend(${holder.backendPid});`
  )
}

/** "exitguard web-1 4242 node server.js", cut to 63 bytes of printable ASCII. */
function applicationName(hostname: string, pid: number, command: string): string {
  const ascii = (s: string) => s.replace(/[^\x20-\x7e]/g, '?')
  const host = ascii(hostname).replace(/ /g, '_').slice(0, 24)
  return `${APP_PREFIX} ${host} ${pid} ${ascii(command)}`.slice(0, APP_NAME_MAX).trimEnd()
}

function ownerQuery(owner: LockOwner): string {
  const record = { ...owner, command: owner.command.slice(0, 200) }
  let json = JSON.stringify(record)
  if (json.length > OWNER_QUERY_MAX) json = JSON.stringify({ ...record, data: '(too large to show)' })
  // '/' only occurs inside JSON strings, where '\/' means the same: no "*/" or "/*" can end or nest the comment.
  return `${OWNER_MARK}${json.replace(/\//g, '\\/')} */`
}

function commandLine(): string {
  const args = process.argv.slice(1).map((a, i) => (i === 0 ? (a.split('/').pop() ?? a) : a))
  return ['node', ...args].join(' ').slice(0, 200)
}

function lockLabel(key: string | bigint, lockId: bigint, client: PgClientLike, db: string): string {
  const host = client.host ? `${client.host}${client.port ? `:${client.port}` : ''}` : 'localhost'
  const name = typeof key === 'bigint' ? `id ${lockId}` : `"${key}" (id ${lockId})`
  return `${name} on ${host}/${db}`
}

function configOf(client: PgClientLike): Record<string, unknown> {
  const c = client as PgClientLike & { password?: unknown; ssl?: unknown; connectionParameters?: Record<string, unknown> }
  return { host: c.host, port: c.port, user: c.user, database: c.database, password: c.password, ssl: c.ssl }
}

interface ValidOptions {
  connectionString: string | undefined
  client: PgClientLike | undefined
  wait: number
  signal: AbortSignal | undefined
  data: unknown
  onCompromised: ((err: LockCompromisedError) => void) | undefined
  command: string | undefined
}

function validate(options: PgLockOptions): ValidOptions {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options)
  // Spread without the undefined keys: every option documents undefined as its default.
  const o = { wait: 0, ...definedOnly(options) }
  if (o.connectionString !== undefined && (typeof o.connectionString !== 'string' || o.connectionString === '')) {
    throw invalidArgType('connectionString', 'a non-empty string', o.connectionString)
  }
  if (o.client !== undefined) {
    if (o.connectionString !== undefined) throw invalidArgValue('client', o.client, 'cannot be given with "connectionString": pass one or the other')
    const c = o.client as unknown as Record<string, unknown> | null
    if (c === null || typeof c !== 'object' || typeof c.query !== 'function') throw invalidArgType('client', 'a connected pg.Client', c)
    if ('totalCount' in c || 'idleCount' in c || c.constructor?.name === 'Pool' || c.constructor?.name === 'BoundPool') {
      throw invalidArgValue('client', c, 'must be a dedicated pg.Client, not a pg.Pool: a session advisory lock belongs to one connection, and a pool runs each query on whichever connection is free')
    }
    if (typeof c.release === 'function') {
      throw invalidArgValue('client', c, "must be a dedicated pg.Client, not a pool's client: once released to the pool, the connection would keep the lock for its next user")
    }
  }
  if (typeof o.wait !== 'number' || Number.isNaN(o.wait) || o.wait < 0 || (o.wait > 2 ** 31 - 1 && o.wait !== Infinity)) {
    throw invalidArgValue('wait', o.wait, 'must be a number of milliseconds from 0 to 2147483647, or Infinity')
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw invalidArgType('signal', 'an AbortSignal', o.signal)
  if (o.onCompromised !== undefined && typeof o.onCompromised !== 'function') throw invalidArgType('onCompromised', 'a function', o.onCompromised)
  if (o.command !== undefined && typeof o.command !== 'string') throw invalidArgType('command', 'a string', o.command)
  if (o.data !== undefined) {
    try {
      JSON.stringify(o.data)
    } catch (err) {
      throw invalidArgValue('data', o.data, `must be a JSON value (${(err as Error).message})`)
    }
  }
  return { connectionString: o.connectionString, client: o.client, wait: o.wait, signal: o.signal, data: o.data, onCompromised: o.onCompromised, command: o.command }
}

/**
 * Splits `postgres://USER@HOST:PORT/DB?key=NAME` into the connection string
 * (without `key`) and the lock key, for `acquirePgLock`. Passwords are best
 * left out of the URL (PGPASSWORD or ~/.pgpass, which pg reads); errors never
 * print one.
 *
 * @example
 * const { connectionString, key } = parsePgLockUrl('postgres://app@db:5432/app?key=nightly-report')
 * await using lock = await acquirePgLock(key, { connectionString })
 */
export function parsePgLockUrl(url: string): PgLockUrl {
  if (typeof url !== 'string') throw invalidArgType('url', 'a string', url)
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    // Never echo the URL: a password in it can hide where no pattern finds it.
    throw new ExitguardError('ERR_INVALID_ARG_VALUE', 'The "url" argument must be a postgres:// URL (postgres://USER@HOST:PORT/DB?key=NAME); it does not parse as a URL.')
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new ExitguardError('ERR_INVALID_ARG_VALUE', `The "url" argument must start with postgres:// or postgresql://. Received a ${parsed.protocol} URL for host ${JSON.stringify(parsed.host)}`)
  }
  const keys = parsed.searchParams.getAll('key')
  if (keys.length !== 1 || !keys[0]) {
    throw new ExitguardError(
      'ERR_INVALID_ARG_VALUE',
      `The "url" argument must have exactly one non-empty key parameter (?key=NAME), the lock's name. Received a URL for ${parsed.host}${parsed.pathname} with ${keys.length} key parameters`,
    )
  }
  parsed.searchParams.delete('key')
  return { connectionString: parsed.toString(), key: keys[0] }
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined, onAbort: () => void): Promise<T> {
  if (!signal) return promise
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort()
      reject(signal.reason)
    }
    signal.addEventListener('abort', abort, { once: true })
    promise.then(
      (v) => {
        signal.removeEventListener('abort', abort)
        resolve(v)
      },
      (e: unknown) => {
        signal.removeEventListener('abort', abort)
        reject(e)
      },
    )
  })
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
