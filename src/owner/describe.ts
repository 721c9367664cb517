import type { LockOwner } from './identity.js'

/**
 * "PID 4242 (node server.js) on host web-1 since 2026-11-23T16:40:00.000Z". What a record says is
 * shown with its control characters escaped: anyone who can plant a record could otherwise
 * write terminal escapes (erase a line, forge another) to whoever reads it.
 */
export function describeOwner(owner: Pick<LockOwner, 'pid' | 'hostname' | 'command'> & { createdAt: string | null }): string {
  const command = owner.command ? ` (${shown(owner.command)})` : ''
  const since = owner.createdAt ? ` since ${shown(owner.createdAt)}${ago(owner.createdAt)}` : ''
  return `PID ${owner.pid}${command} on host ${shown(owner.hostname)}${since}`
}

/** Text from a record, safe to print: control characters (a terminal's escapes) shown as \\xNN. */
export function shown(text: string): string {
  // eslint-disable-next-line no-control-regex
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it escapes
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

function ago(iso: string): string {
  const ms = Date.now() - Date.parse(iso)
  if (!Number.isFinite(ms) || ms < 0) return ''
  if (ms < 60_000) return ` (${Math.round(ms / 1000)} s ago)`
  if (ms < 3_600_000) return ` (${Math.round(ms / 60_000)} min ago)`
  return ` (${(ms / 3_600_000).toFixed(1)} h ago)`
}
