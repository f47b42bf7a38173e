#!/usr/bin/env bash
# Installs edge-classifier as a systemd service on Debian 12 / Raspberry Pi OS Bookworm (arm64, x86-64):
#   sudo deploy/install.sh       install or update; running it again changes only what differs.
# --uninstall [--purge], --dry-run, --root DIR (a throw-away root for tests): see --help.
set -euo pipefail

NAME=edge-classifier
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APT_PACKAGES=(python3 python3-venv ca-certificates)
ROOT="" BUILD_DIR="" PY_VERSION="" DRY_RUN=0 MODE=install PURGE=0 START=1
OS_RELEASE=/etc/os-release
PYTHON=/usr/bin/python3
MANIFEST="$REPO/models/clothing-mobilenetv2.json"
CONFIG_EXAMPLE="$REPO/deploy/config.example.yaml"
UNIT_SOURCE="$REPO/systemd/$NAME.service"

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "==> $*"; }

usage() {
    cat <<EOF
Usage: install.sh [--dry-run] [--root DIR] [--uninstall [--purge]] [options]

Installs edge-classifier from this checkout ($REPO):
apt prerequisites, system user $NAME (group video), venv /opt/$NAME/venv,
model files in /var/lib/$NAME/models, /etc/$NAME/config.yaml (only if absent)
and the systemd unit $NAME.service (enabled and started).

  --dry-run            print every step without doing it
  --root DIR           install under DIR instead of / (tests): no apt, useradd, chown or service
                       start (printed instead); the unit is enabled with systemctl --root
  --uninstall          remove the service, venv and models; keep config and state
  --purge              with --uninstall: also remove /etc/$NAME, /var/lib/$NAME and the user
  --no-start           enable the service but do not start or restart it
  --python PATH        interpreter for the venv (default: $PYTHON)
  --model MANIFEST     model manifest to install (default: models/clothing-mobilenetv2.json)
  --config-example F   configuration copied when /etc/$NAME/config.yaml is absent
                       (default: deploy/config.example.yaml)
  --os-release FILE    os-release file to check (default: /etc/os-release)
  -h, --help           this help
EOF
}

while (($#)); do
    case $1 in
        --dry-run) DRY_RUN=1 ;;
        --root) ROOT=$(realpath -m "${2:?--root needs a directory}"); shift ;;
        --uninstall) MODE=uninstall ;;
        --purge) PURGE=1 ;;
        --no-start) START=0 ;;
        --python) PYTHON=${2:?--python needs a path}; shift ;;
        --model) MANIFEST=$(realpath -m "${2:?--model needs a manifest}"); shift ;;
        --config-example) CONFIG_EXAMPLE=$(realpath -m "${2:?--config-example needs a file}"); shift ;;
        --os-release) OS_RELEASE=${2:?--os-release needs a file}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[[ $PURGE == 0 || $MODE == uninstall ]] || die "--purge only goes with --uninstall"
[[ $ROOT != / ]] || ROOT=""

OPT=$ROOT/opt/$NAME
VENV=$OPT/venv
STAMP=$OPT/installed-source.sha256
ETC=$ROOT/etc/$NAME
STATE=$ROOT/var/lib/$NAME
MODELS=$STATE/models
UNIT=$ROOT/etc/systemd/system/$NAME.service
CHANGED=0

show() { printf '    %s:' "$1"; shift; printf ' %q' "$@"; echo; }

# Runs a command that changes the target tree, or only prints it with --dry-run.
act() {
    if ((DRY_RUN)); then show "would run" "$@"; else "$@"; fi
}

# Runs a command that changes the host itself (apt, users, ownership, services): not with --dry-run or --root.
host() {
    if ((DRY_RUN)); then
        show "would run" "$@"
    elif [[ -n $ROOT ]]; then
        show "skipped (--root)" "$@"
    else
        "$@"
    fi
}

# Copies SRC to DEST with MODE unless DEST already has that content and mode.
put() {
    local src=$1 dest=$2 mode=$3
    if [[ -f $dest ]] && cmp -s "$src" "$dest" && [[ $(stat -c %a "$dest") == "$mode" ]]; then
        return 0
    fi
    act install -D -m "$mode" "$src" "$dest"
    CHANGED=1
}

# Creates DIR with MODE unless it exists.
ensure_dir() {
    [[ -d $1 ]] || { act install -d -m "$2" "$1"; CHANGED=1; }
}

# One KEY=value of the os-release file, quotes removed (read, not sourced).
os_field() { sed -n "s/^$1=//p" "$OS_RELEASE" | head -n1 | tr -d "\"'"; }

