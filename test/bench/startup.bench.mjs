// Start-up cost (issue 14): what importing exitguard and running `exitguard run` add to a process,
// beside the peers and the floor, measured interleaved in one run so machine noise hits all alike.
// Figures only; nothing is asserted. `npm run bench -- startup` runs just this file.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../', import.meta.url))
const bin = join(root, 'dist/exitguard.cjs')
const require = createRequire(join(root, 'package.json'))
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 21)
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

function timeOnce(command, args) {
  const t = process.hrtime.bigint()
  const r = spawnSync(command, args, { stdio: 'ignore', cwd: root })
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.status ?? r.signal}`)
  return Number(process.hrtime.bigint() - t) / 1e6
}

/** Runs every case once per round, in turn, and returns each case's median. */
function interleaved(cases) {
  const runs = Object.fromEntries(Object.keys(cases).map((k) => [k, []]))
  for (const [command, args] of Object.values(cases)) timeOnce(command, args) // warm the caches
  for (let i = 0; i < ROUNDS; i++) {
    for (const [name, [command, args]] of Object.entries(cases)) runs[name].push(timeOnce(command, args))
  }
  return Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, median(v)]))
}

const node = process.execPath
const requireOf = (id) => [node, ['-e', `require(${JSON.stringify(require.resolve(id))})`]]

console.log(`1. require() cost over bare \`node -e 0\`, median of ${ROUNDS} interleaved runs`)
const imports = interleaved({
  'node -e 0': [node, ['-e', '0']],
  exitguard: requireOf('./dist/cjs/index.js'),
  'proper-lockfile': requireOf('proper-lockfile'),
  tmp: requireOf('tmp'),
  'signal-exit': requireOf('signal-exit'),
  'exit-hook': [node, ['--input-type=module', '-e', `await import(${JSON.stringify(require.resolve('exit-hook'))})`]],
})
const floor = imports['node -e 0']
for (const [name, ms] of Object.entries(imports)) {
  if (name === 'node -e 0') continue
  console.log(`   ${name.padEnd(16)} +${(ms - floor).toFixed(1).padStart(5)} ms`)
}
const own = imports.exitguard - floor
const pl = imports['proper-lockfile'] - floor
console.log(`   exitguard / proper-lockfile import = ${(own / pl).toFixed(2)} (goal <= 0.5); node -e 0 itself ${floor.toFixed(1)} ms`)

// Most programs import it as ESM. The floor imports an empty ES module: loading the first file
// through Node's ESM loader costs ~14 ms here whatever the file, and a program that imports
// exitguard has already paid that for its own files.
const emptyDir = mkdtempSync(join(tmpdir(), 'exitguard-bench-'))
const empty = join(emptyDir, 'empty.mjs')
writeFileSync(empty, '')
console.log(`\n1b. import() cost over importing an empty ES module, median of ${ROUNDS} interleaved runs`)
const importOf = (id) => [node, ['--input-type=module', '-e', `await import(${JSON.stringify(empty)}); await import(${JSON.stringify(id)})`]]
const esm = interleaved({
  floor: importOf(empty),
  exitguard: importOf(join(root, 'dist/esm/index.js')),
  'proper-lockfile': importOf('proper-lockfile'),
  tmp: importOf('tmp'),
  'signal-exit': importOf('signal-exit'),
  'exit-hook': importOf('exit-hook'),
})
for (const [name, ms] of Object.entries(esm)) {
  if (name !== 'floor') console.log(`   ${name.padEnd(16)} +${(ms - esm.floor).toFixed(1).padStart(5)} ms`)
}
console.log(`   exitguard / proper-lockfile import = ${((esm.exitguard - esm.floor) / (esm['proper-lockfile'] - esm.floor)).toFixed(2)} (goal <= 0.5)`)

const dir = mkdtempSync(join(tmpdir(), 'exitguard-bench-'))
try {
  const lock = join(dir, 'bench.pid')
  const flock = spawnSync('flock', ['--version'], { stdio: 'ignore' }).status === 0
  console.log(`\n2. \`exitguard run --lock X -- true\` over bare \`node -e 0\`, median of ${ROUNDS} interleaved runs`)
  const cases = {
    true: ['true', []],
    'node -e 0': [node, ['-e', '0']],
    'exitguard run': [node, [bin, 'run', '--lock', lock, '--', 'true']],
    // What the keeper's start costs of it.
    '--no-keeper': [node, [bin, 'run', '--lock', lock, '--no-keeper', '--', 'true']],
  }
  if (flock) cases['flock X true'] = ['flock', [join(dir, 'flock.lock'), 'true']]
  const cli = interleaved(cases)
  console.log(
    `   true ${cli.true.toFixed(1)} ms, node -e 0 ${cli['node -e 0'].toFixed(1)} ms, exitguard run ${cli['exitguard run'].toFixed(1)} ms` +
      (flock ? `, flock X true ${cli['flock X true'].toFixed(1)} ms` : ' (no flock here)'),
  )
  console.log(`   exitguard run --no-keeper over node -e 0: +${(cli['--no-keeper'] - cli['node -e 0']).toFixed(1)} ms`)
  console.log(
    `   exitguard run over node -e 0: +${(cli['exitguard run'] - cli['node -e 0']).toFixed(1)} ms (goal <= +25 ms)` +
      (flock ? `; flock over true: +${(cli['flock X true'] - cli.true).toFixed(1)} ms` : ''),
  )
} finally {
  rmSync(dir, { recursive: true, force: true })
  rmSync(emptyDir, { recursive: true, force: true })
}
