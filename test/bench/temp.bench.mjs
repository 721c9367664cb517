// Temp dirs at scale, exitguard vs tmp (the package exitguard uses for creation only).
// 1. Create N temp dirs, all alive at once, then remove them in random order:
//    exitguard (linked-list registry) vs tmp.dirSync + removeCallback (array unshift + indexOf/splice).
// 2. Exit time of a child that leaves 10,000 temp files to the exit cleanup:
//    exitguard vs tmp.setGracefulCleanup().
// Figures only; nothing is asserted. `npm run bench -- temp` runs just this file.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as tmp from 'tmp'
import { tempDirSync, tempFileSync } from '../../dist/esm/index.js'

const here = fileURLToPath(import.meta.url)

if (process.argv[2] === 'child') {
  // Child: leave `count` temp files to the exit cleanup, print when we start exiting.
  const [, , , lib, dir, count] = process.argv
  if (lib === 'tmp') tmp.setGracefulCleanup()
  for (let i = 0; i < Number(count); i++) {
    if (lib === 'exitguard') tempFileSync({ dir })
    else tmp.fileSync({ tmpdir: dir, discardDescriptor: true })
  }
  process.stdout.write(`exiting ${performance.timeOrigin + performance.now()}\n`)
  process.exit(0)
}

// On this machine /tmp is on a disk where one mkdir or rmdir costs 120-150 µs, which buries what the
// libraries themselves cost; tmpfs (/dev/shm) shows that. BENCH_DIR=/tmp to measure the disk instead.
const base = process.env.BENCH_DIR ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir())
const scratch = () => realpathSync(mkdtempSync(join(base, 'exitguard-bench-')))
console.log(`temp dirs under ${base}`)

function shuffle(a) {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[a[i], a[j]] = [a[j], a[i]]
  }
  return a
}

const libs = {
  exitguard: (dir) => {
    const d = tempDirSync({ dir })
    return () => d.remove()
  },
  tmp: (dir) => tmp.dirSync({ tmpdir: dir }).removeCallback,
}

function createAllRemoveAll(lib, n) {
  const dir = scratch()
  globalThis.gc?.()
  const t0 = performance.now()
  const removers = []
  for (let i = 0; i < n; i++) removers.push(libs[lib](dir))
  const t1 = performance.now()
  for (const remove of shuffle(removers)) remove()
  const t2 = performance.now()
  const left = readdirSync(dir).length
  rmSync(dir, { recursive: true, force: true })
  if (left) throw new Error(`${lib}: ${left} dirs left`)
  return { total: t2 - t0, create: t1 - t0, remove: t2 - t1 }
}

console.log('1. create N temp dirs (all alive), then remove them in random order')
console.log('   lib        N        total ms   create ms  remove ms  µs/dir')
const results = {}
// Warm-up, so the 1e3 row measures steady state rather than the JIT.
for (const lib of Object.keys(libs)) createAllRemoveAll(lib, 2000)
for (const n of [1e3, 1e4, 1e5]) {
  for (const lib of Object.keys(libs)) {
    const r = createAllRemoveAll(lib, n)
    results[lib] ??= {}
    results[lib][n] = r.total
    console.log(
      `   ${lib.padEnd(10)} ${String(n).padEnd(8)} ${r.total.toFixed(0).padStart(8)} ${r.create.toFixed(0).padStart(10)} ${r.remove.toFixed(0).padStart(10)} ${((r.total * 1000) / n).toFixed(1).padStart(8)}`,
    )
  }
}
for (const lib of Object.keys(libs)) {
  console.log(`   ${lib}: t(1e5)/t(1e3)/100 = ${(results[lib][1e5] / results[lib][1e3] / 100).toFixed(2)}  (1.0 = linear; target <= 1.5)`)
}
for (const n of [1e3, 1e4, 1e5]) {
  console.log(`   exitguard/tmp at ${n}: ${(results.exitguard[n] / results.tmp[n]).toFixed(2)}`)
}

async function exitTime(lib, count) {
  const dir = scratch()
  const child = spawn(process.execPath, [here, 'child', lib, dir, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (c) => (out += c))
  // Both listeners now: 'close' can fire in the same tick as 'exit'.
  const exited = new Promise((resolve) => child.on('exit', () => resolve(performance.timeOrigin + performance.now())))
  const closed = new Promise((resolve) => child.on('close', resolve))
  const ended = await exited
  await closed
  const started = Number(/exiting ([\d.]+)/.exec(out)[1])
  const left = readdirSync(dir).length
  rmSync(dir, { recursive: true, force: true })
  return { ms: ended - started, left }
}

console.log('\n2. exit time of a child that leaves 10,000 temp files to the exit cleanup (median of 3)')
for (const lib of ['exitguard', 'tmp']) {
  for (const count of [0, 10_000]) {
    const runs = []
    let left = 0
    for (let i = 0; i < 3; i++) {
      const r = await exitTime(lib, count)
      runs.push(r.ms)
      left += r.left
    }
    runs.sort((a, b) => a - b)
    console.log(`   ${lib.padEnd(10)} ${String(count).padStart(6)} files: ${runs[1].toFixed(0).padStart(5)} ms from process.exit() to the parent seeing the exit; files left: ${left}`)
  }
}
