#!/usr/bin/env node
// The Windows test layer (issue 20): runs test/windows/*.test.mjs with the official Windows
// Node binary under Wine, against dist/ as built on Linux (no Windows native dev dependencies,
// so none of rolldown's or lightningcss's Windows builds, which Wine 8 can't load).
// Usage: node scripts/test-windows.mjs [FILE...]   (npm run build first)
// Env: EXITGUARD_WINE_KEEP=1 keeps the prefix; EXITGUARD_WINE_BUDGET=SECONDS (default 600).
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const project = fileURLToPath(new URL('..', import.meta.url))
const budget = Number(process.env.EXITGUARD_WINE_BUDGET ?? 600) * 1000
const started = Date.now()
if (!existsSync(join(project, 'dist/esm/index.js'))) fail('dist/ is missing: run npm run build first')

const work = mkdtempSync(join(tmpdir(), 'exitguard-wine-'))
const prefix = join(work, 'prefix')
const env = { ...process.env, WINEPREFIX: prefix, WINEDEBUG: '-all', WINEDLLOVERRIDES: 'mscoree,mshtml=' }
let code = 1
try {
  const setup = spawnSync('bash', [join(project, 'scripts/wine/setup.sh'), prefix, project], { stdio: 'inherit', env, timeout: budget })
  if (setup.status !== 0) throw new Error(`scripts/wine/setup.sh failed (${setup.status ?? setup.signal}); see ${work}`)
  const setupMs = Date.now() - started
  const given = process.argv.slice(2)
  const files = given.length
    ? given
    : readdirSync(join(project, 'test/windows'))
        .filter((f) => f.endsWith('.test.mjs'))
        .map((f) => join('test/windows', f))
  const winFiles = files.map((f) => 'P:\\' + relative(project, join(project, f)).replaceAll('/', '\\'))
  const out = join(work, 'stdout.txt')
  const err = join(work, 'stderr.txt')
  const testStart = Date.now()
  // Through sh, so node.exe's stdout and stderr are files (a Unix pipe gives it EBADF).
  const args = ['C:\\node\\node.exe', '--test', '--test-reporter=spec', '--test-timeout=120000', '--test-concurrency=2', ...winFiles]
  const status = await new Promise((resolve) => {
    const child = spawn('sh', ['-c', '"$@" >"$OUT" 2>"$ERR" </dev/null', 'sh', '/usr/lib/wine/wine64', ...args], { cwd: project, env: { ...env, OUT: out, ERR: err }, stdio: 'inherit' })
    const timer = setTimeout(
      () => {
        process.stderr.write(`test-windows: the ${budget / 1000} s budget ran out; stopping Wine\n`)
        spawnSync('/usr/lib/wine/wineserver', ['-k'], { env })
      },
      Math.max(1000, budget - (Date.now() - started)),
    )
    child.on('exit', (c, s) => {
      clearTimeout(timer)
      resolve(c ?? s)
    })
  })
  process.stdout.write(readFileSync(out, 'utf8'))
  process.stderr.write(readFileSync(err, 'utf8'))
  const ctrlC = await ctrlCCheck(join(work, 'ctrl-c'))
  const testMs = Date.now() - testStart
  process.stdout.write(`\ntest-windows: Wine setup ${(setupMs / 1000).toFixed(1)} s, tests ${(testMs / 1000).toFixed(1)} s, exit ${status}\n`)
  code = status === 0 && ctrlC ? 0 : 1
} catch (e) {
  process.stderr.write(`test-windows: ${e.message}\n`)
} finally {
  // Ends this prefix's wineserver and every Windows process still running in it (ours alone).
  spawnSync('/usr/lib/wine/wineserver', ['-k'], { env })
  if (process.env.EXITGUARD_WINE_KEEP) process.stdout.write(`test-windows: prefix kept in ${prefix}\n`)
  else rmSync(work, { recursive: true, force: true })
}
process.exit(code)

/**
 * Ctrl-C, from the Linux side: Wine turns a SIGINT of its process into a CTRL_C_EVENT, which
 * Node reports as SIGINT. The exit handlers must run newest first. (Ctrl-Break and closing the
 * console can't be produced this way: docs/platforms.md.)
 */
async function ctrlCCheck(base) {
  const name = 'Ctrl-C (CTRL_C_EVENT through Wine): exit handlers run newest first'
  const child = spawn('sh', ['-c', 'exec "$@" >"$OUT" 2>"$ERR" </dev/null', 'sh', '/usr/lib/wine/wine64', 'C:\\node\\node.exe', 'P:\\test\\windows\\fixtures\\ctrl-c.mjs'], {
    cwd: project,
    env: { ...env, OUT: `${base}.out`, ERR: `${base}.err` },
    stdio: 'inherit',
  })
  const ended = new Promise((resolve) => child.on('exit', resolve))
  const read = (f) => (existsSync(f) ? readFileSync(f, 'utf8') : '')
  for (let i = 0; i < 600 && !read(`${base}.out`).includes('ready'); i++) await new Promise((r) => setTimeout(r, 100))
  child.kill('SIGINT')
  await ended
  const lines = read(`${base}.out`).trim().split(/\r?\n/)
  const ok = lines.join(',') === 'ready,second,first'
  process.stdout.write(`${ok ? '✔' : '✖'} ${name}${ok ? '' : `: got ${JSON.stringify(lines)} ${read(`${base}.err`)}`}\n`)
  return ok
}

function fail(message) {
  process.stderr.write(`test-windows: ${message}\n`)
  process.exit(1)
}
