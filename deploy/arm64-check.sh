#!/usr/bin/env bash
# Proves that edge-classifier runs on ARM64 (Raspberry Pi 4 and 5) and gives the same results as on x86 (step 5).
# Run by hand (takes 1-3 minutes; not part of every CI run) on an x86-64 Debian 12 host, as root:
#
#     sudo deploy/arm64-check.sh                            # default model and sample video
#     sudo deploy/arm64-check.sh --manifest /tmp/smoke/smoke.json --video clip.mp4
#
# 1. Builds a Debian 12 arm64 sysroot: debootstrap's first stage (--foreign) and `dpkg-deb -x` of the
#    packages it downloaded (no emulated second stage), plus aarch64 wheels of the same versions as the
#    x86 venv (pip --target --platform). Cached in deploy/.arm64/ (--cache), so a rerun is fast.
# 2. On x86: extracts frames of the sample video to PNG and runs the daemon's code on them and on the
#    model's self-test images: `edge-classifier classify --json` and deploy/arm64/check.py probe.
# 3. Under qemu-aarch64-static as a Cortex-A72 (Pi 4) and a Cortex-A76 (Pi 5), with the sysroot's
#    Python 3.11: the same, plus the interpreter alone on x86's input tensors. qemu's default
#    `-cpu max` gives wrong int8 results, and LiteRT crashes without an ARM /proc/cpuinfo, so each run
#    names a real core and gets a matching stand-in cpuinfo (a plain file at SYSROOT/proc/cpuinfo).
# 4. Runs deploy/install.sh --dry-run with the sysroot's bash and ARM64 commands (OS/arch detection).
# 5. Compares with x86 (thresholds in raw int8 steps of the output, 1/256 for a probabilities output):
#    - the logits entering the model's final SOFTMAX, interpreter alone on x86's tensors: identical;
#    - the SOFTMAX output: within 1, because that op runs in TFLite's builtin int8 kernel (outside
#      XNNPACK), whose x86 and ARM code paths can differ in the last bit;
#    - INTER_LINEAR_EXACT preprocessing: identical; the pipeline with it: within 1 (the SOFTMAX);
#    - the pipeline with the model's own interpolation ("area"): within --tolerance (default 2) and
#      the same top-1 label: cv2.resize INTER_AREA is off by 1 in a few pixels between x86 and ARM
#      for some frame sizes (e.g. 640x480 squashed to 64x64: 12 of 12288 values), plus the SOFTMAX step.
#    Writes deploy/.arm64/result.json (the JSON report) and exits 1 on any mismatch beyond that.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MANIFEST=$REPO/models/clothing-mobilenetv2.json
VIDEO=$REPO/models/sample/garments.mp4
CACHE=$REPO/deploy/.arm64
FRAMES=12
CORES="cortex-a72 cortex-a76"
TOLERANCE=2
PYTHON=$REPO/.venv/bin/python
MIRROR=http://deb.debian.org/debian
REBUILD=0
PACKAGES=(numpy opencv-python-headless ai-edge-litert paho-mqtt pyyaml fastjsonschema)

die() { echo "arm64-check.sh: error: $*" >&2; exit 1; }
say() { echo "==> $*"; }

usage() {
    cat <<EOF
Usage: arm64-check.sh [options]
  --manifest FILE   model manifest (default: models/clothing-mobilenetv2.json)
  --video FILE      video whose frames are compared (default: models/sample/garments.mp4)
  --frames N        frames taken from the video (default: $FRAMES)
  --cores "A B"     qemu CPU models (default: "$CORES")
  --tolerance N     largest raw int8 difference allowed for the "area" pipeline (default: $TOLERANCE)
  --python PATH     x86 Python with edge-classifier installed (default: .venv/bin/python)
  --cache DIR       sysroot, wheels and results (default: deploy/.arm64)
  --mirror URL      Debian mirror for debootstrap (default: $MIRROR)
  --rebuild         build the sysroot and wheels again
  -h, --help        this help
EOF
}

while (($#)); do
    case $1 in
        --manifest) MANIFEST=$(realpath -m "${2:?}"); shift ;;
        --video) VIDEO=$(realpath -m "${2:?}"); shift ;;
        --frames) FRAMES=${2:?}; shift ;;
        --cores) CORES=${2:?}; shift ;;
        --tolerance) TOLERANCE=${2:?}; shift ;;
        --python) PYTHON=${2:?}; shift ;;
        --cache) CACHE=$(realpath -m "${2:?}"); shift ;;
        --mirror) MIRROR=${2:?}; shift ;;
        --rebuild) REBUILD=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

