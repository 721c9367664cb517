#!/usr/bin/env node
// The only place that decides how the process ends (cli.ts never exits).
import { cli } from './cli/cli.js'

// No top-level await: the published CLI is this file bundled as CommonJS (rolldown.config.mjs).
void cli(process.argv.slice(2)).then((outcome) => {
  // SIGUSR1 would start Node's inspector instead of ending us: use the 128 + n code for it.
  if (outcome.signal && outcome.signal !== 'SIGUSR1') {
    // Die as the command died, so a shell or supervisor sees the real signal (bash: 130 for SIGINT).
    // Everything is released by now. Listeners (exitguard's hook) would defer the signal to a
    // later tick that never comes, as the loop is empty: remove them so the default action kills us.
    process.removeAllListeners(outcome.signal)
    process.kill(process.pid, outcome.signal)
  }
  // If the signal did not end us (ignored, like SIGPIPE in Node), exit with 128 + its number.
  process.exitCode = outcome.code
})
