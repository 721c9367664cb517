#!/usr/bin/env node
// The only place that decides how the process ends (cli.ts never exits).
import { cli } from './cli.js'

const outcome = await cli(process.argv.slice(2))
if (outcome.signal) {
  // Die as the command died, so a shell or supervisor sees the real signal (bash: 130 for SIGINT).
  // exitguard's own hook, if loaded, finds nothing left to release and re-raises in turn.
  process.kill(process.pid, outcome.signal)
}
// If the signal did not end us (it is blocked or ignored), fall back to 128 + its number.
process.exitCode = outcome.code
