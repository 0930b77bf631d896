#!/usr/bin/env bash
# A throwaway MariaDB for the clients' tests (the Node tests use test/support/mariadb.ts).
#   start-mariadb.sh DIR         initializes DIR, starts mariadbd on a free loopback port (data and
#                                socket in DIR), creates the user nervebus with every privilege,
#                                prints mysql://nervebus:nervebus-test@127.0.0.1:PORT/ and returns
#   start-mariadb.sh --stop DIR  stops that server and removes DIR
# With NERVEBUS_TEST_MYSQL_URL set, `start` prints it and starts nothing (`--stop` does nothing).
set -euo pipefail
if [ "${1:-}" = "--stop" ]; then
  dir="$2"
  if [ -f "$dir/mysqld.pid" ]; then
    pid="$(cat "$dir/mysqld.pid")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
  exit 0
fi
if [ -n "${NERVEBUS_TEST_MYSQL_URL:-}" ]; then
  echo "$NERVEBUS_TEST_MYSQL_URL"
  exit 0
fi
dir="$1"
mkdir -p "$dir"
find_bin() { for n in "$@"; do for d in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do [ -x "$d/$n" ] && { echo "$d/$n"; return; }; done; done; echo "none of $* found: install mariadb-server (scripts/setup.sh does)" >&2; exit 1; }
mariadbd="$(find_bin mariadbd mysqld)"
install_db="$(find_bin mariadb-install-db mysql_install_db)"
client="$(find_bin mariadb mysql)"
user_args=()
[ "$(id -u)" = 0 ] && user_args=(--user=root)
"$install_db" --no-defaults --datadir="$dir/data" --auth-root-authentication-method=socket --skip-test-db "${user_args[@]}" >/dev/null 2>&1
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
"$mariadbd" --no-defaults --datadir="$dir/data" --socket="$dir/mysqld.sock" --port="$port" \
  --bind-address=127.0.0.1 --pid-file="$dir/mysqld.pid" --skip-log-bin --innodb-flush-log-at-trx-commit=1 \
  --innodb-buffer-pool-size=128M --max-connections=200 "${user_args[@]}" >"$dir/mysqld.log" 2>&1 &
for _ in $(seq 300); do
  "$client" --no-defaults --socket="$dir/mysqld.sock" -uroot -e "SELECT 1" >/dev/null 2>&1 && break
  sleep 0.1
done
"$client" --no-defaults --socket="$dir/mysqld.sock" -uroot -e "
  CREATE USER IF NOT EXISTS 'nervebus'@'127.0.0.1' IDENTIFIED BY 'nervebus-test';
  GRANT ALL PRIVILEGES ON *.* TO 'nervebus'@'127.0.0.1';" || { cat "$dir/mysqld.log" >&2; exit 1; }
echo "mysql://nervebus:nervebus-test@127.0.0.1:$port/"
