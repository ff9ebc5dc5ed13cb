#!/usr/bin/env bash
# Installs what Culvert needs to build and test on Debian 12. Idempotent: packages that
# are already installed are skipped, so this is cheap to run before every build.
set -euo pipefail

PKGS=(
  # build
  g++ cmake ninja-build ccache pkg-config
  # libraries (see README "Dependencies")
  libboost-dev libcurl4-openssl-dev nlohmann-json3-dev libsqlite3-dev libpq-dev libpqxx-dev
  libhowardhinnant-date-dev tzdata libfmt-dev libspdlog-dev libcli11-dev libtomlplusplus-dev
  libpugixml-dev libssl-dev libgtest-dev libgmock-dev libbenchmark-dev
  # YAML flow files (src/yamlflow)
  libyaml-cpp-dev
  # fuzzing (libFuzzer ships with clang)
  clang-14 libclang-rt-14-dev
  # services and peers used by the end-to-end tests
  postgresql docker.io awscli python3-botocore nodejs npm
  # a single-node Slurm 22.05 for the Slurm agent's end-to-end tests (scripts/testenv/slurm.sh)
  slurm-wlm munge
  # Slurm accounting (slurmdbd on MariaDB), so that those tests also read ends from sacct
  slurmdbd mariadb-server
  # base images the image end-to-end tests build (FROM scratch with a static busybox;
  # a Debian 12 minbase root filesystem)
  busybox-static
  debootstrap
  # the Debian package (CPack's DEB generator runs dpkg-shlibdeps)
  dpkg-dev
  # benchmarks
  python3-dask wrk hyperfine
  # the distributed maps' benchmark compares against dask.distributed (bench/maps/)
  python3-distributed
  # the web UI's end-to-end tests (tests/ui/): a headless browser for Playwright
  chromium
  # gzip of the web UI's files when they are embedded at build time
  zlib1g-dev
  # the Python SDK: its extension module (pybind11 over Python 3's headers)
  pybind11-dev python3-dev
  # the Python SDK's tests (pytest from CTest) and the pandas flow of its end-to-end test
  python3-pytest python3-pandas
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js may come from outside Debian's archive on some images; accept any working node/npm.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
filtered=()
for p in "${missing[@]}"; do [[ -n "$p" ]] && filtered+=("$p"); done
if ((${#filtered[@]})); then
  echo "install-deps: installing ${filtered[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null
fi

# npm tools for the tests (s3rver as the S3-compatible peer; playwright-core and
# @axe-core/playwright for the web UI's tests, pinned in tools/package.json).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -f "$ROOT/tools/package.json" ]] &&
   { [[ ! -x "$ROOT/tools/node_modules/.bin/s3rver" ]] ||
     [[ ! -f "$ROOT/tools/node_modules/playwright-core/package.json" ]] ||
     [[ ! -f "$ROOT/tools/node_modules/@axe-core/playwright/package.json" ]]; }; then
  echo "install-deps: npm install in tools/"
  (cd "$ROOT/tools" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi

# moto (the AWS emulator of the ECS end-to-end tests) is a Python package Debian does not
# ship; scripts/testenv/moto.sh looks for it in `python3` on PATH and in /usr/bin/python3.
# Without it those tests skip, saying so.
if ! { command -v python3 >/dev/null && python3 -c 'import moto, boto3' 2>/dev/null; } &&
   ! /usr/bin/python3 -c 'import moto, boto3' 2>/dev/null; then
  echo "install-deps: moto is not installed (python3 -m pip install 'moto[server]'): the ECS end-to-end tests will skip"
fi
