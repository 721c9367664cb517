import { FIELD_TYPES, LINES, type FieldType } from './keeper-lines.js'

/**
 * The keeper's awk program, in pieces that can each be run on their own (test/keeper-program.test.ts
 * runs each with a driver of its own). KEEPER_AWK joins them. What it does: it reads the owner's
 * lines (keeper-lines.ts) and keeps the entries still registered in an array, so it costs a few
 * hundred kB whatever the history. At EOF (the owner's thread or process has ended, however it
 * ended) it waits for proof that the owner is dead, then releases what is left, newest first.
 *
 * Its variables (awk -v): task (the owner's /proc task dir, "" without /proc), opid and ostart (the
 * owner's PID and start time), sf (the stat(1) flag for a format: "-c" GNU, "-f" BSD); in its
 * environment, EXITGUARD_KEEPER_WAIT: the sh functions of keeper-wait.ts.
 */

/** Text helpers: a line's rest, sh quoting, a birth time's "none". */
export const AWK_TEXT = String.raw`# The text after the first n space-separated fields (a path may hold spaces).
function rest(s, n) { while (n-- > 0) s = substr(s, index(s, " ") + 1); return s }
# Single-quotes s for sh.
function q(s,   r, i) { r = ""; while ((i = index(s, "'")) > 0) { r = r substr(s, 1, i - 1) "'\"'\"'"; s = substr(s, i + 1) } return "'" r s "'" }
# A birth time as stat(1) or Node gives it; "0" where the file system keeps none.
function btime(s) { return s ~ /^[-0.]*$/ ? "0" : s }`

/**
 * parse(s, e): the entry line s (`+ID KIND FIELD...`) into e[name] for each of its kind's fields,
 * as LINES defines them; returns the kind, or "" for a line that doesn't fit (too few fields, a
 * field that doesn't match its type, an unknown kind). Generated from LINES, so the field
 * positions are the writers' own.
 */
export const AWK_PARSE = awkParser()

function awkParser(): string {
  const kinds = Object.entries(LINES).map(([kind, fields]: [string, readonly (readonly [string, FieldType])[]]) => {
    const sets = fields.map(([name, type], i) => {
      if (type === 'text' && i !== fields.length - 1) throw new Error(`keeper line ${kind}: a text field (${name}) can only come last`)
      // Fields 1 and 2 are +ID and the kind; a text field is the rest of the line after those before it.
      return `e["${name}"] = ${type === 'text' ? `rest(s, ${i + 2})` : `f[${i + 3}]`}`
    })
    const checks = fields.map(([name, type]) => `e["${name}"] ~ /${FIELD_TYPES[type]}/`)
    return `if (k == "${kind}") { if (n < ${fields.length + 2}) return ""; ${sets.join('; ')}; return (${checks.join(' && ')}) ? k : "" }`
  })
  return [
    'function parse(s, e,   f, n, k) {',
    '  split("", e); n = split(s, f, " "); k = f[2]',
    '  if (f[1] !~ /^[+][0-9]+$/) return ""',
    ...kinds.map((line) => `  ${line}`),
    '  return ""',
    '}',
  ].join('\n')
}

/** Steps, each a sh that needs a fork, tried again until it has run (see run()). */
export const AWK_STEPS = String.raw`BEGIN { MARK = "exitguard-keeper: ran" }
# Every step runs in a sh, which needs a fork: under a process limit or memory pressure (as around
# an OOM kill) fork fails with EAGAIN, and that step never ran. That is never taken for its answer
# ("gone", "not ours"): going on would act on a live owner, or skip an entry for good while what
# it guards may still run. So a step says when it ran to its end (dash and bash end at once when
# they can't fork, so nothing after that runs), and one that did not is tried again.
# run: a command whose output is read; its lines in out[1..n] (an empty line may close the output).
# Returns n, or -1 if its sh did not run to the end (the marker, its last line, is missing).
function run(cmd, out,   n, s) {
  cmd = cmd "; printf '\\n%s\\n' " q(MARK)
  split("", out); n = 0
  # (A command is always one variable before "| getline": mawk reads 'a b | getline' as a (b | getline).)
  while ((cmd | getline s) > 0) out[++n] = s
  close(cmd)
  if (n == 0 || out[n] != MARK) return -1
  delete out[n]
  return n - 1
}
function runs(cmd, out,   n, k) { for (k = 0; (n = run(cmd, out)) < 0; k++) nap(k); return n }
# A step whose sh exits 0 whenever it ran (what it did inside included): anything else, it never ran.
function systems(cmd,   k) { for (k = 0; system(cmd) != 0; k++) nap(k) }
# The pause before try k+2 of a step: 10 ms, doubling up to 1 s. With sleep(1) where a process can
# be started; else by watching the clock (/proc/uptime, read by awk itself, no process), which
# costs a CPU for as long as no process can be started at all; without /proc, none.
function nap(k,   s, t, u) {
  s = k < 7 ? 0.01 * 2 ^ k : 1
  if (system("exec sleep " s) == 0) return
  if ((getline t < "/proc/uptime") <= 0) return
  close("/proc/uptime")
  do { u = ""; getline u < "/proc/uptime"; close("/proc/uptime") } while (u != "" && u + 0 < t + s)
}
# Runs one of KEEPER_WAIT's functions (given in the environment, see KEEPER_SH). The waits are in
# sh, not awk: they read /proc files of tasks that are ending, and a read(2) that fails (ESRCH once
# the task is released) is fatal to mawk's getline, which would end the keeper before it released
# anything.
function waitsh(call) { return "eval \"$EXITGUARD_KEEPER_WAIT\"; " call }`

