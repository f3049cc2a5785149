#!/usr/bin/env bash
# The processes of `make up` (the Graph emulator and the three services, run by honcho from the
# Procfile), tracked so that stopping them never touches another checkout's processes.
#
#   deploy/local/stack.sh up          infra up, then the Procfile in the foreground; Ctrl-C (or
#                                     `stack.sh down` elsewhere) stops the processes, then infra
#   deploy/local/stack.sh run-apps    the Procfile in the foreground; Kafka and PostgreSQL stay up
#   deploy/local/stack.sh stop-apps   stop the processes of `up`/`run-apps`; infra keeps running
#   deploy/local/stack.sh down        stop-apps, then Kafka and PostgreSQL (infra.sh down)
#   deploy/local/stack.sh status      list the processes; exit 0 only if some run
#
# Tracking: honcho runs in a process group (and session) of its own; the group leader's pid,
# which is the group id, is in .run/stack/apps.pid. Honcho starts each Procfile process in a
# session of its own, outside that group, so every process of the stack also carries
# CALSYNC_STACK_ROOT=<this checkout> in its environment, and only processes carrying it are ever
# signalled (never anything found by name). Stopping: one SIGTERM to honcho's group (honcho
# relays one SIGTERM to each process; a second one would cut short aiohttp's graceful shutdown),
# a wait of at most STOP_TIMEOUT seconds, then SIGKILL to whatever of ours is left.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
INFRA="$SCRIPT_DIR/infra.sh"
STACK_RUN="$ROOT/.run/stack"
PID_FILE="$STACK_RUN/apps.pid"
# Written by stop-apps/down before they signal: the `up` in the foreground then leaves Kafka and
# PostgreSQL to them (stopped by down, kept by stop-apps) instead of racing them.
STOP_FILE="$STACK_RUN/stop-requested"
MARKER="CALSYNC_STACK_ROOT=$ROOT"
PROCFILE="${PROCFILE:-$ROOT/Procfile}"
STOP_TIMEOUT="${STOP_TIMEOUT:-30}" # seconds; honcho itself SIGKILLs 5 s after the first exit
UV="${UV:-uv}"
WITH_INFRA=0 # set by `up`: the exit trap stops Kafka and PostgreSQL too

log() { printf '[stack] %s\n' "$*" >&2; }
die() {
  printf '[stack] ERROR: %s\n' "$*" >&2
  exit 1
}

# is_ours PID: the process runs (not a zombie: its environment is gone then) and is this
# checkout's, whatever it has exec'd into.
is_ours() {
  grep -qzxF -- "$MARKER" "/proc/$1/environ" 2>/dev/null
}

# Our processes, one "PID PGID" line each.
our_processes() {
  local dir pid stat fields
  for dir in /proc/[0-9]*; do
    pid="${dir#/proc/}"
    [[ "$pid" != "$$" && "$pid" != "$BASHPID" ]] || continue
    is_ours "$pid" || continue
    { read -r stat <"$dir/stat"; } 2>/dev/null || continue
    # Fields after the command name (which may hold spaces): state ppid pgrp ...
    read -r -a fields <<<"${stat##*) }"
    printf '%s %s\n' "$pid" "${fields[2]}"
  done
}

# The tracked process group, if any of ours is still in it.
tracked_group() {
  local pgid pid group
  [[ -f "$PID_FILE" ]] || return 1
  read -r pgid <"$PID_FILE" || return 1
  [[ "$pgid" =~ ^[0-9]+$ ]] || return 1
  while read -r pid group; do
    if [[ "$group" == "$pgid" ]]; then
      printf '%s\n' "$pgid"
      return 0
    fi
  done < <(our_processes)
  return 1
}

