#!/usr/bin/env bash
# Installs what mds needs on Debian 12, only what is missing (idempotent).
#   bash scripts/setup.sh
# python3-torch (Debian's, CPU) is the reference of the model tests and the peer of bench/.
set -euo pipefail

packages=(
  g++ cmake make pkg-config ccache git
  libopenblas-dev libopenblas-openmp-dev libopenmpi-dev openmpi-bin
  nlohmann-json3-dev libcli11-dev libpcre2-dev libsentencepiece-dev zlib1g-dev libicu-dev
  libcairo2-dev fonts-dejavu-core python3-pil
  libgtest-dev libgmock-dev python3-numpy python3-torch python3-sentencepiece sentencepiece
  nodejs npm
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from outside Debian (nvm, nodesource): accept any working ones.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all dependencies present"
fi
