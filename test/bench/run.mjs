// `npm run bench`: runs every test/bench/*.bench.mjs in its own process, one after another,
// so one benchmark's garbage and hooks don't skew the next. Figures are printed, never asserted.
import { readdirSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(new URL('.', import.meta.url))
const only = process.argv.slice(2)
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.mjs'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
console.log(`node ${process.version}, ${process.platform}/${process.arch}; figures vary on a shared machine: compare ratios, not absolutes`)
let failed = 0
for (const file of files) {
  console.log(`\n## ${file}`)
  const r = spawnSync(process.execPath, ['--expose-gc', here + file], { stdio: 'inherit' })
  if (r.status !== 0) failed++
}
process.exit(failed ? 1 : 0)
