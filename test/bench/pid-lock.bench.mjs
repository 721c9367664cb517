// PID lock: uncontended acquire+release against proper-lockfile and the bare floor;
// time from kill -9 of a holder to the next holder; hand-off time to a waiting process.
import { closeSync, linkSync, mkdtempSync, openSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import lockfile from 'proper-lockfile'
import { acquirePidLockSync } from '../../dist/esm/index.js'

const dir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'exitguard-bench-'))
const path = join(dir, 'bench.pid')
const child = new URL('./pid-lock-child.mjs', import.meta.url).pathname
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const p95 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))]

// 1. Uncontended acquire + release, ops/s. Rounds alternate so machine noise hits them all alike.
const contenders = {
  exitguard: () => acquirePidLockSync(path).release(),
  'proper-lockfile': () => {
    lockfile.lockSync(path, { realpath: false })
    lockfile.unlockSync(path, { realpath: false })
  },
  "floor (open 'wx' + write PID + close + unlink)": () => {
    const fd = openSync(path, 'wx')
    writeSync(fd, `${process.pid}\n`)
    closeSync(fd)
    unlinkSync(path)
  },
  // What a record that is never seen half-written costs at the least: it is written under a
  // private name and linked into place (exitguard's protocol without its checks).
  'atomic floor (temp + write + link + 2 unlink + close)': () => {
    const temp = join(dir, `.bench.pid.${process.pid}.new`)
    const fd = openSync(temp, 'wx')
    writeSync(fd, `${process.pid}\n`)
    linkSync(temp, path)
    unlinkSync(temp)
    unlinkSync(path)
    closeSync(fd)
  },
}
const opsPerSecond = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]))
for (let round = 0; round < 12; round++) {
  for (const [name, fn] of Object.entries(contenders)) {
    for (let i = 0; i < 500; i++) fn()
    const start = performance.now()
    let n = 0
    while (performance.now() - start < 200) {
      fn()
      n++
    }
    opsPerSecond[name].push((n * 1000) / (performance.now() - start))
  }
}
// Best round: on a shared machine, noise only ever slows a round down.
const best = (xs) => Math.max(...xs)
const ours = opsPerSecond.exitguard
console.log(`uncontended acquire + release in ${dir} (best of 12 alternating rounds of 200 ms; median in brackets):`)
for (const [name, xs] of Object.entries(opsPerSecond)) {
  console.log(
    `  ${name.padEnd(54)} ${Math.round(best(xs)).toString().padStart(7)} ops/s (${Math.round(median(xs))})   exitguard / this = ${(best(ours) / best(xs)).toFixed(2)} (${(median(ours) / median(xs)).toFixed(2)})`,
  )
}

function start(lib, role) {
  const proc = spawn(process.execPath, [child, lib, role, path], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = []
  const waiters = []
  let buffer = ''
  proc.stdout.setEncoding('utf8').on('data', (chunk) => {
    buffer += chunk
    for (let i = buffer.indexOf('\n'); i !== -1; i = buffer.indexOf('\n')) {
      const line = buffer.slice(0, i)
      buffer = buffer.slice(i + 1)
      lines.push(line)
      for (const w of waiters.splice(0)) w()
    }
  })
  const exited = new Promise((resolve) => proc.on('exit', resolve))
  const line = async (prefix) => {
    for (;;) {
      const found = lines.find((l) => l.startsWith(prefix))
      if (found) return found
      await Promise.race([
        new Promise((r) => waiters.push(r)),
        exited.then(() => {
          throw new Error(`${lib} ${role} exited before "${prefix}"`)
        }),
      ])
    }
  }
  return { proc, line, exited }
}

// 2 and 3: a holder and a waiter in two processes; time from the holder's end to the waiter's acquire.
async function handover(lib, how) {
  for (const leftover of [path, `${path}.lock`, `${path}.readers`, `${path}.slot1`]) rmSync(leftover, { force: true, recursive: true })
  const holder = start(lib, 'hold')
  await holder.line('ready')
  const waiter = start(lib, 'wait')
  await waiter.line('waiting')
  await new Promise((r) => setTimeout(r, 50)) // let the waiter reach its wait
  let from
  if (how === 'kill') {
    from = performance.timeOrigin + performance.now()
    holder.proc.kill('SIGKILL')
  } else {
    holder.proc.kill('SIGUSR2')
    from = Number((await holder.line('released')).split(' ')[1])
  }
  const to = Number((await waiter.line('acquired')).split(' ')[1])
  await Promise.all([holder.exited, waiter.exited])
  return to - from
}

const runs = { kill: 15, release: 25 }
for (const how of ['kill', 'release']) {
  console.log(how === 'kill' ? '\nkill -9 of the holder -> a waiting process holds the lock:' : '\nrelease by the holder -> a waiting process holds the lock (hand-off):')
  const results = {}
  for (const lib of ['exitguard', 'proper-lockfile']) {
    const n = lib === 'proper-lockfile' && how === 'kill' ? 3 : runs[how]
    const times = []
    for (let i = 0; i < n; i++) times.push(await handover(lib, how))
    results[lib] = times
    console.log(`  ${lib.padEnd(16)} median ${median(times).toFixed(1).padStart(7)} ms   p95 ${p95(times).toFixed(1).padStart(7)} ms   (n=${n})`)
  }
  console.log(`  proper-lockfile / exitguard = ${(median(results['proper-lockfile']) / median(results.exitguard)).toFixed(1)}x`)
}

// Shared and slot waits: the same hand-off, in the other modes (issue 22: as prompt as exclusive).
console.log('\nrelease -> a waiting process holds it, by mode (n=25 each):')
const byMode = {}
for (const lib of ['exitguard', 'exitguard-shared', 'exitguard-behind-shared', 'exitguard-slot']) {
  const times = []
  for (let i = 0; i < 25; i++) times.push(await handover(lib, 'release'))
  byMode[lib] = median(times)
  const label = {
    exitguard: 'exclusive behind exclusive',
    'exitguard-shared': 'shared behind exclusive',
    'exitguard-behind-shared': 'exclusive behind shared',
    'exitguard-slot': 'slot behind slot (slots: 1)',
  }[lib]
  console.log(
    `  ${label.padEnd(30)} median ${median(times).toFixed(1).padStart(6)} ms   p95 ${p95(times).toFixed(1).padStart(6)} ms   this / exclusive = ${(median(times) / byMode.exitguard).toFixed(2)}`,
  )
}

// A fresh process finding a stale lock: how long its acquire call takes (the takeover itself).
writeFileSync(path, `999999999\n`)
const t0 = performance.now()
acquirePidLockSync(path).release()
console.log(`\ntakeover of a stale lock inside acquirePidLockSync: ${(performance.now() - t0).toFixed(2)} ms`)
rmSync(dir, { recursive: true, force: true })
