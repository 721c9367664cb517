// Child of pid-lock.bench.mjs. argv: <lib> <role> <lock path>
//   lib: proper-lockfile, exitguard (exclusive both), exitguard-shared (a shared waiter behind an
//   exclusive holder), exitguard-behind-shared (the reverse), exitguard-slot (slots: 1 both)
//   hold:   take the lock, print "ready", release it on SIGUSR2 (printing the time), or hold until killed
//   wait:   print "waiting", wait for the lock, print the time it was acquired
import lockfile from 'proper-lockfile'
import { acquirePidLock } from '../../dist/esm/index.js'

const [lib, role, path] = process.argv.slice(2)
const now = () => performance.timeOrigin + performance.now()
const print = (line) => process.stdout.write(line + '\n')
// proper-lockfile at its fastest safe settings: 2 s stale (its minimum), retries every 10 ms.
const plOptions = { stale: 2000, update: 1000, realpath: false }
const modes = {
  exitguard: [{}, {}],
  'exitguard-shared': [{}, { shared: true }],
  'exitguard-behind-shared': [{ shared: true }, {}],
  'exitguard-slot': [{ slots: 1 }, { slots: 1 }],
}
const [holdOptions, waitOptions] = modes[lib] ?? [{}, {}]

if (role === 'hold') {
  let release
  if (lib !== 'proper-lockfile') {
    const lock = await acquirePidLock(path, holdOptions)
    release = () => lock.release()
  } else {
    release = await lockfile.lock(path, plOptions)
  }
  process.on('SIGUSR2', async () => {
    print(`released ${now()}`)
    await release()
    process.exit(0)
  })
  setInterval(() => {}, 1000)
  print('ready')
} else {
  print('waiting')
  if (lib !== 'proper-lockfile') {
    const lock = await acquirePidLock(path, { ...waitOptions, wait: 60_000 })
    print(`acquired ${now()}`)
    lock.release()
  } else {
    const release = await lockfile.lock(path, { ...plOptions, retries: { retries: 6000, minTimeout: 10, maxTimeout: 10, factor: 1 } })
    print(`acquired ${now()}`)
    await release()
  }
}
