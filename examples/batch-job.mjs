// A batch job that works in a temp dir. Press Ctrl-C at any time: the dir and
// everything in it are gone, and the shell still sees the job die by SIGINT (130).
// Run: npm run build && node examples/batch-job.mjs [--lock PATH] [items]
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { acquirePidLock, onExit, reapOrphans, tempDir } from '../dist/esm/index.js'

const { values, positionals } = parseArgs({ options: { lock: { type: 'string' } }, allowPositionals: true })
// One run at a time when a lock path is given; it is released on every exit path too.
if (values.lock) await acquirePidLock(values.lock)

// A run killed with SIGKILL (or a power cut) could not clean up: do it for it now.
for (const r of reapOrphans({ prefix: 'batch-' })) console.log(`reaped ${r.path} (${r.reason})`)

const items = Number(positionals[0] ?? 20)
let workPath = ''
// Registered before the temp dir, so it runs after the dir's removal (LIFO), on every exit path.
onExit(() => console.log(`\n${workPath} ${existsSync(workPath) ? 'still exists' : 'removed'}`))
const work = await tempDir({ prefix: 'batch-' })
workPath = work.path
console.log(`working in ${work.path}; press Ctrl-C to interrupt`)
console.log('ready')

for (let i = 1; i <= items; i++) {
  const part = join(work.path, `part-${i}`)
  mkdirSync(part)
  writeFileSync(join(part, 'result.json'), JSON.stringify({ item: i, at: new Date().toISOString() }))
  process.stdout.write(`\ritem ${i}/${items}`)
  await sleep(250) // stands in for real work
}
console.log('\nall done; results would be copied out of the temp dir here')
work.remove()
