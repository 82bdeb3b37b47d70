#!/usr/bin/env bash
# Installs every Debian package the build and the tests need (Debian 12, as root or with sudo).
# Nothing is downloaded at build time.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libpcre2-dev            # Unicode pre-tokenizer regexes (BPE tokenizers)
  libtomlplusplus-dev     # the momentkvd.toml configuration
  libboost-dev            # Boost.Beast / Asio: the daemon's HTTP-over-Unix-socket server
  nlohmann-json3-dev      # JSON for the daemon's API
  libsqlite3-dev sqlite3  # the telemetry database (and the CLI the fault tests and operators use)
  libgtest-dev googletest # unit and model tests
  clang-format            # the style check
  clang-14 libclang-rt-14-dev # the libFuzzer targets (scripts/test-fuzz.sh): clang and its runtimes
  llvm-14                 # llvm-symbolizer: function and line names in sanitizer reports
  systemd                 # systemd-analyze verify/security, systemd-socket-activate, sysusers, tmpfiles
  strace                  # the unit's SystemCallFilter checked against what the daemon calls
  man-db                  # man: systemd-analyze verify checks the units' Documentation= pages
  dpkg-dev file           # CPack's .deb: dpkg-shlibdeps computes the dependencies
  libbenchmark-dev        # the kernel micro-benchmarks (bench/, -DMOMENTKV_BUILD_BENCH=ON)
  g++-aarch64-linux-gnu   # cross-compiling core + kernels for Jetson (aarch64)
  libc6-dev-arm64-cross   # ... its C library
  libpcre2-dev:arm64      # ... which needs the arm64 PCRE2 (Debian multiarch)
  libtomlplusplus-dev:arm64 # ... and toml++ (configuring daemon/ in the aarch64 test build)
  libsqlite3-dev:arm64    # ... and SQLite (daemon/telemetry, same reason)
  libgtest-dev:arm64      # the aarch64 build of the tests
  libc6:arm64             # the loader + libc qemu runs them with (scripts/test-aarch64.sh)
  qemu-user               # qemu-aarch64: runs the aarch64 tests on x86 (user-mode emulation)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
