// Child of messaging.bench.mjs. argv: <lock path>. Holds the lock with onMessage: replies
// {rss} to {rss: true}, else echoes the message. Prints "ready"; ends on SIGTERM.
import { acquirePidLock } from '../../dist/esm/index.js'

const [path] = process.argv.slice(2)
await acquirePidLock(path, { onMessage: (m) => (m?.rss ? { rss: process.memoryUsage().rss } : m) })
setInterval(() => {}, 1 << 30)
process.stdout.write('ready\n')
