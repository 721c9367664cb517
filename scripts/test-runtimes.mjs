#!/usr/bin/env node
// npm run test:runtimes (after npm run build): the packed package under Bun and Deno, and under
// this Node as the reference. Each runtime is an official binary from the npm registry, at the
// version pinned below (bump it on purpose, then update docs/platforms.md). A consumer project
// gets the tarball unpacked into node_modules and its dependencies linked from this clone, as the
// tests do; test/runtimes/ holds the programs. Every case has an expected outcome: works, or a
// known gap that docs/platforms.md describes. Anything else fails the run, a gap that closed too
// (so the docs stay true). `npm run test:runtimes -- bun` runs one (node, bun or deno).
import { execFileSync, spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const work = mkdtempSync(join(tmpdir(), 'exitguard-runtimes-'))
const major = Number(process.versions.node.split('.')[0])

// Known gaps, by case: what the runtime does instead (docs/platforms.md says why).
const runtimes = [
  { name: `Node ${process.version}`, command: [process.execPath], gaps: {}, using: major >= 24 },
  {
    name: 'Bun',
    pkg: '@oven/bun-linux-x64@1.4.5',
    bin: 'bin/bun',
    command: (bin) => [bin],
    gaps: {},
    using: true,
  },
  {
    name: 'Deno',
    pkg: '@deno/linux-x64-glibc@2.9.6',
    bin: 'deno',
    command: (bin) => [bin, 'run', '-A'],
    gaps: {
      throw: 'nothing runs: Deno emits no exit event after an uncaught exception',
      keeper: "no keeper: Deno's spawnSync drops a file descriptor given in stdio, so the keeper reads nothing and exits",
      'cli run': 'the keeper warning on stderr, then the same run without a keeper',
    },
    using: true,
  },
]

function sh(cmd, args, options = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...options })
}

/** Runs `argv` in the project; resolves with how it ended. Bounded: SIGKILLed after 30 s. */
function run(argv, env, { signalAfterReady } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.stdout.setEncoding('utf8').on('data', (d) => {
      stdout += d
      if (signalAfterReady && stdout.split('\n').includes('ready')) {
        child.kill(signalAfterReady)
        signalAfterReady = null
      }
    })
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, pid: child.pid })
    })
  })
}

const left = (dir) =>
  readdirSync(dir)
    .filter((n) => n !== 'handler-ran')
    .sort()
const handler = (dir) => (existsSync(join(dir, 'handler-ran')) ? readFileSync(join(dir, 'handler-ran'), 'utf8') : null)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** The cases: each returns null when it worked, or what went otherwise. */
function cases(rt) {
  let n = 0
  const fresh = () => {
    const dir = join(work, `${rt.name.split(' ')[0]}-${n++}`)
    mkdirSync(dir)
    return dir
  }
  const released = (dir, kind, r, ended) => {
    const problems = []
    if (ended) problems.push(ended)
    if (left(dir).length) problems.push(`left: ${left(dir).join(' ')}`)
    if (handler(dir) !== kind) problems.push('the exit handler did not run')
    if (r.stdout.includes('not refused')) problems.push('a second acquire in the same process was not refused')
    return problems.length ? problems.join('; ') : null
  }
  const exit = (kind, expectCode, signal) => async () => {
    const dir = fresh()
    const r = await run([...rt.argv, 'smoke.mjs', dir, kind], rt.env, { signalAfterReady: signal })
    const how = signal ? r.signal === signal : r.code === expectCode
    return released(dir, kind, r, how ? null : `ended with ${r.code ?? r.signal}, not ${signal ?? expectCode}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`)
  }
  const list = {
    'natural end': exit('natural', 0),
    'process.exit(3)': exit('exit', 3),
    throw: exit('throw', 1),
    SIGTERM: exit('signal', null, 'SIGTERM'),
    require: async () => {
      const dir = fresh()
      const r = await run([...rt.argv, 'smoke.cjs', dir], rt.env)
      return released(dir, 'require', r, r.code === 4 ? null : `ended with ${r.code ?? r.signal}: ${r.stderr.trim()}`)
    },
    keeper: async () => {
      const dir = fresh()
      await run([...rt.argv, 'smoke.mjs', dir, 'keeper'], rt.env, { signalAfterReady: 'SIGKILL' })
      // The keeper releases once it has proof that its owner is dead: poll up to 10 s.
      for (let i = 0; i < 100 && left(dir).length; i++) await sleep(100)
      return left(dir).length ? `left after SIGKILL: ${left(dir).join(' ')}` : null
    },
    'file lock': async () => {
      const r = await run([...rt.argv, 'smoke.mjs', fresh(), 'file-lock'], rt.env)
      return r.stdout.trim() === 'ok' && r.code === 0 ? null : `${r.code}: ${r.stdout.trim()} ${r.stderr.trim()}`
    },
    messaging: async () => {
      const dir = fresh()
      const holder = spawn(rt.argv[0], [...rt.argv.slice(1), 'smoke.mjs', dir, 'holder'], { cwd: project, env: rt.env, stdio: ['ignore', 'pipe', 'inherit'] })
      try {
        for (let i = 0; i < 200 && !existsSync(join(dir, 'holder.pid')); i++) await sleep(50)
        await sleep(200)
        const r = await run([...rt.argv, 'smoke.mjs', dir, 'send'], rt.env)
        return r.stdout.trim() === '{"echo":{"hello":1}}' ? null : `${r.code}: ${r.stdout.trim()} ${r.stderr.trim()}`
      } finally {
        holder.kill('SIGKILL')
      }
    },
    'cli run': async () => {
      const dir = fresh()
      const r = await run([...rt.argv, 'node_modules/exitguard/dist/exitguard.cjs', 'run', '--lock', join(dir, 'run.pid'), '--', 'sh', '-c', 'echo ran; exit 4'], rt.env)
      if (r.code !== 4 || r.stdout !== 'ran\n' || left(dir).length) return `${r.code}: ${r.stdout.trim()}, left: ${left(dir)}`
      return r.stderr === '' ? null : `stderr: ${r.stderr.trim()}`
    },
  }
  if (rt.using) {
    list.using = async () => {
      const r = await run([...rt.argv, 'smoke-using.mjs', fresh()], rt.env)
      return r.stdout.trim() === 'ok' ? null : `${r.code}: ${r.stdout.trim()} ${r.stderr.trim().split('\n')[0]}`
    }
  }
  return list
}

