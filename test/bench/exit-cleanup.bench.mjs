// Exit cleanup at scale (issue 14): a child creates N live temp files, then ends by one exit path;
// we time from its last line of JavaScript to the parent seeing it exit, and count what it left.
// exitguard vs tmp.setGracefulCleanup(), interleaved. Figures only; `npm run bench -- exit-cleanup`.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(import.meta.url)
const COUNT = Number(process.env.BENCH_FILES ?? 5000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)

if (process.argv[2] === 'child') await child()
else await parent()

async function child() {
  const [, , , lib, dir, count, how] = process.argv
  if (lib === 'tmp') {
    const tmp = await import('tmp')
    tmp.setGracefulCleanup()
    for (let i = 0; i < Number(count); i++) tmp.fileSync({ tmpdir: dir, discardDescriptor: true })
  } else {
    const { tempFileSync } = await import('../../dist/esm/index.js')
    for (let i = 0; i < Number(count); i++) tempFileSync({ dir })
  }
  const stamp = () => process.stdout.write(`end ${performance.timeOrigin + performance.now()}\n`)
  if (how === 'natural')
    stamp() // the program's last line; the event loop then drains
  else if (how === 'exit') {
    stamp()
    process.exit(0)
  } else {
    // Signalled by the parent after this line; keep the loop alive until then.
    setInterval(() => {}, 1000)
    stamp()
  }
}

async function parent() {
  const base = process.env.BENCH_DIR ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir())
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

  function once(lib, how) {
    const dir = realpathSync(mkdtempSync(join(base, 'exitguard-bench-')))
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [here, 'child', lib, dir, String(COUNT), how], { stdio: ['ignore', 'pipe', 'inherit'] })
      let out = ''
      let started = 0
      child.stdout.on('data', (c) => {
        out += c
        const m = /end ([\d.]+)/.exec(out)
        if (m && !started) {
          started = Number(m[1])
          if (how === 'SIGINT' || how === 'SIGTERM') {
            started = performance.timeOrigin + performance.now()
            child.kill(how)
          }
        }
      })
      child.on('error', reject)
      child.on('exit', () => {
        const ended = performance.timeOrigin + performance.now()
        const left = readdirSync(dir).length
        rmSync(dir, { recursive: true, force: true })
        resolve({ ms: ended - started, left })
      })
    })
  }

  console.log(`temp files under ${base}; ${COUNT} live files; median of ${ROUNDS} interleaved runs`)
  console.log('   path      exitguard ms (left)   tmp ms (left)   exitguard/tmp')
  for (const how of ['natural', 'exit', 'SIGINT', 'SIGTERM']) {
    const runs = { exitguard: [], tmp: [] }
    const left = { exitguard: 0, tmp: 0 }
    for (let i = 0; i < ROUNDS; i++) {
      for (const lib of ['exitguard', 'tmp']) {
        const r = await once(lib, how)
        runs[lib].push(r.ms)
        left[lib] = Math.max(left[lib], r.left)
      }
    }
    const e = median(runs.exitguard)
    const t = median(runs.tmp)
    console.log(`   ${how.padEnd(9)} ${e.toFixed(0).padStart(8)} (${String(left.exitguard).padStart(5)})   ${t.toFixed(0).padStart(8)} (${String(left.tmp).padStart(5)})   ${(e / t).toFixed(2)}`)
  }
}
