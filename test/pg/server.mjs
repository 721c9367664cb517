// A throw-away PostgreSQL cluster for the pg tests and the pg bench: a temp
// directory, a free loopback port, trust auth, no fsync. Installs PostgreSQL
// from Debian packages when it is missing and we are root. Plain ESM so both
// vitest's globalSetup and `node test/bench/pg.bench.mjs` can use it.
//
//   node test/pg/server.mjs            starts one, prints the env lines, stops it on Ctrl-C
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const isRoot = process.getuid?.() === 0

/** The directory holding initdb/pg_ctl/postgres, or null. */
export function findPgBin() {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir
  }
  // Debian keeps them off PATH, one directory per major version: take the newest.
  const base = '/usr/lib/postgresql'
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a))
    if (versions[0]) return join(base, versions[0], 'bin')
  }
  return null
}

function install(log) {
  if (!isRoot || !existsSync('/usr/bin/apt-get')) return 'PostgreSQL is not installed, and apt-get is not usable here (not root or not Debian)'
  log('exitguard pg: installing PostgreSQL from Debian packages (apt-get install postgresql)...')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'postgresql']]) {
    const r = spawnSync('apt-get', args, { env, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 600_000 })
    if (r.status !== 0) return `apt-get ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || '').trim().split('\n').slice(-3).join(' | ')}`
  }
  return null
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/**
 * Starts a cluster. Resolves to { env, stop } (stop is synchronous and safe to
 * call twice), or throws an Error saying why it could not.
 */
export async function startPgServer({ log = (m) => process.stderr.write(m + '\n') } = {}) {
  let bin = findPgBin()
  if (!bin) {
    const why = install(log)
    if (why) throw new Error(why)
    bin = findPgBin()
    if (!bin) throw new Error('apt-get installed postgresql, but no initdb was found under /usr/lib/postgresql/*/bin')
  }
  const dir = mkdtempSync(join(tmpdir(), 'exitguard-pg-'))
  const data = join(dir, 'data')
  const logFile = join(dir, 'server.log')
  // initdb and postgres refuse to run as root: run them as the postgres user (or nobody).
  let asUser = []
  if (isRoot) {
    const user = spawnSync('id', ['-u', 'postgres']).status === 0 ? 'postgres' : 'nobody'
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }))
    const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }))
    chownSync(dir, uid, gid)
    chmodSync(dir, 0o700)
    asUser = ['runuser', '-u', user, '--']
  }
  const run = (cmd, args) => {
    const argv = [...asUser, join(bin, cmd), ...args]
    const r = spawnSync(argv[0], argv.slice(1), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 120_000 })
    if (r.status !== 0) {
      const serverLog = existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n') : ''
      throw new Error(`${cmd} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout).trim()}\n${serverLog}`)
    }
    return r.stdout
  }
  let stopped = false
  const stop = () => {
    if (stopped) return
    stopped = true
    // Immediate: the tests are done, and a smart shutdown would wait for stray sessions.
    spawnSync(asUser[0] ?? join(bin, 'pg_ctl'), [...asUser.slice(1), ...(asUser.length ? [join(bin, 'pg_ctl')] : []), '-D', data, '-m', 'immediate', '-w', 'stop'], {
      stdio: 'ignore',
      timeout: 60_000,
    })
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-sync', '--no-instructions'])
    const port = await freePort()
    const opts = [
      '-c listen_addresses=127.0.0.1',
      `-p ${port}`,
      `-k ${dir}`, // the Unix socket goes in our temp dir, not /var/run/postgresql
      '-c fsync=off -c synchronous_commit=off -c full_page_writes=off',
      '-c max_connections=200',
    ].join(' ')
    run('pg_ctl', ['-D', data, '-l', logFile, '-o', opts, '-w', '-t', '60', 'start'])
    const env = {
      PGHOST: '127.0.0.1',
      PGPORT: String(port),
      PGUSER: 'postgres',
      PGDATABASE: 'postgres',
      EXITGUARD_PG_URL: `postgres://postgres@127.0.0.1:${port}/postgres`,
    }
    return { env, stop, dir }
  } catch (err) {
    stop()
    throw err
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { env, stop } = await startPgServer()
  for (const [k, v] of Object.entries(env)) console.log(`export ${k}=${v}`)
  console.log('# running; Ctrl-C stops and removes it')
  process.on('exit', stop)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => process.exit(0))
  setInterval(() => {}, 1 << 30)
}