check_os() {
    [[ -r $OS_RELEASE ]] || die "cannot read $OS_RELEASE: unsupported OS (Debian 12 or Raspberry Pi OS Bookworm needed)"
    local id like version codename
    id=$(os_field ID) like=$(os_field ID_LIKE) version=$(os_field VERSION_ID) codename=$(os_field VERSION_CODENAME)
    if ! [[ ($id == debian || $id == raspbian || " $like " == *" debian "*) && ($version == 12 || $codename == bookworm) ]]; then
        die "unsupported OS ${id:-unknown} ${version:-$codename}: Debian 12 or Raspberry Pi OS Bookworm needed"
    fi
    local arch
    arch=$(uname -m)
    [[ $arch == x86_64 || $arch == aarch64 ]] ||
        die "unsupported architecture $arch: arm64 (64-bit Raspberry Pi OS) or x86-64 needed"
    say "OS: ${id} ${version:-$codename} on $arch"
}

check_python() {
    [[ -z $PY_VERSION ]] || return 0
    if [[ ! -x $PYTHON ]] && ((DRY_RUN)); then
        echo "    $PYTHON is not installed yet: apt installs it"
        return 0
    fi
    local version
    version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) ||
        die "cannot run $PYTHON: install python3 (Python 3.10 or newer needed)"
    [[ $(printf '%s\n' 3.10 "$version" | sort -V | head -n1) == 3.10 ]] ||
        die "Python $version at $PYTHON is too old: Python 3.10 or newer needed"
    PY_VERSION=$version
    say "Python $version ($PYTHON)"
}

install_apt() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    if ((${#missing[@]})) || ((DRY_RUN)) || [[ -n $ROOT ]]; then
        say "apt packages: ${APT_PACKAGES[*]}"
        host apt-get update -q
        host env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
    fi
}

create_user() {
    if getent passwd "$NAME" >/dev/null && [[ -z $ROOT ]]; then
        id -nG "$NAME" | tr ' ' '\n' | grep -qx video || host usermod -a -G video "$NAME"
        return 0
    fi
    say "system user $NAME (group video)"
    host useradd --system --user-group --groups video --home-dir "/var/lib/$NAME" --no-create-home \
        --shell /usr/sbin/nologin --comment "edge-classifier daemon" "$NAME"
}

# A digest of the package sources: the venv is reinstalled only when they change.
source_digest() {
    local files=()
    mapfile -t files < <(cd "$REPO" && find pyproject.toml README.md LICENSE edge_classifier -type f \
        ! -path '*/__pycache__/*' ! -name '*.pyc' 2>/dev/null | LC_ALL=C sort)
    (cd "$REPO" && sha256sum "${files[@]}" | sha256sum | cut -d' ' -f1)
}

install_venv() {
    if [[ -x $VENV/bin/python ]] && ! "$VENV/bin/python" -c '' 2>/dev/null; then
        say "venv $VENV is broken (Python upgraded?): recreating it"
        act rm -rf "$VENV" "$STAMP"
    fi
    if [[ ! -x $VENV/bin/python ]]; then
        say "venv $VENV"
        ensure_dir "$OPT" 755
        act "$PYTHON" -m venv "$VENV"
        CHANGED=1
    fi
    local digest
    digest=$(source_digest)
    if [[ -f $STAMP && $(<"$STAMP") == "$digest" && -x $VENV/bin/$NAME ]]; then
        say "package: up to date ($VENV/bin/$NAME)"
        return 0
    fi
    say "package: pip install $REPO (non-editable)"
    CHANGED=1
    if ((DRY_RUN)); then
        echo "    would run: $VENV/bin/python -m pip install $REPO"
        return 0
    fi
    # From a copy, so that the build leaves no build/ or *.egg-info in the checkout.
    BUILD_DIR=$(mktemp -d)
    trap 'rm -rf "$BUILD_DIR"' EXIT
    local name
    for name in pyproject.toml README.md LICENSE edge_classifier; do
        if [[ -e $REPO/$name ]]; then cp -r "$REPO/$name" "$BUILD_DIR/"; fi
    done
    # Wheels only for the compiled dependencies: building OpenCV from source on a Pi takes hours.
    "$VENV/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
        --only-binary=numpy,opencv-python-headless,ai-edge-litert "$BUILD_DIR"
    echo "$digest" >"$STAMP"
}

install_model() {
    local dir base model labels
    dir=$(dirname "$MANIFEST")
    base=$(basename "$MANIFEST" .json)
    local python=$PYTHON
    [[ -x $python ]] || python=python3
    { read -r model; read -r labels; } < <("$python" -c 'import json, sys
doc = json.load(open(sys.argv[1], encoding="utf-8"))
print(doc["model_file"]); print(doc.get("labels_file", ""))' "$MANIFEST") || die "cannot read model_file from $MANIFEST"
    say "model $base -> $MODELS"
    ensure_dir "$STATE" 750
    ensure_dir "$MODELS" 755
    put "$MANIFEST" "$MODELS/$base.json" 644
    put "$dir/$model" "$MODELS/$model" 644
    [[ -z $labels ]] || put "$dir/$labels" "$MODELS/$labels" 644
    if [[ -d $dir/$base.selftest ]]; then
        ensure_dir "$MODELS/$base.selftest" 755
        local f
        for f in "$dir/$base.selftest"/*; do
            if [[ -f $f ]]; then put "$f" "$MODELS/$base.selftest/${f##*/}" 644; fi
        done
        for f in "$MODELS/$base.selftest"/*; do
            if [[ -f $f && ! -e $dir/$base.selftest/${f##*/} ]]; then act rm -f "$f"; CHANGED=1; fi
        done
    fi
    host chown -R "$NAME:$NAME" "$STATE"
}

