export function findPgBin(): string | null
export function startPgServer(options?: { log?: (message: string) => void }): Promise<{
  env: { PGHOST: string; PGPORT: string; PGUSER: string; PGDATABASE: string; EXITGUARD_PG_URL: string }
  stop: () => void
  dir: string
}>
