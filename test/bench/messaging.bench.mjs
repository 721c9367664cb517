// Messaging: round trip to the lock holder (a child process), sequential, against the cost
// of reading the lock file alone; then 1,000 concurrent senders, the holder's RSS before and after.
import { mkdtempSync, rmSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { messageHolder, readPidLock } from '../../dist/esm/index.js'

const dir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'exitguard-bench-'))
const path = join(dir, 'bench.pid')
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const p95 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))]
const ms = (x) => x.toFixed(3)

const holder = spawn(process.execPath, [new URL('./messaging-holder.mjs', import.meta.url).pathname, path], { stdio: ['ignore', 'pipe', 'inherit'] })
await new Promise((resolve, reject) => {
  holder.stdout.setEncoding('utf8').on('data', (chunk) => chunk.includes('ready') && resolve())
  holder.on('exit', () => reject(new Error('the holder ended early')))
})
try {
  // 1. Sequential round trips: one connection each, reading the lock file first.
  const rounds = { messageHolder: [], 'readPidLock alone': [] }
  for (let i = 0; i < 200; i++) await messageHolder(path, i) // warm up
  for (let i = 0; i < 2000; i++) {
    let t = performance.now()
    await messageHolder(path, { i })
    rounds.messageHolder.push(performance.now() - t)
    t = performance.now()
    readPidLock(path)
    rounds['readPidLock alone'].push(performance.now() - t)
  }
  console.log('sequential round trips to a holder process (2000, after 200 warm-up):')
  for (const [name, xs] of Object.entries(rounds)) console.log(`  ${name.padEnd(20)} median ${ms(median(xs))} ms, p95 ${ms(p95(xs))} ms`)

  // 2. 1,000 senders at once (connections from this process: 1,000 Node processes would take ~40 GB).
  const { rss: before } = await messageHolder(path, { rss: true })
  for (const n of [1000, 1000, 1000]) {
    const t = performance.now()
    const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => messageHolder(path, { i }, { timeout: 60_000 })))
    const answered = results.filter((r, i) => r.status === 'fulfilled' && r.value.i === i).length
    const failed = results.filter((r) => r.status === 'rejected').map((r) => r.reason.code)
    console.log(`${n} concurrent senders: ${answered} answered correctly in ${Math.round(performance.now() - t)} ms${failed.length ? `; failed: ${[...new Set(failed)].join(', ')}` : ''}`)
  }
  const { rss: after } = await messageHolder(path, { rss: true })
  console.log(`holder RSS: ${(before / 2 ** 20).toFixed(1)} MiB before, ${(after / 2 ** 20).toFixed(1)} MiB after 3 x 1000 concurrent senders`)
} finally {
  holder.kill('SIGTERM')
  await new Promise((resolve) => holder.on('close', resolve))
  rmSync(dir, { recursive: true, force: true })
}