install_config() {
    ensure_dir "$ETC" 750
    if [[ -e $ETC/config.yaml ]]; then
        say "config: keeping $ETC/config.yaml"
    else
        say "config: $ETC/config.yaml from ${CONFIG_EXAMPLE#"$REPO"/}"
        put "$CONFIG_EXAMPLE" "$ETC/config.yaml" 640
    fi
    if [[ ! -e $ETC/mqtt_password ]]; then
        say "config: empty $ETC/mqtt_password (systemd's LoadCredential needs the file)"
        act install -m 600 /dev/null "$ETC/mqtt_password"
        CHANGED=1
    fi
    host chown "root:$NAME" "$ETC" "$ETC/config.yaml"
}

install_unit() {
    local changed_before=$CHANGED
    CHANGED=0
    put "$UNIT_SOURCE" "$UNIT" 644
    if ((CHANGED)); then say "unit: $UNIT"; else say "unit: $UNIT up to date"; fi
    CHANGED=$((CHANGED | changed_before))
    if [[ -n $ROOT ]] && command -v systemctl >/dev/null; then
        [[ -L $ROOT/etc/systemd/system/multi-user.target.wants/$NAME.service ]] ||
            act systemctl --quiet --root="$ROOT" enable "$NAME.service"
        return 0
    fi
    host systemctl daemon-reload
    host systemctl enable --quiet "$NAME.service"
    ((START)) || return 0
    # (Re)started when something changed or it is not running; --no-block: READY=1 waits for the camera.
    if ((CHANGED)) || [[ -n $ROOT ]] || ((DRY_RUN)) || ! systemctl is-active --quiet "$NAME.service"; then
        host systemctl restart --no-block "$NAME.service"
        say "service: (re)starting; check it with: systemctl status $NAME"
    fi
}

do_install() {
    check_os
    [[ -n $ROOT ]] || ((DRY_RUN)) || [[ $(id -u) == 0 ]] || die "run as root (sudo $0), or use --dry-run or --root DIR"
    [[ -f $MANIFEST ]] || die "model manifest $MANIFEST not found: build the model (edge-classifier-build) or pass --model"
    [[ -f $CONFIG_EXAMPLE || -e $ETC/config.yaml ]] || die "configuration example $CONFIG_EXAMPLE not found"
    [[ -f $UNIT_SOURCE ]] || die "unit file $UNIT_SOURCE not found"
    # Checked before apt when there is a Python already, so that a refusal changes nothing.
    if [[ -x $PYTHON ]]; then check_python; fi
    ((DRY_RUN)) && say "dry run: nothing is changed"
    install_apt
    check_python
    create_user
    install_venv
    install_model
    install_config
    install_unit
    if ((DRY_RUN)); then
        say "dry run: done, nothing was changed"
    elif ((CHANGED)); then
        say "installed${ROOT:+ under $ROOT}"
    else
        say "nothing to change${ROOT:+ under $ROOT}"
    fi
    echo "Configure: /etc/$NAME/config.yaml (MQTT password: /etc/$NAME/mqtt_password), then: sudo systemctl restart $NAME"
    echo "Follow the logs: journalctl -u $NAME -f"
}

do_uninstall() {
    [[ -n $ROOT ]] || ((DRY_RUN)) || [[ $(id -u) == 0 ]] || die "run as root (sudo $0), or use --dry-run or --root DIR"
    ((DRY_RUN)) && say "dry run: nothing is changed"
    say "removing the service, $OPT and $MODELS"
    if [[ -e $UNIT ]]; then
        if [[ -n $ROOT ]] && command -v systemctl >/dev/null; then
            act systemctl --quiet --root="$ROOT" disable "$NAME.service"
        else
            host systemctl disable --now "$NAME.service"
        fi
        act rm -f "$UNIT"
        host systemctl daemon-reload
    fi
    [[ ! -e $OPT ]] || act rm -rf "$OPT"
    [[ ! -e $MODELS ]] || act rm -rf "$MODELS"
    if ((PURGE)); then
        say "purging $ETC, $STATE and the user $NAME"
        [[ ! -e $ETC ]] || act rm -rf "$ETC"
        [[ ! -e $STATE ]] || act rm -rf "$STATE"
        if [[ -n $ROOT ]] || getent passwd "$NAME" >/dev/null; then host userdel "$NAME"; fi
    else
        say "kept $ETC and $STATE (--purge removes them)"
    fi
}

if [[ $MODE == install ]]; then do_install; else do_uninstall; fi
