/**
 * The keeper itself: a POSIX `sh` that starts `awk` in the background and exits. awk reads the
 * owner's lines from its stdin (a pipe only the owner can write to, see keeper-pipe.ts) and keeps the entries
 * still registered in an array, so it costs a few hundred kB whatever the history. At EOF
 * (the owner's thread or process has ended, however it ended) it waits for proof that the owner
 * is dead, then releases what is left, newest first, and exits.
 *
 * Why sh + awk and not Node: a Node process idles at about 42 MB and takes ~95 ms to start here;
 * dash + mawk take about 2 MB and a few ms (docs/keeper.md has the figures).
 *
 * Why the double fork (sh starts awk with `&`, prints its PID and exits; the owner waits for sh
 * with spawnSync, so sh is reaped at once): the keeper is then never a child of the owner. A
 * keeper that were the child of a worker thread's event loop would stay a zombie after that
 * thread ended, for as long as the process lives; as an orphan, init (or the nearest subreaper)
 * reaps it. `detached: true` puts sh, and so awk, in a new session and process group: no Ctrl-C,
 * no signal sent to the owner's process group.
 *
 * Arguments of the sh script: $1 the awk program, $2 the owner's /proc task dir ("" without
 * /proc), $3 the owner's PID, $4 its start time, $5 the stat(1) flag for a format ("-c" GNU,
 * "-f" BSD), $6 KEEPER_WAIT (the waits, in sh). Lines (one per write, newline-free fields, the
 * path last):
 *
 *     +ID T DEV INO BTIME PATH    a temp file or dir, removed with rm -rf if (dev, ino, birth
 *                                 time) still match: a file system reuses a freed inode number
 *                                 at once, so (dev, ino) alone can't tell a replacement apart
 *     +ID L DEV INO TOKEN PATH    a PID lock file, unlinked if (dev, ino) match and it holds TOKEN
 *     +ID C PID GRACE START       a command: SIGTERM, then SIGKILL after GRACE ms, while START matches
 *     +ID G PID GRACE START       the same for the process group PID leads (exitguard run --group),
 *                                 until no process of it is left
 *     -ID                         released by the owner: forget it
 */
export const KEEPER_SH = [
  // fd 3 keeps the pipe: a background job's stdin is /dev/null unless redirected explicitly.
  // 4-9: descriptors the owner may have inherited without close-on-exec (a parent's pipe).
  'exec 3<&0 </dev/null 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-',
  'command -v awk >/dev/null 2>&1 || exit 127',
  'EXITGUARD_KEEPER_WAIT=$6 LC_ALL=C awk -v task="$2" -v opid="$3" -v ostart="$4" -v sf="$5" "$1" <&3 3<&- >/dev/null 2>&1 &',
  // The keeper's PID, for lock records; then sh ends, and the owner reaps it at once (spawnSync).
  'echo $!',
].join('\n')

/** The awk program. Its first line names it, so `ps` (and the test suite) can find keepers. */
export const KEEPER_AWK = String.raw`# exitguard-keeper: releases what its owner registered, once the owner is proven dead
BEGIN { MARK = "exitguard-keeper: ran" }
/^\+/ { id = substr($1, 2) + 0; if (!(id in entry)) live++; entry[id] = $0; if (id > top) top = id; next }
/^-/ { id = substr($1, 2) + 0; if (id in entry) { delete entry[id]; live-- }; next }
END {
  if (live <= 0) exit 0
  waitowner()
  for (i = top; i >= 1; i--) {
    if (!(i in entry)) continue
    split(entry[i], f, " ")
    if (f[2] == "T") { nt++; tpath[nt] = rest(entry[i], 5); tid[nt] = f[3] " " f[4] " " btime(f[5]); continue }
    flushtemps()
    if (f[2] == "C" || f[2] == "G") stopcommand(f[3], f[4] + 0, rest(entry[i], 4), f[2])
    else if (f[2] == "L") releaselock(f[3] " " f[4], f[5], rest(entry[i], 5))
  }
  flushtemps()
  exit 0
}
# The text after the first n space-separated fields (a path may hold spaces).
function rest(s, n) { while (n-- > 0) s = substr(s, index(s, " ") + 1); return s }
# Single-quotes s for sh.
function q(s,   r, i) { r = ""; while ((i = index(s, "'")) > 0) { r = r substr(s, 1, i - 1) "'\"'\"'"; s = substr(s, i + 1) } return "'" r s "'" }
# A birth time as stat(1) or Node gives it; "0" where the file system keeps none.
function btime(s) { return s ~ /^[-0.]*$/ ? "0" : s }
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
function waitsh(call) { return "eval \"$EXITGUARD_KEEPER_WAIT\"; " call }
# EOF came because the owner's descriptor closed: its thread or process is ending. Never act on
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
}
`

/**
 * The waits, as sh functions the awk program runs (see its `wait`). `alive DIR PID START` is
 * true while the process or task runs with that start time: a missing /proc entry, one that
 * can't be read (ESRCH: released while read), a zombie or another start time is proof of death.
 * Without /proc (DIR ""), `ps -o lstart` gives the start time. `read` is a shell builtin, so a
 * check spawns nothing. (A plain template: `\${` keeps sh's `${` from being interpolated.)
 */
