// vitest globalSetup: tags this run (every child and keeper inherits the tag), and at the end
// fails the run if any keeper started under it is still there: a keeper must end with the
// cleanup it was started for, whatever the test did to its owner.
import { randomUUID } from 'node:crypto'
import { eventually, keeperProcesses, RUN_TAG } from './helpers/keepers.js'

export default function setup(): () => Promise<void> {
  const tag = randomUUID()
  process.env[RUN_TAG] = tag
  return async () => {
    // Bounded: a keeper of the last test may still be finishing its owner's cleanup.
    if (await eventually(() => keeperProcesses(tag).length === 0, 15_000)) return
    const left = keeperProcesses(tag)
    throw new Error(`keeper processes left after the test suite: ${left.join(', ')} (each should have ended with its owner's cleanup)`)
  }
}
