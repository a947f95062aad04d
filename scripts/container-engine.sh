#!/usr/bin/env bash
# Makes a Docker engine and the local base image `local/python-base` available for the container tests.
#
#   bash scripts/container-engine.sh ensure   # idempotent; `make test` calls it before pytest
#   bash scripts/container-engine.sh status   # what is there, without changing anything
#
# Engine: the one at DOCKER_HOST if set, else the default socket unix:///var/run/docker.sock, so the docker
# CLI, the docker SDK (docker.from_env()) and the CDK find it with no configuration. If nothing answers there
# and we are root, we install docker.io and start our own dockerd on that socket, with its state under
# /var/lib/delivery-docker and /run/delivery-docker (never the system's /var/lib/docker). An engine someone
# else already runs on the socket is used as it is; a socket held by something that is not a Docker engine is
# an error (we never replace it). Nothing is ever pulled from an image registry: the base image is built from
# Debian packages with debootstrap, from the mirror apt on this machine is configured with.
set -euo pipefail

readonly STATE_DIR=/var/lib/delivery-docker
readonly RUN_DIR=/run/delivery-docker
readonly DATA_ROOT=$STATE_DIR/data
readonly EXEC_ROOT=$RUN_DIR/exec
readonly PIDFILE=$RUN_DIR/dockerd.pid
readonly DAEMON_LOG=$STATE_DIR/dockerd.log
readonly DAEMON_CONFIG=$STATE_DIR/daemon.json
readonly APT_LOG=$STATE_DIR/apt.log
readonly ROOTFS=$STATE_DIR/rootfs-bookworm
readonly LOCK=$RUN_DIR/ensure.lock

readonly BASE_IMAGE=local/python-base
readonly SUITE=bookworm
readonly BASE_PACKAGES=python3,python3-venv,ca-certificates
# Bump when the recipe below changes: the cached rootfs and image are rebuilt.
readonly RECIPE_VERSION=1
readonly HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

readonly ENGINE_WAIT_SECONDS=60
readonly APT_TIMEOUT_SECONDS=900
readonly DEBOOTSTRAP_TIMEOUT_SECONDS=900
readonly IMPORT_TIMEOUT_SECONDS=300

if [[ -n "${DOCKER_HOST:-}" ]]; then
  ENGINE_HOST=$DOCKER_HOST
else
  ENGINE_HOST=unix:///var/run/docker.sock
fi
readonly ENGINE_HOST
export DOCKER_HOST=$ENGINE_HOST