export const KEEPER_WAIT = `set -f
alive() {
  s=
  if [ -n "$1" ]; then
    IFS= read -r s 2>/dev/null <"$1/stat"
    [ -n "$s" ] || return 1
    d=$1 w=$3
    set -- \${s##*") "}
    # Too few fields: the name (field 2) holds a newline, where read stopped. Read it all (rare).
    if [ $# -lt 20 ]; then
      s=$(tr -d '\\n' <"$d/stat" 2>/dev/null)
      [ -n "$s" ] || return 1
      set -- \${s##*") "}
    fi
    [ "$1" != Z ] && [ "$1" != X ] && [ "\${20}" = "$w" ]
  else
    s=$(ps -o lstart= -p "$2" 2>/dev/null)
    [ -n "$s" ] || return 1
    w=$3
    set -- $s
    s=$*
    set -- $w
    [ "$s" = "$*" ]
  fi
}
# The owner: EOF comes just before it is gone, so re-check a few hundred times, then back off.
gone() {
  i=0
  while alive "$1" "$2" "$3"; do
    i=$((i + 1))
    if [ $i -le 300 ]; then continue; fi
    if [ $i -le 400 ]; then sleep 0.002; elif [ $i -le 500 ]; then sleep 0.02; else sleep 0.5; fi
  done
  return 0
}
# Milliseconds since boot in $t, from /proc/uptime (10 ms steps) with builtins only; "" without it.
now() {
  t=
  IFS=' .' read -r sec cs rest 2>/dev/null </proc/uptime || return 0
  t=$((sec * 1000 + \${cs#0} * 10))
}
# True while the process group PGID (DIR PGID START: led by PGID, started at START) has a
# process that runs (not a zombie): the leader, or what it left in its group. No number of a
# group with a process in it is given to a new process; once it is empty it may be, so a leader
# with another start time leads someone else's group. Reads every /proc/<pid>/stat (builtins
# only); without /proc, ps lists the groups.
grouplive() {
  d=$1 g=$2 w=$3
  if [ -z "$d" ]; then
    s=$(ps -A -o pgid= -o stat= 2>/dev/null | while read -r p st; do [ "$p" = "$g" ] && [ "\${st#Z}" = "$st" ] && echo y; done)
    [ -n "$s" ]
    return
  fi
  s=
  IFS= read -r s 2>/dev/null <"$d/stat"
  if [ -n "$s" ]; then
    set -- \${s##*") "}
    [ "\${20}" = "$w" ] || return 1
  fi
  set +f
  for f in /proc/[0-9]*/stat; do
    s=
    IFS= read -r s 2>/dev/null <"$f"
    set -- \${s##*") "}
    if [ "$3" = "$g" ] && [ "$1" != Z ] && [ "$1" != X ]; then set -f; return 0; fi
  done
  set -f
  return 1
}
# The wrapped command (C) or its process group (G), for stop.
live() { if [ "$kind" = G ]; then grouplive "$@"; else alive "$@"; fi; }
hit() { if [ "$kind" = G ]; then kill -s "$1" -- "-$2" 2>/dev/null; else kill -s "$1" "$2" 2>/dev/null; fi; }
# A wrapped command (DIR PID START GRACE_MS FROM KIND): SIGTERM, SIGKILL once the grace period
# has passed, each only while it runs (its start time matches); returns once it has ended,
# however long that takes: a process in D state outlives SIGKILL until its I/O ends, and what it
# used (its lock above all) stays held until then. KIND G: the same for the process group it
# leads, until no process of it is left. The grace is measured on the clock where there is one:
# counting sleeps alone ran 45% long. Prints "term T" once SIGTERM is sent (T: ms since boot, or
# "-" without a clock); a try whose sh could not fork a sleep is run again with T as FROM, and
# goes on from there rather than from a new SIGTERM.
stop() {
  kind=$6
  # A group is checked by reading all of /proc: every 50 ms, not in a busy loop.
  step=0.01 ms=10
  [ "$kind" != G ] || step=0.05 ms=50
  live "$1" "$2" "$3" || return 0
  from=$5
  if [ -z "$from" ]; then
    hit TERM "$2"
    now
    from=\${t:--}
    echo "term $from"
    i=0
    [ "$kind" != G ] || i=200
    while [ $i -lt 200 ]; do alive "$1" "$2" "$3" || return 0; i=$((i + 1)); done
  fi
  waited=0
  while live "$1" "$2" "$3"; do
    now
    if [ "$from" != - ] && [ -n "$t" ]; then waited=$((t - from)); fi
    if [ $waited -ge "$4" ]; then hit KILL "$2"; break; fi
    sleep $step
    [ "$from" != - ] || waited=$((waited + ms))
  done
  # No limit: backing off to one check a second.
  i=0
  while live "$1" "$2" "$3"; do
    if [ $i -lt 100 ]; then sleep $step; elif [ $i -lt 200 ]; then sleep 0.1; else sleep 1; fi
    i=$((i + 1))
  done
  return 0
}
`
