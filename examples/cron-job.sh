#!/bin/sh
# A cron job that must never run twice at once, e.g. in crontab:
#   */5 * * * * /opt/app/examples/cron-job.sh >> /var/log/app/export.log 2>&1
#
# exitguard takes the lock, runs the export with a private temp dir, forwards
# SIGINT/SIGTERM/SIGHUP to it, and releases the lock however it ends. A run
# that was killed with kill -9 leaves a lock that the next run takes over.
set -u

LOCK="${XDG_RUNTIME_DIR:-/tmp}/nightly-export.pid"
# The installed bin, found from this script (cron starts in $HOME): npx would resolve the
# package on every tick, ~0.8 s more CPU.
EXITGUARD=${EXITGUARD:-"$(dirname "$0")/../node_modules/.bin/exitguard"}

# --wait 0 (the default): if the previous run is still going, skip this one.
$EXITGUARD run --lock "$LOCK" --tmpdir --data '{"job":"export"}' -- \
  sh -c 'echo "exporting in $TMPDIR"; sleep 2; echo done > "$TMPDIR/out"; echo "exported"'
status=$?

case $status in
  0)   ;;                                   # the export succeeded
  75)  echo "previous run still busy; skipped" >&2   # EX_TEMPFAIL: the lock is held (stderr named the holder)
       exit 0 ;;                            # not an error for cron: the next tick tries again
  64)  echo "bad exitguard usage" >&2 ;;    # EX_USAGE: fix the command line
  69)  echo "PostgreSQL unavailable" >&2 ;; # only with --lock postgres://...
  73)  echo "cannot create $LOCK" >&2 ;;    # EX_CANTCREAT: missing directory, permission, a directory in the way
  126|127) echo "export command not runnable/found" >&2 ;;
  *)   if [ "$status" -gt 128 ]; then       # the export died by a signal (exitguard died by the same one)
         echo "export killed by signal $((status - 128))" >&2
       else
         echo "export failed with exit code $status" >&2   # the command's own exit code, passed through
       fi ;;
esac
exit "$status"
