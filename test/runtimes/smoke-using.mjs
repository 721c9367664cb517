// `using` as the runtime parses it (no TypeScript in between): Node 24+, Bun, Deno.
import { existsSync } from 'node:fs'
import { acquirePidLockSync, tempFileSync } from 'exitguard'

const [dir] = process.argv.slice(2)
let paths
{
  using lock = acquirePidLockSync(`${dir}/using.pid`)
  using file = tempFileSync({ dir })
  paths = [lock.path, file.path]
}
console.log(paths.some((p) => existsSync(p)) ? `left at the end of the block: ${paths.filter((p) => existsSync(p))}` : 'ok')
