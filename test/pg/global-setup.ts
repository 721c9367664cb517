// vitest globalSetup: one throw-away PostgreSQL cluster for the whole run, so `npm test`
// needs nothing else. Its address reaches the tests as EXITGUARD_PG_URL and PG* (inherited
// by the workers and by every child they spawn). With EXITGUARD_PG_URL already set, that
// server is used and nothing is started. When no server can be had: CI fails loudly,
// a developer's run skips the pg tests with the reason in EXITGUARD_PG_SKIP.
import { startPgServer } from './server.mjs'

export default async function setup(): Promise<(() => void) | undefined> {
  if (process.env.EXITGUARD_PG_URL) return undefined
  let server: Awaited<ReturnType<typeof startPgServer>>
  try {
    server = await startPgServer({ log: (m: string) => process.stderr.write(m + '\n') })
  } catch (err) {
    const why = `could not start a PostgreSQL server for the pg tests: ${(err as Error).message}`
    if (process.env.CI === 'true' || process.env.CI === '1') throw new Error(why)
    process.stderr.write(`exitguard: ${why}\nexitguard: the pg tests will be SKIPPED (in CI they fail instead)\n`)
    process.env.EXITGUARD_PG_SKIP = why
    return undefined
  }
  Object.assign(process.env, server.env)
  // Teardown may not run if vitest itself is killed: stop the cluster on the way out too.
  process.once('exit', server.stop)
  return () => {
    process.removeListener('exit', server.stop)
    server.stop()
  }
}
