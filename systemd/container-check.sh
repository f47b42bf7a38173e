#!/usr/bin/env bash
# Runs deploy/install.sh and the unit under a real systemd: PID 1 of a Debian 12 systemd-nspawn container.
# Run by hand as root on a Debian 12 x86-64 host (about 2 minutes; the first run also debootstraps):
#
#     sudo systemd/container-check.sh
#
# Checks that the hardened unit really runs the daemon: READY=1 after the self-test and first frame
# (the sample video plays as the camera), STATUS=, the sandbox (user, video group, seccomp, no
# capabilities), a clean stop that publishes "offline", a restart after a crash and after a watchdog
# timeout, no restart after exit 78, the exposure score, and --uninstall --purge. The container shares
# the host's network (apt and pip inside it), so its mosquitto listens on the host's 127.0.0.1:1883.
# The root file system is cached in systemd/.container/. Not checked here: DevicePolicy/MemoryMax,
# which need cgroup controllers that a container on a hybrid-cgroup host does not get.
# shellcheck disable=SC2317  # helpers are called through check, within_60s and trap
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$REPO/systemd/.container
MIRROR=http://deb.debian.org/debian
REBUILD=0
FAILED=0

die() { echo "container-check.sh: error: $*" >&2; exit 1; }
say() { echo "==> $*"; }

while (($#)); do
    case $1 in
        --cache) CACHE=$(realpath -m "${2:?}"); shift ;;
        --mirror) MIRROR=${2:?}; shift ;;
        --rebuild) REBUILD=1 ;;
        -h | --help) echo "Usage: container-check.sh [--cache DIR] [--mirror URL] [--rebuild]"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
ROOTFS=$CACHE/rootfs
[[ $(id -u) == 0 ]] || die "needs root (debootstrap, systemd-nspawn)"
[[ -f $REPO/models/clothing-mobilenetv2.json && -f $REPO/models/sample/garments.mp4 ]] ||
    die "the default model and models/sample/garments.mp4 are needed"
if ! command -v systemd-nspawn >/dev/null || ! command -v debootstrap >/dev/null; then
    say "host packages: debootstrap systemd-container"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap systemd-container
fi

mkdir -p "$CACHE"
[[ -f $CACHE/.gitignore ]] || echo '*' >"$CACHE/.gitignore"
((REBUILD)) && rm -rf "$ROOTFS"
if [[ ! -f $ROOTFS/.ready ]]; then
    say "root file system: debootstrap bookworm -> $ROOTFS"
    rm -rf "$ROOTFS"
    debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,python3,python3-venv,ca-certificates,mosquitto,mosquitto-clients \
        bookworm "$ROOTFS" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed: see $CACHE/debootstrap.log"
    echo edgetest >"$ROOTFS/etc/hostname"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\tedgetest\n' >"$ROOTFS/etc/hosts"
    touch "$ROOTFS/.ready"
fi
# The host's CA bundle, in case its network inspects TLS (pip inside the container goes through it).
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"

say "booting the container"
setsid systemd-nspawn --keep-unit --register=no --quiet -D "$ROOTFS" --bind-ro="$REPO:/src" --console=passive -b \
    >"$CACHE/boot.log" 2>&1 &
NSPAWN=$!
LEADER=""
for _ in $(seq 100); do
    LEADER=$(pgrep -P "$NSPAWN" -x systemd || true)
    [[ -n $LEADER ]] && break
    sleep 0.2
done
[[ -n $LEADER ]] || die "the container did not start: see $CACHE/boot.log"
cx() { nsenter -t "$LEADER" -a -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt "$@"; }
cleanup() { cx systemctl poweroff >/dev/null 2>&1 || true; wait "$NSPAWN" 2>/dev/null || true; }
trap cleanup EXIT