SYSROOT=$CACHE/sysroot
SITE=$CACHE/site
WRAP=$CACHE/bin
WORK=$CACHE/work
RESULT=$CACHE/result.json
CHECK=$REPO/deploy/arm64/check.py
QEMU=/usr/bin/qemu-aarch64-static

[[ -f $MANIFEST ]] || die "model manifest $MANIFEST not found (build the model or pass --manifest)"
[[ -f $VIDEO ]] || die "video $VIDEO not found (pass --video)"
[[ -x $PYTHON ]] || die "x86 Python $PYTHON not found (pass --python)"

host_tools() {
    command -v debootstrap >/dev/null && [[ -x $QEMU ]] && return 0
    [[ $(id -u) == 0 ]] || die "debootstrap and qemu-user-static are missing: sudo apt-get install debootstrap qemu-user-static"
    say "host packages: debootstrap qemu-user-static"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap qemu-user-static
}

build_sysroot() {
    ((REBUILD)) && rm -rf "$SYSROOT" "$SITE" "$WRAP"
    [[ -f $SYSROOT/.ready ]] && return 0
    [[ $(id -u) == 0 ]] || die "building the sysroot needs root (debootstrap): run with sudo"
    say "sysroot: debootstrap --foreign bookworm arm64 -> $SYSROOT"
    rm -rf "$SYSROOT"
    mkdir -p "$CACHE"
    debootstrap --foreign --variant=minbase --include=python3 --arch=arm64 bookworm "$SYSROOT" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed: see $CACHE/debootstrap.log"
    local deb
    for deb in "$SYSROOT"/var/cache/apt/archives/*.deb; do
        dpkg-deb -x "$deb" "$SYSROOT"
    done
    rm -rf "$WRAP"
    touch "$SYSROOT/.ready"
}

# One wrapper per ARM64 program of the sysroot: a child started by bash under qemu would run the
# host's x86 program of that name, so PATH points here and every command runs as ARM64 too.
build_wrappers() {
    [[ -d $WRAP ]] && return 0
    mkdir -p "$WRAP.tmp"
    local f
    for f in "$SYSROOT"/usr/bin/* "$SYSROOT"/usr/sbin/*; do
        [[ -f $f && ! -e $WRAP.tmp/${f##*/} && $(head -c4 "$f" | tr -d '\0') == $'\x7fELF' ]] || continue
        printf '#!/bin/sh\nexec %s %s "$@"\n' "$QEMU" "$f" >"$WRAP.tmp/${f##*/}"
        chmod +x "$WRAP.tmp/${f##*/}"
    done
    mv "$WRAP.tmp" "$WRAP"
}

install_wheels() {
    local pins=() pkg
    for pkg in "${PACKAGES[@]}"; do
        pins+=("$pkg==$("$PYTHON" -c 'import sys; from importlib.metadata import version; print(version(sys.argv[1]))' "$pkg")")
    done
    [[ -f $SITE/.pins && $(<"$SITE/.pins") == "${pins[*]}" ]] && return 0
    say "aarch64 wheels: ${pins[*]}"
    rm -rf "$SITE"
    local platforms=() minor
    for minor in $(seq 36 -1 17); do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done
    "$PYTHON" -m pip install --quiet --no-warn-conflicts --disable-pip-version-check --target "$SITE" \
        "${platforms[@]}" --platform manylinux2014_aarch64 --only-binary=:all: --python-version 3.11 \
        --implementation cp "${pins[@]}"
    echo "${pins[*]}" >"$SITE/.pins"
}