// The consumer project: the packed package unpacked, its dependencies linked from this clone.
const project = join(work, 'project')
mkdirSync(join(project, 'node_modules', 'exitguard'), { recursive: true })
const [packed] = JSON.parse(sh('npm', ['pack', '--json', '--silent', '--pack-destination', work], { cwd: root }))
sh('tar', ['-xzf', join(work, packed.filename), '-C', join(project, 'node_modules', 'exitguard'), '--strip-components=1'])
writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { exitguard: packed.version } }))
for (const name of Object.keys(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).dependencies)) {
  mkdirSync(dirname(join(project, 'node_modules', name)), { recursive: true })
  symlinkSync(join(root, 'node_modules', name), join(project, 'node_modules', name), 'dir')
}
for (const file of ['smoke.mjs', 'smoke-using.mjs', 'smoke.cjs']) cpSync(join(root, 'test', 'runtimes', file), join(project, file))

// Their caches in the work dir, not the home directory; Deno's update check stays off (no network).
const env = { ...process.env, DENO_DIR: join(work, 'deno-dir'), DENO_NO_UPDATE_CHECK: '1', DENO_NO_PROMPT: '1', BUN_INSTALL: join(work, 'bun-home'), NO_COLOR: '1' }
const only = process.argv.slice(2).map((a) => a.toLowerCase())
let expected = 0
let unexpected = 0
let gaps = 0
try {
  for (const rt of runtimes.filter((r) => !only.length || only.includes(r.name.split(' ')[0].toLowerCase()))) {
    if (rt.pkg) {
      const dir = join(work, rt.name)
      mkdirSync(dir)
      const [info] = JSON.parse(sh('npm', ['pack', rt.pkg, '--json', '--silent', '--pack-destination', dir]))
      sh('tar', ['-xzf', join(dir, info.filename), '-C', dir, '--strip-components=1'])
      rt.argv = rt.command(join(dir, rt.bin))
      rt.version = sh(rt.argv[0], ['--version'], { env }).trim().split('\n')[0]
    } else {
      rt.argv = rt.command
      rt.version = process.version
    }
    rt.env = env
    console.log(`\n== ${rt.name} (${rt.version})`)
    for (const [name, check] of Object.entries(cases(rt))) {
      const problem = await check()
      const gap = rt.gaps[name]
      if (!problem && !gap) {
        expected++
        console.log(`  ok       ${name}`)
      } else if (problem && gap) {
        expected++
        gaps++
        console.log(`  gap      ${name}: ${gap}\n           (seen: ${problem})`)
      } else if (problem) {
        unexpected++
        console.log(`  FAILED   ${name}: ${problem}`)
      } else {
        unexpected++
        console.log(`  WORKS    ${name}, listed as a known gap: update docs/platforms.md and this script`)
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
console.log(`\nruntimes: ${expected} cases as expected (${gaps} of them known gaps), ${unexpected} not`)
process.exit(unexpected ? 1 : 0)
