#!/usr/bin/env bash
# Installs the Debian packages phalanx builds, tests and benches with.
# Idempotent: prints nothing and touches nothing when every package is present.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config
  libuv1-dev libhiredis-dev libsimdjson-dev libspdlog-dev doctest-dev node-llhttp
  libssl-dev  # libcrypto: API key hashes, JWT signatures
  liburing-dev  # a wakeup's sends in one system call (src/worker/send_batch.h)
  # run and test
  redis-server curl wrk apache2-utils python3 python3-pytest socat iproute2 procps
  # strace: the accept calls a connection costs (tests/integration/test_connection_cost.py)
  strace
  # openssl: the JWT tests make RSA keys and sign tokens with its CLI
  openssl
  # systemd-analyze verify for the unit (tests/integration/test_install.py)
  systemd
  # promtool check metrics on /metrics (tests/integration/test_upstream_view.py), and
  # check/test rules for etc/prometheus (ctest promtool_*); PyYAML reads the rules
  # in tests/integration/test_observability_pack.py
  prometheus python3-yaml
  # make fuzz: clang 14 with libFuzzer and the sanitizer runtimes (libclang-rt), and
  # llvm-symbolizer for readable stacks (gcc's SANITIZE=1 build needs nothing more)
  clang-14 libclang-rt-14-dev llvm-14
  # bench anchors (../shared/bench/compare.py)
  nginx-light haproxy
  # make loadtest (scripts/loadtest/): locust for user behaviour, matplotlib for
  # the plots, psutil for per-process figures; chromium for the status page test
  python3-locust python3-matplotlib python3-psutil chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# nginx and redis packages start their services on install; phalanx never uses
# them (tests start their own on free ports). Block that, unless a policy exists.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  echo exit 101 | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