# A stand-in /proc/cpuinfo for the emulated core, one entry per host CPU (what /sys reports).
write_cpuinfo() {
    local features part variant revision model n cpus
    case $1 in
        cortex-a72) features="fp asimd evtstrm crc32 cpuid" part=0xd08 variant=0x0 revision=3
            model="Raspberry Pi 4 Model B Rev 1.4 (emulated Cortex-A72)" ;;
        cortex-a76) features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
            part=0xd0b variant=0x4 revision=1 model="Raspberry Pi 5 Model B Rev 1.0 (emulated Cortex-A76)" ;;
        *) die "no cpuinfo for $1: use cortex-a72 or cortex-a76" ;;
    esac
    cpus=$(nproc --all)
    mkdir -p "$SYSROOT/proc"
    for ((n = 0; n < cpus; n++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\n' "$n" "$features"
        printf 'CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' "$variant" "$part" "$revision"
    done >"$SYSROOT/proc/cpuinfo"
    printf 'Model\t\t: %s\n' "$model" >>"$SYSROOT/proc/cpuinfo"
}

# Runs the sysroot's Python as an ARM64 CPU of the given model.
arm_python() {
    local core=$1
    shift
    env QEMU_LD_PREFIX="$SYSROOT" QEMU_CPU="$core" PYTHONPATH="$SITE:$WORK/app" PYTHONDONTWRITEBYTECODE=1 \
        "$QEMU" "$SYSROOT/usr/bin/python3.11" "$@"
}

selftest_images() {
    "$PYTHON" -c 'import json, sys, pathlib
m = pathlib.Path(sys.argv[1])
for case in json.loads(m.read_text()).get("selftest", []): print(m.parent / case["image"])' "$MANIFEST"
}

host_tools
mkdir -p "$CACHE"
# Ignores the whole cache (sysroot, wheels) for git and the tools that follow .gitignore (ruff).
[[ -f $CACHE/.gitignore ]] || echo '*' >"$CACHE/.gitignore"
build_sysroot
build_wrappers
install_wheels
rm -rf "$WORK"
mkdir -p "$WORK/app"
cp -r "$REPO/edge_classifier" "$WORK/app/"
find "$WORK/app" -name __pycache__ -prune -exec rm -rf {} +

say "x86: frames of ${VIDEO#"$REPO"/}, probe and classify"
selftest_images >"$WORK/images.txt"
"$PYTHON" "$CHECK" frames "$VIDEO" "$WORK/frames" --count "$FRAMES" >>"$WORK/images.txt"
mapfile -t IMAGES <"$WORK/images.txt"
"$PYTHON" "$CHECK" probe --manifest "$MANIFEST" --out "$WORK/x86.npz" "${IMAGES[@]}" 2>"$WORK/x86.probe.log" ||
    die "probe failed on x86: see $WORK/x86.probe.log"
"$PYTHON" -m edge_classifier.cli classify --json --model "$MANIFEST" "${IMAGES[@]}" >"$WORK/x86.jsonl" \
    2>"$WORK/x86.classify.log" || die "edge-classifier classify failed on x86: see $WORK/x86.classify.log"
grep -o "self-test passed.*" "$WORK/x86.classify.log" | sed 's/^/    x86: /'
PLATFORMS=()
for core in $CORES; do
    say "arm64 $core: probe and classify ${#IMAGES[@]} images under qemu"
    write_cpuinfo "$core"
    arm_python "$core" "$CHECK" probe --manifest "$MANIFEST" --tensors "$WORK/x86.npz" --out "$WORK/$core.npz" \
        "${IMAGES[@]}" 2>"$WORK/$core.probe.log" || die "probe failed on $core: see $WORK/$core.probe.log"
    arm_python "$core" -m edge_classifier.cli classify --json --model "$MANIFEST" "${IMAGES[@]}" \
        >"$WORK/$core.jsonl" 2>"$WORK/$core.classify.log" ||
        die "edge-classifier classify (and the model self-test) failed on $core: see $WORK/$core.classify.log"
    grep -o "self-test passed.*" "$WORK/$core.classify.log" | sed "s/^/    $core: /"
    PLATFORMS+=(--platform "$core" "$WORK/$core.npz" "$WORK/$core.jsonl")
done

say "arm64: deploy/install.sh --dry-run with the sysroot's bash and commands"
write_cpuinfo "${CORES%% *}"
env PATH="$WRAP" QEMU_LD_PREFIX="$SYSROOT" QEMU_CPU="${CORES%% *}" "$QEMU" "$SYSROOT/bin/bash" \
    "$REPO/deploy/install.sh" --dry-run --root "$WORK/install-root" --python "$WRAP/python3.11" \
    --model "$MANIFEST" >"$WORK/install-dry-run.log" 2>&1 || die "install.sh --dry-run failed on arm64: see $WORK/install-dry-run.log"
grep -q "==> OS: debian 12 on aarch64" "$WORK/install-dry-run.log" ||
    die "install.sh did not detect Debian 12 on aarch64: see $WORK/install-dry-run.log"
grep "==> OS:" "$WORK/install-dry-run.log"

say "comparison (tolerance $TOLERANCE for the ${MANIFEST##*/} pipeline)"
"$PYTHON" "$CHECK" report --manifest "$MANIFEST" --reference "$WORK/x86.npz" "$WORK/x86.jsonl" \
    "${PLATFORMS[@]}" --tolerance "$TOLERANCE" --out "$RESULT" || status=$?
echo "result: $RESULT"
exit "${status:-0}"