log() { printf '[container-engine] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# Prints "ok" when a Docker engine answers, "refused" when nothing listens, "denied" when we may not use the
# socket, "other" otherwise.
probe_engine() {
  local socket
  if [[ $ENGINE_HOST == unix://* ]]; then
    socket=${ENGINE_HOST#unix://}
    [[ -S $socket ]] || { echo refused; return; }
    [[ -r $socket && -w $socket ]] || { echo denied; return; }
    if ! command -v curl >/dev/null; then
      if command -v docker >/dev/null && timeout 10 docker version >/dev/null 2>&1; then echo ok; else echo refused; fi
      return
    fi
    local rc=0 body
    body=$(curl -sS --max-time 5 --unix-socket "$socket" http://engine/_ping 2>/dev/null) || rc=$?
    if [[ $rc -eq 0 && $body == OK ]]; then echo ok
    elif [[ $rc -eq 7 ]]; then echo refused
    else echo other
    fi
  elif command -v docker >/dev/null && timeout 10 docker version >/dev/null 2>&1; then
    echo ok
  else
    echo other
  fi
}

base_image_key() {
  {
    rootfs_key
    if [[ -r $HOST_CA_BUNDLE ]]; then sha256sum <"$HOST_CA_BUNDLE"; fi
  } | sha256sum | cut -c1-16
}

base_image_current() {
  local label
  label=$(timeout 30 docker image inspect --format '{{ index .Config.Labels "delivery.base-key" }}' \
    "$BASE_IMAGE" 2>/dev/null) || return 1
  [[ $label == "$(base_image_key)" ]]
}

APT_UPDATED=
apt_failed() {
  tail -n 20 "$APT_LOG" >&2 || true
  die "apt-get $1 failed (log: $APT_LOG)"
}

apt_install() {
  local t0; t0=$(now)
  export DEBIAN_FRONTEND=noninteractive
  log "installing $* with apt-get (log: $APT_LOG)"
  if [[ -z $APT_UPDATED ]]; then
    timeout "$APT_TIMEOUT_SECONDS" apt-get update -qq >"$APT_LOG" 2>&1 || apt_failed update
    APT_UPDATED=1
  fi
  # No recommends: the engine needs containerd, runc and iptables (dependencies), not apparmor or git.
  timeout "$APT_TIMEOUT_SECONDS" apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "$@" \
    >>"$APT_LOG" 2>&1 || apt_failed install
  log "apt-get update + install of $* took $(elapsed "$t0")"
}

overlay_works() {
  local dir rc=0
  dir=$(mktemp -d "$STATE_DIR/overlay-check.XXXXXX")
  mkdir -p "$dir"/{lower,upper,work,merged}
  mount -t overlay overlay -o "lowerdir=$dir/lower,upperdir=$dir/upper,workdir=$dir/work" "$dir/merged" \
    2>/dev/null || rc=$?
  if [[ $rc -eq 0 ]]; then umount "$dir/merged"; fi
  rm -rf "$dir"
  return "$rc"
}

# A killed process can linger as a zombie (PID 1 here does not always reap): that is not a running one.
alive() {
  local pid=$1 name=$2 stat
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $stat == "$pid ($name) "* && $stat != "$pid ($name) Z"* ]]
}

dockerd_alive() { alive "$1" dockerd; }

start_engine() {
  [[ $ENGINE_HOST == unix://* ]] || die "DOCKER_HOST=$ENGINE_HOST does not answer and is not a local socket"
  local socket=${ENGINE_HOST#unix://}
  if [[ -e $socket && ! -S $socket ]]; then die "$socket exists and is not a socket; move it away"; fi

  local pid=
  [[ -r $PIDFILE ]] && pid=$(<"$PIDFILE")
  if [[ -n $pid ]] && dockerd_alive "$pid"; then
    log "dockerd (pid $pid) is running but not answering yet; waiting for it"
  else
    rm -f "$PIDFILE"
    # After a killed dockerd, its containerd's pid file would make the new dockerd wait for a dead containerd.
    local containerd_pidfile=$EXEC_ROOT/containerd/containerd.pid
    if [[ -r $containerd_pidfile ]] && ! alive "$(<"$containerd_pidfile")" containerd; then
      rm -f "$containerd_pidfile"
    fi
    local driver=vfs
    if overlay_works; then driver=overlay2; fi
    # Our own (empty) config file: a machine's /etc/docker/daemon.json must not contradict the flags below.
    [[ -f $DAEMON_CONFIG ]] || echo '{}' >"$DAEMON_CONFIG"
    log "starting dockerd on $socket (storage driver $driver, data root $DATA_ROOT, log $DAEMON_LOG)"
    mkdir -p "$DATA_ROOT" "$EXEC_ROOT"
    # fd 9 holds the ensure lock: dockerd must not inherit it.
    setsid dockerd \
      --config-file "$DAEMON_CONFIG" \
      --data-root "$DATA_ROOT" \
      --exec-root "$EXEC_ROOT" \
      --pidfile "$PIDFILE" \
      --host "unix://$socket" \
      --storage-driver "$driver" \
      --exec-opt native.cgroupdriver=cgroupfs \
      >>"$DAEMON_LOG" 2>&1 </dev/null 9>&- &
    pid=$!
  fi

  local t0 deadline state
  t0=$(now)
  deadline=$((SECONDS + ENGINE_WAIT_SECONDS))
  while :; do
    state=$(probe_engine)
    [[ $state == ok ]] && break
    if ! dockerd_alive "$pid"; then
      tail -n 20 "$DAEMON_LOG" >&2 || true
      die "dockerd exited during start-up (full log: $DAEMON_LOG)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$DAEMON_LOG" >&2 || true
      die "dockerd did not answer on $socket within ${ENGINE_WAIT_SECONDS} s (log: $DAEMON_LOG)"
    fi
    sleep 0.5
  done
  log "engine answered after $(elapsed "$t0") ($(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}'))"
}

# The Debian archive apt uses here, read at run time so that no mirror is named in the repository:
# the URI that `apt-cache policy` lists for SUITE/main (or this host's own codename/main) from origin Debian.
debian_archive_from_apt() {
  local codename
  # shellcheck source=/dev/null
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  apt-cache policy 2>/dev/null | awk -v a="$SUITE/main" -v b="$codename/main" '
    $2 ~ /:\/\// { uri = ($3 == a || $3 == b) ? $2 : ""; next }
    uri != "" && /release/ && /o=Debian,/ { print uri; exit }'
}

apt_mirror() {
  local uri
  uri=$(debian_archive_from_apt)
  if [[ -z $uri && -z $APT_UPDATED ]]; then
    timeout "$APT_TIMEOUT_SECONDS" apt-get update -qq >"$APT_LOG" 2>&1 || apt_failed update
    APT_UPDATED=1
    uri=$(debian_archive_from_apt)
  fi
  [[ -n $uri ]] || die "found no Debian archive for $SUITE/main in apt's sources (see 'apt-cache policy')"
  echo "$uri"
}

# debootstrap mounts /proc and /sys in the target; a run that was cut short can leave them mounted.
unmount_below() {
  local target
  awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r target; do
    umount -l "$target" || true
  done
}

remove_tree() {
  [[ -e $1 ]] || return 0
  unmount_below "$1"
  rm -rf --one-file-system "$1"
}

rootfs_key() { echo "recipe=$RECIPE_VERSION suite=$SUITE packages=$BASE_PACKAGES"; }

rootfs_cached() { [[ -f $ROOTFS/.delivery-rootfs-key && $(<"$ROOTFS/.delivery-rootfs-key") == "$(rootfs_key)" ]]; }

build_rootfs() {
  if rootfs_cached; then
    log "using the cached rootfs $ROOTFS"
    return
  fi
  local mirror tmp t0
  mirror=$(apt_mirror)
  tmp=$ROOTFS.tmp
  remove_tree "$tmp"
  t0=$(now)
  log "debootstrap --variant=minbase $SUITE from apt's configured archive (packages: $BASE_PACKAGES)"
  # debootstrap downloads with wget, which knows apt's proxy setting only through the environment.
  local -a proxy_env=()
  local APT_HTTP_PROXY=
  eval "$(apt-config shell APT_HTTP_PROXY Acquire::http::Proxy)"
  if [[ -n $APT_HTTP_PROXY && $APT_HTTP_PROXY != DIRECT ]]; then proxy_env=("http_proxy=$APT_HTTP_PROXY"); fi
  if ! env "${proxy_env[@]}" timeout "$DEBOOTSTRAP_TIMEOUT_SECONDS" debootstrap --variant=minbase \
    --include="$BASE_PACKAGES" "$SUITE" "$tmp" "$mirror" >"$STATE_DIR/debootstrap.log" 2>&1; then
    tail -n 20 "$STATE_DIR/debootstrap.log" >&2 || true
    [[ -f $tmp/debootstrap/debootstrap.log ]] && tail -n 20 "$tmp/debootstrap/debootstrap.log" >&2
    remove_tree "$tmp"
    die "debootstrap failed (log: $STATE_DIR/debootstrap.log)"
  fi
  unmount_below "$tmp"
  # The engine provides resolv.conf, hosts and hostname at run time; the host's must not be baked in.
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/cache/apt/*.bin "$tmp"/var/lib/apt/lists/* \
    "$tmp"/usr/share/doc/* "$tmp"/usr/share/man/* "$tmp"/usr/share/info/* \
    "$tmp"/etc/resolv.conf "$tmp"/etc/hostname
  rootfs_key >"$tmp/.delivery-rootfs-key"
  remove_tree "$ROOTFS"
  mv "$tmp" "$ROOTFS"
  log "debootstrap took $(elapsed "$t0")"
}

import_base_image() {
  local t0 key
  t0=$(now)
  key=$(base_image_key)
  # pip inside `docker build` must trust the same CAs as this machine (TLS interception included).
  [[ -r $HOST_CA_BUNDLE ]] || die "host CA bundle $HOST_CA_BUNDLE not found"
  install -m 0644 "$HOST_CA_BUNDLE" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
  log "importing $ROOTFS as $BASE_IMAGE"
  tar -C "$ROOTFS" --numeric-owner --exclude=./.delivery-rootfs-key --exclude='./proc/*' \
    --exclude='./sys/*' --exclude='./dev/*' -c . |
    timeout "$IMPORT_TIMEOUT_SECONDS" docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change "LABEL delivery.base-key=$key" \
      --change 'CMD ["python3"]' \
      - "$BASE_IMAGE" >/dev/null
  log "base image import took $(elapsed "$t0") ($(docker image inspect --format '{{.Size}}' "$BASE_IMAGE" |
    awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

ensure() {
  local t0 state
  t0=$(now)
  state=$(probe_engine)
  if [[ $state == ok ]] && command -v docker >/dev/null && base_image_current; then
    log "engine at $ENGINE_HOST is up and $BASE_IMAGE is current; nothing to do ($(elapsed "$t0"))"
    return
  fi
  if [[ $EUID -ne 0 ]]; then
    # The tests themselves fail when CI is set, so a missing engine is never hidden there.
    case $state in
      denied) log "container tests will be skipped: this user may not use $ENGINE_HOST (add it to the docker group)" ;;
      ok) log "container tests will be skipped: $BASE_IMAGE is missing or out of date; build it once with: sudo bash $0 ensure" ;;
      *) log "container tests will be skipped: no Docker engine answers at $ENGINE_HOST, and starting one needs root: sudo bash $0 ensure" ;;
    esac
    return
  fi

  mkdir -p "$STATE_DIR" "$RUN_DIR"
  exec 9>"$LOCK"
  flock -w 1800 9 || die "another 'ensure' held $LOCK for 30 minutes"

  state=$(probe_engine)
  local -a packages=()
  if ! command -v docker >/dev/null || { [[ $state != ok ]] && ! command -v dockerd >/dev/null; }; then
    packages+=(docker.io)
  fi
  # A new engine has no base image yet: fetch debootstrap in the same apt run.
  if [[ $state != ok ]] && ! rootfs_cached && ! command -v debootstrap >/dev/null; then packages+=(debootstrap); fi
  if [[ ${#packages[@]} -gt 0 ]]; then apt_install "${packages[@]}"; fi
  case $state in
    ok) log "engine answers at $ENGINE_HOST" ;;
    refused) start_engine ;;
    *) die "something at $ENGINE_HOST answers, but not as a Docker engine (or the engine hangs; log: $DAEMON_LOG)" ;;
  esac
  if ! base_image_current; then
    if ! rootfs_cached && ! command -v debootstrap >/dev/null; then apt_install debootstrap; fi
    build_rootfs
    import_base_image
  fi
  log "ready: engine $ENGINE_HOST, base image $BASE_IMAGE (total $(elapsed "$t0"))"
}

status() {
  local state
  state=$(probe_engine)
  echo "engine: $ENGINE_HOST ($state)"
  if [[ $state == ok ]] && base_image_current; then echo "base image: $BASE_IMAGE (current)"
  else echo "base image: $BASE_IMAGE (missing or stale)"
  fi
}

case ${1:-} in
  ensure) ensure ;;
  status) status ;;
  *) echo "usage: $0 ensure|status" >&2; exit 2 ;;
esac
