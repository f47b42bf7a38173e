#!/usr/bin/env bash
# Install Debian packages and make .venv with edge-classifier installed editable (for the demo and tests).
# Usage: bash deploy/dev-setup.sh "APT PACKAGES" [EXTRAS]    e.g. bash deploy/dev-setup.sh "mosquitto" build,test
set -euo pipefail
cd "$(dirname "$0")/.."
packages=${1:?usage: dev-setup.sh "APT PACKAGES" [EXTRAS]}
extras=${2:-}

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "== apt: python3-venv $packages"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086 # the package list is meant to split into words
$sudo apt-get install -y -qq --no-install-recommends python3-venv $packages >/dev/null

echo "== pip: edge-classifier${extras:+[$extras]} into .venv"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
if [[ ",$extras," == *",build,"* ]]; then
    # tf-keras and TF Model Optimization pin versions that tensorflow-cpu's own dependencies contradict;
    # --no-deps keeps the CPU wheel (tfmot's other needs, dm-tree and scipy, come with the build extra).
    .venv/bin/python -m pip install -q --no-deps tf-keras==2.21.0 tensorflow-model-optimization==0.8.1
fi
