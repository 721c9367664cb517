// The keeper's cost beside the same work without it, and what it buys:
// 1. first guard: tempFileSync() in a fresh process, keeper on vs off (the difference is the
//    keeper's start: mkfifo, sh, awk);
// 2. the keeper's RSS (awk, idle with 1e4 entries registered), beside an idle Node process;
// 3. per guard, 1e4 guards: register + unregister only (onExit + a keeper line each way), and
//    a whole temp file guard (tempFileSync + remove), keeper on vs off;
// 4. SIGKILL -> gone: a process holding one temp file (and one holding 1,000 files, a dir
//    tree and a PID lock) is SIGKILLed; time until its keeper has removed everything.
// Figures only; nothing is asserted. `npm run bench -- keeper` runs just this file.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { acquirePidLockSync, configure, onExit, tempFileSync } from '../../dist/esm/index.js'
import { threadKeeper } from '../../dist/esm/keeper/hold.js'

const here = fileURLToPath(import.meta.url)
const [, , role, ...args] = process.argv

if (role === 'first') {
  // Child: the cost of the first guard (tmp is loaded beforehand: that cost is not the keeper's).
  configure({ keeper: false })
  tempFileSync({ dir: args[1] }).remove()
  configure({ keeper: args[0] === 'on' })
  const t = performance.now()
  tempFileSync({ dir: args[1] })
  process.stdout.write(`${performance.now() - t}\n`)
  process.exit(0)
}
if (role === 'hold') {
  // Child: with the keeper, hold args[1] temp files (and, with 'lock', a PID lock) in args[0].
  configure({ keeper: true })
  if (args[2] === 'lock') acquirePidLockSync(join(args[0], 'app.pid'))
  for (let i = 0; i < Number(args[1]); i++) tempFileSync({ dir: args[0] })
  process.stdout.write('ready\n')
  setInterval(() => {}, 1000)
} else {
  await main()
}

async function main() {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir()
  const scratch = () => realpathSync(mkdtempSync(join(base, 'exitguard-bench-')))
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]
  const p95 = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length * 0.95)]
  const ms = (x) => `${x.toFixed(2)} ms`
  console.log(`temp entries under ${base}`)

  // 1. First guard.
  const dir = scratch()
  const first = { on: [], off: [] }
  for (let i = 0; i < 12; i++) {
    for (const mode of ['off', 'on']) {
      const r = spawnSync(process.execPath, [here, 'first', mode, dir], { encoding: 'utf8' })
      first[mode].push(Number(r.stdout))
    }
  }
  console.log(
    `first guard (tempFileSync): without keeper median ${ms(median(first.off))}, with keeper median ${ms(median(first.on))} (+${ms(median(first.on) - median(first.off))}: the keeper's start)`,
  )

  // 3. Per guard, in this process: without the keeper first, then with it.
  const N = 1e4
  const registerOnly = (keeper) => {
    const t = performance.now()
    for (let i = 0; i < N; i++) {
      const reg = onExit(() => {})
      const id = keeper?.hold(`T 1 ${i} /nonexistent/exitguard-bench-${i}`)
      reg.unregister()
      if (id != null) keeper.drop(id)
    }
    return ((performance.now() - t) / N) * 1000
  }
  const guards = () => {
    const t = performance.now()
    const files = []
    for (let i = 0; i < N; i++) files.push(tempFileSync({ dir }))
    for (const f of files) f.remove()
    return ((performance.now() - t) / N) * 1000
  }
  configure({ keeper: false })
  const off = { reg: [], guard: [] }
  const on = { reg: [], guard: [] }
  for (let round = 0; round < 3; round++) {
    off.reg.push(registerOnly(null))
    off.guard.push(guards())
  }
  configure({ keeper: true })
  const keeper = threadKeeper()
  for (let round = 0; round < 3; round++) {
    on.reg.push(registerOnly(keeper))
    on.guard.push(guards())
  }
  const us = (x) => `${x.toFixed(2)} µs`
  console.log(`register + unregister, 1e4: without keeper ${us(median(off.reg))}/guard, with keeper ${us(median(on.reg))}/guard`)
  console.log(`tempFileSync + remove, 1e4: without keeper ${us(median(off.guard))}/guard, with keeper ${us(median(on.guard))}/guard (${(median(on.guard) / median(off.guard)).toFixed(2)}x)`)

  // 2. RSS: the keeper, with 1e4 entries registered now, beside this idle-ish Node process.
  const held = []
  for (let i = 0; i < N; i++) held.push(keeper.hold(`T 1 ${i} /nonexistent/exitguard-bench-held-${i}`))
  await new Promise((r) => setTimeout(r, 200))
  const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1]) / 1024
  const node = spawnSync(process.execPath, ['-e', "console.log(require('fs').readFileSync('/proc/self/status','latin1').match(/VmRSS:\\s+(\\d+)/)[1])"], { encoding: 'utf8' })
  console.log(`keeper RSS: ${rss(keeper.pid).toFixed(1)} MB with 1e4 entries registered (an idle node -e: ${(Number(node.stdout) / 1024).toFixed(1)} MB)`)
  for (const id of held) keeper.drop(id)

  // 4. SIGKILL -> gone.
  const gone = async (count, lock) => {
    const d = scratch()
    const c = spawn(process.execPath, [here, 'hold', d, String(count), lock ? 'lock' : ''], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise((r) => c.stdout.on('data', (b) => String(b).includes('ready') && r()))
    const t = performance.now()
    c.kill('SIGKILL')
    // Polled every ms (a busy loop would take the CPU the keeper needs), bounded.
    for (let i = 0; readdirSync(d).length > 0 && i < 20_000; i++) await new Promise((r) => setTimeout(r, 1))
    const took = performance.now() - t
    rmSync(d, { recursive: true, force: true })
    return took
  }
  const one = []
  for (let i = 0; i < 15; i++) one.push(await gone(1, false))
  console.log(`SIGKILL -> gone, 1 temp file: median ${ms(median(one))}, p95 ${ms(p95(one))} (goal < 50 ms)`)
  const many = []
  for (let i = 0; i < 3; i++) many.push(await gone(1000, true))
  console.log(`SIGKILL -> gone, 1,000 temp files + a PID lock: median ${ms(median(many))} (goal < 1 s)`)
  rmSync(dir, { recursive: true, force: true })
}
