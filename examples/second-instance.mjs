// Hand your arguments to the instance already running, as an editor's command line does.
//   node examples/second-instance.mjs a.txt b.txt   (first run: it stays, Ctrl-C to stop)
//   node examples/second-instance.mjs c.txt         (another terminal: hands c.txt over, exits 0)
//   node examples/second-instance.mjs --quit        (asks the first one to finish)
// The lock path is $EXAMPLE_LOCK, default <tmp>/exitguard-second-instance.pid.
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { acquirePidLock, messageHolder, LockHeldError } from '../dist/esm/index.js'

const lockPath = process.env.EXAMPLE_LOCK ?? join(tmpdir(), 'exitguard-second-instance.pid')
const args = process.argv.slice(2)
let keepAlive

// The first instance's side: every later run's arguments arrive here; what it returns is the reply.
function onMessage({ argv, cwd }, sender) {
  console.log(`PID ${sender.pid} (in ${cwd}) sent: ${argv.join(' ')}`)
  if (argv.includes('--quit')) clearInterval(keepAlive) // nothing else keeps us alive: we end after this reply
  return { opened: argv.length, by: process.pid }
}

// Take the lock, or hand over to whoever has it. Two runs started at once: one wins, the other
// sends; a holder that ends between our two steps (ENOTHELD) sends us round again.
for (let round = 0; ; round++) {
  try {
    const lock = await acquirePidLock(lockPath, { onMessage })
    console.log(`first instance, PID ${process.pid}; lock ${lock.path}; opened: ${args.join(' ') || '(nothing)'}`)
    console.log('ready')
    keepAlive = setInterval(() => {}, 1 << 30) // the app's work; the listener alone never keeps it alive
    break
  } catch (err) {
    if (!(err instanceof LockHeldError)) throw err
  }
  try {
    const reply = await messageHolder(lockPath, { argv: args, cwd: process.cwd() })
    console.log(`handed ${reply.opened} argument(s) to the running instance, PID ${reply.by}`)
    process.exit(0)
  } catch (err) {
    if (err.code !== 'ENOTHELD' || round >= 5) throw err
  }
}
