// PostgreSQL advisory locks: acquire+release latency, and the time from SIGKILL of a holder
// to the next process holding the lock. Uses EXITGUARD_PG_URL if set, else starts (and
// removes) a throw-away server with test/pg/server.mjs, like the tests.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { acquirePgLock } from '../../dist/esm/index.js'
import { startPgServer } from '../pg/server.mjs'

const holder = fileURLToPath(new URL('../fixtures/pg-holder.mjs', import.meta.url))
let server = null
if (!process.env.EXITGUARD_PG_URL) {
  server = await startPgServer()
  Object.assign(process.env, server.env)
  process.on('exit', server.stop)
}
const url = process.env.EXITGUARD_PG_URL

function stats(name, ms) {
  const s = [...ms].sort((a, b) => a - b)
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2)
  console.log(`${name}: n=${s.length} median ${q(0.5)} ms, p95 ${q(0.95)} ms, max ${s.at(-1).toFixed(2)} ms`)
}

function child(args) {
  const c = spawn(process.execPath, [holder, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env })
  const ready = new Promise((resolve, reject) => {
    let out = ''
    c.stdout.on('data', (d) => {
      out += d
      if (out.split('\n').includes('ready')) resolve()
    })
    c.on('exit', (code, signal) => reject(new Error(`holder ended (${code ?? signal}) before ready`)))
  })
  return { c, ready, exited: new Promise((r) => c.on('exit', r)) }
}

try {
  // Connect + pg_try_advisory_lock + owner record, then unlock + close: what one acquire costs.
  const withConnect = []
  const acquireOnly = []
  const releaseOnly = []
  for (let i = 0; i < 220; i++) {
    const t0 = performance.now()
    const lock = await acquirePgLock('bench', { connectionString: url })
    const t1 = performance.now()
    await lock.release()
    const t2 = performance.now()
    if (i >= 20) {
      withConnect.push(t2 - t0)
      acquireOnly.push(t1 - t0)
      releaseOnly.push(t2 - t1)
    }
  }
  stats('acquire (new connection)', acquireOnly)
  stats('release (unlock + close)', releaseOnly)
  stats('acquire + release', withConnect)

  // On one caller-owned client: the server round trips without the connection setup.
  const pg = (await import('pg')).default
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const onClient = []
  for (let i = 0; i < 220; i++) {
    const t0 = performance.now()
    const lock = await acquirePgLock('bench', { client })
    await lock.release()
    if (i >= 20) onClient.push(performance.now() - t0)
  }
  await client.end()
  stats('acquire + release on an open client', onClient)

  const handover = []
  for (let i = 0; i < 10; i++) {
    const key = `bench-kill-${i}`
    const first = child([key, 'hold'])
    await first.ready
    const next = child([key, 'hold', 'wait'])
    // Let the second one reach its server-side wait.
    await new Promise((r) => setTimeout(r, 300))
    const t0 = performance.now()
    first.c.kill('SIGKILL')
    await next.ready
    handover.push(performance.now() - t0)
    next.c.kill('SIGKILL')
    await Promise.all([first.exited, next.exited])
  }
  stats('SIGKILL of holder -> next process holds', handover)
} finally {
  server?.stop()
}
