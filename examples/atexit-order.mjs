// The exit registry, the way Python's atexit works: handlers run last-registered-first,
// with the arguments given at registration; one that throws does not stop the others;
// one unregistered early never runs. Try: node examples/atexit-order.mjs [exit|throw|wait]
// and press Ctrl-C during "wait".
import { onExit, unregister, registered } from '../dist/esm/index.js'

const say = (...words) => console.log(...words)

onExit(say, 'closed the database', '(registered first, runs last)')
onExit(say, 'flushed the log')
onExit(() => {
  throw new Error('this handler fails; the others still run')
}).label = 'failing handler'
const early = onExit(say, 'never printed: unregistered before exit')
onExit(async () => {
  await new Promise((resolve) => setTimeout(resolve, 100))
  say('finished async cleanup (awaited on Ctrl-C and at natural end)')
}).label = 'async cleanup'
onExit(say, 'removed the temp files', '(registered last, runs first)')

early.unregister()
unregister(say.bind(null)) // a different function object: removes nothing, like atexit.unregister

console.log(
  'will run at exit:',
  registered()
    .map((h) => h.label)
    .join(', '),
)
const how = process.argv[2]
if (how === 'exit') process.exit(3) // sync handlers run; the async one is reported as skipped; exit code stays 3
if (how === 'throw') throw new Error('crash') // handlers run; exit code 1
if (how === 'wait') {
  console.log('press Ctrl-C: the handlers run, then the process dies by SIGINT (the shell shows 130)')
  setInterval(() => {}, 1000)
}
