// One instance at a time. Run it in two terminals: the second one says who is running and
// exits with 75 (EX_TEMPFAIL). Kill the first with kill -9: the next run takes over at once.
//   node examples/single-instance.mjs [lock path]
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { acquirePidLockSync, LockHeldError } from '../dist/esm/index.js'

const lockPath = process.argv[2] ?? join(tmpdir(), 'exitguard-example.pid')
const port = 8000 + (process.pid % 1000)

let lock
try {
  lock = acquirePidLockSync(lockPath, { data: { port } })
} catch (err) {
  if (!(err instanceof LockHeldError)) throw err
  console.error(err.message)
  console.error(`(the running instance serves on port ${err.owner.data?.port})`)
  process.exit(75)
}
if (lock.tookOverFrom) console.log(`the previous run (PID ${lock.tookOverFrom.pid}) died without cleaning up; took its lock over`)
console.log(`running as PID ${process.pid} on port ${port}; lock ${lock.path}; Ctrl-C to stop`)
console.log('ready')
setInterval(() => {}, 1000) // the work; the lock goes on any exit but kill -9