check() {
    local name=$1
    shift
    if "$@"; then echo "PASS  $name"; else echo "FAIL  $name"; FAILED=1; fi
}
prop() { cx systemctl show -p "$1" --value edge-classifier; }
# Polls (the daemon and systemd act on their own clocks) until "$@" holds or 60 s pass.
within_60s() { local _; for _ in $(seq 240); do "$@" && return 0; sleep 0.25; done; return 1; }
restarted() { [[ $(prop NRestarts) == "$1" && $(prop ActiveState) == active ]]; }
watchdog_restarted() { restarted 1 && cx journalctl -u edge-classifier -b | grep -q "Watchdog timeout"; }
booted() { [[ $(cx systemctl is-system-running 2>/dev/null) =~ ^(running|degraded)$ ]]; }
sandboxed() {
    local status
    status=$(cx cat "/proc/$(prop MainPID)/status")
    grep -q "^Uid:\s*$(cx id -u edge-classifier)\s" <<<"$status" && grep -q "^Groups:.*\b44\b" <<<"$status" &&
        grep -q "^CapEff:\s*0*$" <<<"$status" && grep -q "^Seccomp:\s*2" <<<"$status" &&
        grep -q "^NoNewPrivs:\s*1" <<<"$status"
}
within_60s booted || die "the container's systemd did not finish booting: see $CACHE/boot.log"

say "install.sh inside the container"
cx bash /src/deploy/install.sh --uninstall --purge >/dev/null
cx bash /src/deploy/install.sh --no-start >"$CACHE/install.log" 2>&1 || die "install.sh failed: see $CACHE/install.log"
cx install -o edge-classifier -m 644 /src/models/sample/garments.mp4 /var/lib/edge-classifier/garments.mp4
cx sh -c 'printf "source:\n  uri: /var/lib/edge-classifier/garments.mp4\n  loop: true\nmqtt:\n  host: localhost\n" \
    >/etc/edge-classifier/config.yaml'
check "install.sh is idempotent" cx sh -c 'bash /src/deploy/install.sh --no-start | grep -q "nothing to change"'

say "the service"
check "starts: READY=1 after self-test and first frame" cx timeout 120 systemctl restart edge-classifier
check "STATUS= is set" test -n "$(prop StatusText)"
check "self-test ran on the default model" cx sh -c 'journalctl -u edge-classifier -b | grep -q "self-test passed on"'
check "runs as edge-classifier in group video, no capabilities, seccomp, no_new_privs" sandboxed
EXPOSURE=$(cx systemd-analyze security edge-classifier --no-pager | sed -n 's/.*Overall exposure level.*: \([0-9.]*\) .*/\1/p')
check "exposure $EXPOSURE <= 2.0 (systemd-analyze security, online)" awk "BEGIN { exit !($EXPOSURE <= 2.0) }"
cx sh -c 'mosquitto_sub -t "edge-classifier/+/status" -C 2 -W 30 >/tmp/status.txt 2>&1 &'
check "stops cleanly on SIGTERM" cx timeout 20 systemctl stop edge-classifier
check "publishes offline when stopping" within_60s cx grep -q " *offline" /tmp/status.txt
check "exit status 0 on stop" test "$(prop ExecMainStatus)" = 0

cx systemctl start edge-classifier
cx systemctl kill -s SIGKILL edge-classifier
check "restarts after a crash (SIGKILL)" within_60s restarted 1
cx sh -c 'mkdir -p /run/systemd/system/edge-classifier.service.d &&
    printf "[Service]\nWatchdogSec=5\n" >/run/systemd/system/edge-classifier.service.d/watchdog.conf && systemctl daemon-reload'
cx systemctl restart edge-classifier
cx sh -c "kill -STOP $(prop MainPID)"
check "restarts after a watchdog timeout (process frozen, WatchdogSec=5 drop-in)" within_60s watchdog_restarted
cx sh -c 'rm -r /run/systemd/system/edge-classifier.service.d && systemctl daemon-reload'
cx sh -c 'echo "no_such_key: 1" >>/etc/edge-classifier/config.yaml'
cx systemctl restart edge-classifier 2>/dev/null || true
check "exit 78 on a config error, and no restart scheduled" \
    test "$(prop ExecMainStatus) $(prop SubState)" = "78 failed"

say "uninstall"
cx bash /src/deploy/install.sh --uninstall --purge >/dev/null
check "--uninstall --purge removes unit, files and user" cx sh -c '! systemctl cat edge-classifier >/dev/null 2>&1 &&
    ! test -e /opt/edge-classifier && ! test -e /etc/edge-classifier && ! id edge-classifier >/dev/null 2>&1'
((FAILED == 0)) && echo "overall: PASS" || echo "overall: FAIL"
exit "$FAILED"
