// The CommonJS build through require(), ended by process.exit(): `<runtime> smoke.cjs <dir>`.
const { acquirePidLockSync, onExit, tempFileSync } = require('exitguard')
const { writeFileSync } = require('node:fs')
const { join } = require('node:path')

const dir = process.argv[2]
acquirePidLockSync(join(dir, 'app.pid'))
tempFileSync({ dir })
onExit(() => writeFileSync(join(dir, 'handler-ran'), 'require'))
console.log('ready')
process.exit(4)
