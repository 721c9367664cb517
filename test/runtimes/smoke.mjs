// One case of scripts/test-runtimes.mjs, run by Bun, Deno or Node in a project that has the packed
// package in node_modules: `<runtime> smoke.mjs <dir> <case>`. Prints "ready" once its guards are
// made; the driver then checks what is left in <dir> after the process ended the way <case> says.
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { acquireFileLock, acquirePidLockSync, configure, LockHeldError, messageHolder, onExit, tempDirSync, tempFileSync } from 'exitguard'

const [dir, kind] = process.argv.slice(2)
const say = (line) => console.log(line)

if (['natural', 'exit', 'throw', 'signal', 'keeper'].includes(kind)) {
  if (kind === 'keeper') configure({ keeper: true })
  acquirePidLockSync(join(dir, 'app.pid'))
  tempFileSync({ dir })
  writeFileSync(join(tempDirSync({ dir }).path, 'inside'), 'x')
  onExit(() => writeFileSync(join(dir, 'handler-ran'), kind))
  try {
    acquirePidLockSync(join(dir, 'app.pid'))
    say('a second acquire was not refused')
  } catch (err) {
    if (!(err instanceof LockHeldError)) throw err
  }
  say('ready')
  if (kind === 'exit') process.exit(3)
  if (kind === 'throw') throw new Error('thrown on purpose')
  if (kind === 'signal' || kind === 'keeper') setInterval(() => {}, 1000) // until the driver's signal
} else if (kind === 'file-lock') {
  const lock = await acquireFileLock(join(dir, 'shared'))
  const held = existsSync(join(dir, 'shared.lock'))
  await lock.release()
  say(held && !existsSync(join(dir, 'shared.lock')) ? 'ok' : `held: ${held}, left after release: ${existsSync(join(dir, 'shared.lock'))}`)
} else if (kind === 'holder') {
  acquirePidLockSync(join(dir, 'holder.pid'), { onMessage: (message) => ({ echo: message }) })
  say('ready')
  setInterval(() => {}, 1000)
} else if (kind === 'send') {
  say(JSON.stringify(await messageHolder(join(dir, 'holder.pid'), { hello: 1 })))
} else {
  throw new Error(`unknown case ${kind}`)
}
