#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then exit.
# - Debian packages for real SSH servers, daemons and databases (when run as root)
# - a virtualenv in .venv with orch and its test dependencies
# - a running PostgreSQL with role/database orch_test (tests read ORCH_TEST_PG_URL, default below)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(openssh-server openssh-client chrony dnsmasq openvpn postgresql curl openssl
          iptables iproute2 faketime libfaketime procps busybox python3-venv)
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    # Keep Debian from starting the new daemons: chronyd would contact public NTP servers.
    # The tests start their own copies on loopback or inside network namespaces.
    guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      guard=/usr/sbin/policy-rc.d
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -n "$guard" ] && rm -f "$guard"
  fi
else
  echo "setup: not root: skipping Debian packages (lab and PostgreSQL tests will skip)" >&2
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

if [ "$(id -u)" = 0 ]; then
  bash .ci/postgres.sh >/dev/null
fi
echo "setup: done" >&2
