// `npm run demo`: exitguard's main job in half a minute, with real processes.
//   1. one instance at a time: a second one is told who holds the PID lock;
//   2. kill -9 of the holder: the next run takes the stale lock over at once;
//   3. Ctrl-C of a batch job: its temp dir and its lock are gone, and it dies by SIGINT.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(new URL('.', import.meta.url))
const work = mkdtempSync(join(tmpdir(), 'exitguard-demo-'))
const lockPath = join(work, 'demo.pid')

function start(script, args, name) {
  const child = spawn(process.execPath, [join(here, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let markReady
  const ready = new Promise((resolve) => (markReady = resolve))
  const relay = (chunk) => {
    for (const line of String(chunk).split('\n').filter(Boolean)) {
      process.stdout.write(`    [${name}] ${line}\n`)
      if (line === 'ready') markReady()
    }
  }
  child.stdout.on('data', relay)
  child.stderr.on('data', relay)
  const ended = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })))
  return { child, ended, ready }
}
const step = (text) => console.log(`\n${text}`)

step('1. Instance A takes the PID lock; instance B is told who holds it and exits with 75.')
const a = start('single-instance.mjs', [lockPath], 'A')
await a.ready
const b = await start('single-instance.mjs', [lockPath], 'B').ended
console.log(`    B exited with code ${b.code}`)

step('2. A is killed with kill -9 (nothing can run); C finds the stale lock and takes it over at once.')
a.child.kill('SIGKILL')
await a.ended
console.log(`    A left its lock behind: ${existsSync(lockPath)}`)
const c = start('single-instance.mjs', [lockPath], 'C')
await c.ready
c.child.kill('SIGTERM')
const cEnd = await c.ended
console.log(`    C stopped by SIGTERM (signal ${cEnd.signal}); lock file left: ${existsSync(lockPath)}`)

step('3. A batch job works in a temp dir under a PID lock and gets Ctrl-C (SIGINT) half-way.')
const job = start('batch-job.mjs', ['--lock', lockPath], 'job')
await job.ready
job.child.kill('SIGINT')
const jobEnd = await job.ended
console.log(`    the job died by ${jobEnd.signal} (a shell shows 130); lock file left: ${existsSync(lockPath)}`)

rmSync(work, { recursive: true, force: true })
console.log('\nDone. Read examples/*.mjs for the code, and README.md for the API.')
