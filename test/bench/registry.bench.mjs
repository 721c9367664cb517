// Exit registry: register N handlers, then unregister them in random order.
// exitguard vs signal-exit v4 and exit-hook, in the same run. Linear means
// t(1e5) / t(1e3) / 100 close to 1.0.
import { onExit as exitguardOnExit } from '../../dist/esm/index.js'
import { onExit as signalExitOnExit } from 'signal-exit'
import exitHook from 'exit-hook'

const peers = {
  exitguard: (fn) => {
    const registration = exitguardOnExit(fn)
    return () => registration.unregister()
  },
  'signal-exit': (fn) => signalExitOnExit(fn),
  'exit-hook': (fn) => exitHook(fn),
}

function shuffled(n) {
  const order = Array.from({ length: n }, (_, i) => i)
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  return order
}

function run(register, n) {
  const order = shuffled(n)
  const handlers = Array.from({ length: n }, (_, i) => () => i)
  globalThis.gc?.()
  const start = performance.now()
  const removers = handlers.map((fn) => register(fn))
  for (const i of order) removers[i]()
  return performance.now() - start
}

const sizes = [1e3, 1e4, 1e5]
const results = {}
for (const [name, register] of Object.entries(peers)) {
  run(register, 1e3) // warm up
  results[name] = {}
  for (const n of sizes) {
    const previous = results[name][n / 10]
    // A quadratic peer at 1e5 would take minutes: extrapolate from 1e4 instead of waiting.
    if (previous && previous > 2000) {
      results[name][n] = null
      continue
    }
    results[name][n] = Math.min(run(register, n), run(register, n))
  }
}

const fmt = (ms) => (ms === null ? 'skipped' : `${ms.toFixed(1)} ms`)
console.log('register N handlers + unregister all in random order (best of 2)')
console.log(['library'.padEnd(12), ...sizes.map((n) => `N=${n.toExponential(0)}`.padStart(14)), 'linearity t(1e5)/t(1e3)/100'.padStart(30)].join(''))
for (const [name, row] of Object.entries(results)) {
  const linear = row[1e5] === null ? `>= ${(row[1e4] / row[1e3] / 10).toFixed(1)} (1e4/1e3/10)` : (row[1e5] / row[1e3] / 100).toFixed(2)
  console.log([name.padEnd(12), ...sizes.map((n) => fmt(row[n]).padStart(14)), linear.padStart(30)].join(''))
}
const ours = results.exitguard[1e5]
for (const name of ['signal-exit', 'exit-hook']) {
  const theirs = results[name][1e5]
  console.log(`at N=1e5: ${name} / exitguard = ${theirs === null ? 'not measured (over 2 s at 1e4)' : (theirs / ours).toFixed(1) + 'x'}`)
}
process.exit(0) // exit-hook and signal-exit hold a handler each otherwise unused; skip running them