# wait_gone SECONDS PID...: true once none of the pids is ours any more.
wait_gone() {
  local deadline=$((SECONDS + $1)) pid left
  shift
  while :; do
    left=0
    for pid in "$@"; do
      if is_ours "$pid"; then left=1; fi
    done
    ((left)) || return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

stop_apps() {
  local pgid="" pids=() pid _group
  [[ "$STOP_TIMEOUT" =~ ^[0-9]+$ ]] || die "STOP_TIMEOUT must be a number of seconds"
  while read -r pid _group; do pids+=("$pid"); done < <(our_processes)
  if ((${#pids[@]} == 0)); then
    rm -f "$PID_FILE"
    log "apps not running"
    return 0
  fi
  if pgid="$(tracked_group)"; then
    log "stopping the apps: SIGTERM to process group $pgid"
    : >"$STOP_FILE"
    kill -TERM -- "-$pgid" 2>/dev/null || true
  else
    # honcho is gone, so nobody relays: each leftover gets its one SIGTERM from here.
    pgid=""
    log "honcho is gone; SIGTERM to its leftover processes ${pids[*]}"
    kill -TERM -- "${pids[@]}" 2>/dev/null || true
  fi
  if ! wait_gone "$STOP_TIMEOUT" "${pids[@]}"; then
    log "still running after ${STOP_TIMEOUT}s; SIGKILL"
    if [[ -n "$pgid" ]]; then kill -KILL -- "-$pgid" 2>/dev/null || true; fi
    for pid in "${pids[@]}"; do
      if is_ours "$pid"; then kill -KILL -- "$pid" 2>/dev/null || true; fi
    done
    wait_gone 10 "${pids[@]}" || die "could not stop processes ${pids[*]}"
  fi
  rm -f "$PID_FILE"
  log "apps stopped"
}

status() {
  local pids=() pid _group pgid
  while read -r pid _group; do pids+=("$pid"); done < <(our_processes)
  if ((${#pids[@]} == 0)); then
    log "apps: stopped"
    return 1
  fi
  if pgid="$(tracked_group)"; then
    log "apps: running (process group $pgid)"
  else
    log "apps: leftovers without honcho (stack.sh stop-apps stops them)"
  fi
  ps -o pid=,pgid=,args= -p "$(
    IFS=,
    printf '%s' "${pids[*]}"
  )" >&2 || true
}

refuse_if_running() {
  local pid _group
  [[ -f "$PROCFILE" ]] || die "no Procfile at $PROCFILE"
  while read -r pid _group; do
    die "the apps already run (pid $pid); stop them first: deploy/local/stack.sh stop-apps"
  done < <(our_processes)
}

# run_apps: the Procfile in the foreground, in a new session whose id is the tracked group.
run_apps() {
  local rc=0
  mkdir -p "$STACK_RUN"
  rm -f "$STOP_FILE"
  # A background job of a script is no group leader, so setsid need not fork and $! is the
  # session leader; --wait keeps `wait` meaningful should it fork all the same. The leader
  # writes its own pid, which is the new group's id either way.
  # shellcheck disable=SC2016 # $$ and $1 expand in the inner shell
  env "$MARKER" setsid --wait bash -c 'printf "%s\n" "$$" >"$1" && shift && exec "$@"' _ \
    "$PID_FILE" "$SCRIPT_DIR/with-env.sh" "$UV" run honcho start -f "$PROCFILE" &
  wait "$!" || rc=$?
  return "$rc"
}

on_exit() {
  local rc=$? requested=0
  # A second Ctrl-C must not cut the clean-up short.
  trap '' INT TERM HUP
  if [[ -f "$STOP_FILE" ]]; then
    requested=1 # by stop-apps or down, which see to the rest
    rc=0
  fi
  (stop_apps) || rc=1
  rm -f "$STOP_FILE"
  if ((WITH_INFRA && !requested)); then bash "$INFRA" down || rc=1; fi
  exit "$rc"
}

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  cd "$ROOT"
  case "${1:-}" in
    up | run-apps)
      refuse_if_running
      if [[ "$1" == up ]]; then
        bash "$INFRA" up >/dev/null
        WITH_INFRA=1
      fi
      trap on_exit EXIT
      trap 'exit 130' INT
      trap 'exit 143' TERM
      trap 'exit 129' HUP
      run_apps
      ;;
    stop-apps) stop_apps ;;
    down)
      local rc=0
      (stop_apps) || rc=1
      bash "$INFRA" down || rc=1
      return "$rc"
      ;;
    status) status ;;
    *) usage ;;
  esac
}

main "$@"