/** The releases: the owner's death, a command's stop, temp entries, a lock file. */
export const AWK_RELEASE = String.raw`# EOF came because the owner's descriptor closed: its thread or process is ending. Never act on
# a live owner: wait until it is proven gone (a few µs to ms after EOF).
function waitowner() { systems(waitsh("gone " q(task) " " opid " " q(ostart))) }
function procdir(pid) { return task == "" ? "" : "/proc/" pid }
# A wrapped command: stopped, and only once it has ended is what it used (temp dir, lock) released.
# A try of stop that did not run to its end may have sent SIGTERM: it said when ("term T"), and
# the next try counts the grace period from then instead of starting it again.
function stopcommand(pid, grace, st, kind,   from, out, n, k, j) {
  from = ""
  for (k = 0; (n = run(waitsh("stop " q(procdir(pid)) " " pid " " q(st) " " grace " " q(from) " " kind), out)) < 0; k++) {
    for (j in out) if (out[j] ~ /^term /) from = substr(out[j], 6)
    nap(k)
  }
}
# Temp entries, in batches: one stat(1) and one rm(1) for as many as fit in one sh -c string
# (Linux caps one argument at 128 kB). rm -rf walks with openat/unlinkat and never follows a
# symlink; only entries whose (dev, ino) still match are given to it. A removal whose sh never
# ran is tried again from the stat: what is there may have changed meanwhile.
function flushtemps(   k, j, m, end, cmd, out, n, seen, list, a, tries) {
  for (k = 1; k <= nt; k = end) {
    cmd = "stat " sf (sf == "-c" ? " '%d %i %.9W %n'" : " '%d %i %B %N'") " --"
    for (end = k; end <= nt && (end == k || length(cmd) < 60000); end++) cmd = cmd " " q(tpath[end])
    cmd = cmd " 2>/dev/null"
    for (tries = 0; ; tries++) {
      n = runs(cmd, out)
      split("", seen)
      for (m = 1; m <= n; m++) if (out[m] != "") { split(out[m], a, " "); seen[rest(out[m], 3)] = a[1] " " a[2] " " btime(a[3]) }
      list = ""
      for (j = k; j < end; j++) if ((tpath[j] in seen) && seen[tpath[j]] == tid[j]) list = list " " q(tpath[j])
      if (list == "") break
      # A read-only subdirectory makes rm fail: make the tree writable, then retry. Never as root:
      # root needs no write bit to remove, and GNU chmod -R follows a symlink named on its command
      # line, which an attacker could swap in after the stat above.
      # (The list once, in "$@": three copies of a long batch would pass the 128 kB limit.)
      if (system("set --" list "; rm -rf -- \"$@\" 2>/dev/null || { [ \"$(id -u)\" = 0 ] || chmod -R u+rwx -- \"$@\" 2>/dev/null; rm -rf -- \"$@\" 2>/dev/null; }; exit 0") == 0) break
      nap(tries)
    }
  }
  nt = 0
}
# A PID lock file: unlinked only if it is still the file we created and still holds our token.
# While this keeper runs, the lock record names it as a co-holder, so no taker can replace it.
# Only a regular file is looked at: a lock path unlinked while its holder lived may since hold a
# FIFO (opening it would block the keeper for ever) or a directory (a read error ends mawk), made
# with the holder's freed inode number, which ext4 reuses at once. The file is read by cat, not
# by getline: a read error there ends cat, not the keeper.
function releaselock(devino, token, path,   out, n, m, ours, reg) {
  reg = "[ -f " q(path) " ] && [ ! -h " q(path) " ] && "
  if (runs(reg "stat " sf " '%d %i' -- " q(path) " 2>/dev/null", out) < 1 || out[1] != devino) return
  ours = 0
  n = runs(reg "cat -- " q(path) " 2>/dev/null", out)
  for (m = 1; m <= n; m++) if (index(out[m], "\"token\":\"" token "\"") > 0) ours = 1
  if (ours) systems("rm -f -- " q(path) "; exit 0")
}`

/**
 * The main rules: "+ID ..." registers an entry (a malformed one is ignored), "-ID" forgets it;
 * at EOF, release what is left, newest first (LIFO, as the registry), once the owner is dead.
 */
export const AWK_MAIN = String.raw`/^\+/ { if (parse($0, e) == "") next; id = substr($1, 2) + 0; if (!(id in entry)) live++; entry[id] = $0; if (id > top) top = id; next }
/^-/ { id = substr($1, 2) + 0; if (id in entry) { delete entry[id]; live-- }; next }
END {
  if (live <= 0) exit 0
  waitowner()
  for (i = top; i >= 1; i--) {
    if (!(i in entry)) continue
    k = parse(entry[i], e)
    if (k == "T") { nt++; tpath[nt] = e["path"]; tid[nt] = e["dev"] " " e["ino"] " " btime(e["btime"]); continue }
    flushtemps()
    if (k == "C" || k == "G") stopcommand(e["pid"], e["grace"] + 0, e["start"], k)
    else if (k == "L") releaselock(e["dev"] " " e["ino"], e["token"], e["path"])
  }
  flushtemps()
  exit 0
}`

/** The whole program. Its first line names it, so `ps` (and the test suite) can find keepers. */
export const KEEPER_AWK = ['# exitguard-keeper: releases what its owner registered, once the owner is proven dead', AWK_MAIN, AWK_TEXT, AWK_PARSE, AWK_STEPS, AWK_RELEASE, ''].join('\n')
