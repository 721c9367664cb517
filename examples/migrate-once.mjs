// A migration step that runs once across several app instances: each instance takes the
// same PostgreSQL advisory lock; the first runs the migration, the others wait for it and
// then see it done. Try it with a few at once:
//
//   export EXITGUARD_PG_URL=postgres://postgres@127.0.0.1:5432/postgres   # or PGHOST/PGUSER/...
//   for i in 1 2 3; do node examples/migrate-once.mjs & done; wait
import pg from 'pg'
import { acquirePgLock } from '../dist/esm/index.js'

const connectionString = process.env.EXITGUARD_PG_URL // undefined: pg reads PGHOST, PGUSER, ...

// Waits up to a minute for another instance's migration; Ctrl-C or a crash releases the lock.
// (Plain Node 20 has no `await using`; in TypeScript, `await using lock = ...` replaces the try/finally.)
const lock = await acquirePgLock('example:migrate-once', {
  connectionString,
  wait: 60_000,
  data: { step: 'create table example_notes' },
})
try {
  const db = new pg.Client({ connectionString })
  await db.connect()
  try {
    const { rows } = await db.query("SELECT to_regclass('example_notes') IS NOT NULL AS done")
    if (rows[0].done) {
      console.log(`[pid ${process.pid}] already migrated by another instance; nothing to do`)
    } else {
      console.log(`[pid ${process.pid}] migrating (lock id ${lock.lockId})...`)
      await db.query('CREATE TABLE example_notes (id serial PRIMARY KEY, body text NOT NULL)')
      await new Promise((r) => setTimeout(r, 500)) // a slow step: the others wait meanwhile
      console.log(`[pid ${process.pid}] migrated`)
    }
  } finally {
    await db.end()
  }
} finally {
  await lock.release() // before the app starts serving
}
console.log(`[pid ${process.pid}] starting the app`)
