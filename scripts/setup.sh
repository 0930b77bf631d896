#!/usr/bin/env bash
# Installs everything the broker and its tests need on a fresh Debian machine, and nothing that
# is already there: npm packages (better-sqlite3 builds from source), the MariaDB server used
# by the MySQL tests, and each client's toolchain (clients/*/scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# Node packages: reinstall when package-lock.json changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # `npm install` with the committed lock rather than `npm ci`: the lock cannot list the other
  # platforms' optional binaries (Biome's, buf's) when the registry mirror does not serve them,
  # and `npm ci` then refuses it as out of sync. The lock still pins every version installed.
  log "npm install"
  npm install --no-audit --no-fund >&2
fi

# Debian packages: MariaDB server binaries for the MySQL test suite (tests start their own
# throwaway server) and Chromium for the status-page test. Installed only when missing.
packages=()
if [ -z "${NERVEBUS_TEST_MYSQL_URL:-}" ] && ! command -v mariadbd >/dev/null 2>&1 && ! command -v mysqld >/dev/null 2>&1 \
  && [ ! -x /usr/sbin/mariadbd ] && [ ! -x /usr/sbin/mysqld ]; then
  packages+=(mariadb-server)
fi
# The Galera test (test/integration/mysql-galera.test.ts): the provider (mariadb-server only
# recommends it) and rsync, which moves state to a joining node.
[ -e /usr/lib/galera/libgalera_smm.so ] || [ -e /usr/lib/libgalera_smm.so ] || packages+=(galera-4)
command -v rsync >/dev/null 2>&1 || packages+=(rsync)
# The page test's screenshot needs a font as well as the browser.
[ -x /usr/bin/chromium ] || packages+=(chromium fonts-liberation)
if [ ${#packages[@]} -gt 0 ]; then
  log "apt-get install ${packages[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2
fi

for client in clients/*/; do
  if [ -f "${client}scripts/setup.sh" ]; then
    log "${client}scripts/setup.sh"
    bash "${client}scripts/setup.sh" >&2
  fi
done
