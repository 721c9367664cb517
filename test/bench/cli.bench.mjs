// Start-up overhead of `exitguard run` over running the command bare: median of 10 runs of `true`.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const bin = fileURLToPath(new URL('../../dist/exitguard.cjs', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'exitguard-bench-'))
const lock = join(dir, 'bench.pid')
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]
function time(command, args) {
  const runs = []
  for (let i = 0; i < 11; i++) {
    const t = process.hrtime.bigint()
    const r = spawnSync(command, args, { stdio: 'ignore' })
    if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.status}`)
    if (i > 0) runs.push(Number(process.hrtime.bigint() - t) / 1e6) // the first run warms the caches
  }
  return median(runs)
}
try {
  const bare = time('true', [])
  const node = time(process.execPath, ['-e', ''])
  const wrapped = time(process.execPath, [bin, 'run', '--lock', lock, '--', 'true'])
  const withTmp = time(process.execPath, [bin, 'run', '--lock', lock, '--tmpdir', '--', 'true'])
  console.log(
    `cli: median of 10: true ${bare.toFixed(1)} ms, node -e '' ${node.toFixed(1)} ms, exitguard run -- true ${wrapped.toFixed(1)} ms (+${(wrapped - bare).toFixed(1)} ms), with --tmpdir ${withTmp.toFixed(1)} ms`,
  )
} finally {
  rmSync(dir, { recursive: true, force: true })
}
