#!/usr/bin/env bash
# What the tests need from the machine, installed and started when missing, saying what it does:
#   - chromium + chromium-driver for tests/browser (through scripts/install-browser.sh),
#   - redis-server (tests/cluster also starts private ones) answering on 127.0.0.1:6379,
#   - a PostgreSQL cluster answering on 127.0.0.1:5432, with a superuser role for this user
#     ("root" when run as root) that can log in over TCP.
# Installs with apt-get (as root, or through sudo). It never stops, drops or reconfigures a
# service that is already there: it only adds what is missing. The one change to a PostgreSQL
# configuration is a `trust` line for 127.0.0.1, and only in a cluster this script created.
#
# Sourced by scripts/test.sh (`ensure_services` exports CONFAB_TEST_REDIS_URL and
# CONFAB_TEST_DATABASE_URL), or run alone: `bash scripts/services.sh` prints the exports.
# Outside CI a service that cannot be had is reported and its variable left unset, so its tests
# skip with a notice; under CI=true it is an error.
#
# DRY_RUN=1 prints every command that would change the machine instead of running it (the checks
# still run), and REDIS_PORT / PG_PORT probe other ports: together they let one walk through the
# "nothing is installed" path on a machine where everything is.

REDIS_PORT="${REDIS_PORT:-6379}"
PG_PORT="${PG_PORT:-5432}"
# The password given to a role this script creates (a throwaway test database, loopback only).
PG_TEST_PASSWORD="confab-test"

say() { printf '==> %s\n' "$*"; }
warn() { printf '!!! %s\n' "$*" >&2; }
ci() { [ "${CI:-}" = "true" ]; }
dry() { [ "${DRY_RUN:-}" = "1" ]; }

# Runs a command that changes the machine (or, with DRY_RUN=1, shows it).
run() {
    if dry; then
        printf '    would run: %s\n' "$*"
    else
        printf '    $ %s\n' "$*"
        "$@"
    fi
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        run "$@"
    elif command -v sudo >/dev/null 2>&1; then
        run sudo "$@"
    else
        warn "need root or sudo to run: $*"
        return 1
    fi
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        run runuser -u postgres -- "$@"
    else
        run sudo -u postgres "$@"
    fi
}

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then
        as_root apt-get update || return 1
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

# Polls `$@` every 0.2 s for up to 10 s.
wait_for() {
    dry && return 0
    for _ in $(seq 1 50); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# A service could not be had: fatal under CI, a loud warning elsewhere.
missing() {
    if ci; then
        warn "$1, and CI=true forbids skipping"
        exit 1
    fi
    warn "$1: the tests that need it will skip (with a notice)"
}

ensure_browser() {
    say "browser for the end-to-end tests (chromium, chromium-driver)"
    if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
        echo "    chromium and chromedriver are installed"
    elif dry; then
        printf '    would run: bash scripts/install-browser.sh\n'
    elif ! bash scripts/install-browser.sh; then
        missing "chromium + chromium-driver could not be installed (scripts/install-browser.sh)"
    fi
}

redis_answers() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
    say "Redis on 127.0.0.1:$REDIS_PORT"
    # redis-server itself is needed even when some Redis answers: tests/cluster starts private
    # ones to stop and restart them.
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        echo "    redis-server is not installed: installing it"
        apt_install redis-server || { missing "redis-server could not be installed"; return; }
    fi
    if redis_answers; then
        echo "    Redis answers"
    else
        local dir="${TMPDIR:-/tmp}/confab-test-redis"
        echo "    nothing answers: starting a redis-server of our own (no persistence, log in $dir)"
        run mkdir -p "$dir"
        run redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
            --appendonly no --dir "$dir" --logfile "$dir/redis.log"
        wait_for redis_answers || { missing "redis-server did not answer on 127.0.0.1:$REDIS_PORT"; return; }
    fi
    export CONFAB_TEST_REDIS_URL="${CONFAB_TEST_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}"
}

pg_answers() { pg_isready -h 127.0.0.1 -p "$PG_PORT"; }
# "VERSION NAME" of the cluster on our port, if there is one.
pg_cluster() { { pg_lsclusters --no-header 2>/dev/null || true; } | awk -v port="$PG_PORT" '$3 == port { print $1, $2; exit }'; }
pg_connects() { psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1; }
# The newest PostgreSQL server installed (its major version), if any.
pg_version() { find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null | sed 's|/usr/lib/postgresql/\([^/]*\)/.*|\1|' | sort -n | tail -n1; }

ensure_postgres() {
    say "PostgreSQL on 127.0.0.1:$PG_PORT"
    local created="" version cluster
    if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(pg_version)" ]; then
        echo "    the PostgreSQL server is not installed: installing it"
        apt_install postgresql || { missing "postgresql could not be installed"; return; }
        # Debian's package creates and starts a cluster itself: one this script brought.
        created=yes
    fi
    if pg_answers >/dev/null 2>&1; then
        echo "    PostgreSQL answers"
    else
        cluster="$(pg_cluster)"
        if [ -z "$cluster" ]; then
            version="$(pg_version)"
            version="${version:-15}"
            echo "    no cluster on port $PG_PORT: creating $version/main"
            as_root pg_createcluster --port "$PG_PORT" "$version" main || { missing "pg_createcluster failed"; return; }
            created=yes
            cluster="$version main"
        else
            echo "    cluster $cluster is down: starting it"
        fi
        # shellcheck disable=SC2086 # "$cluster" is "VERSION NAME", two arguments on purpose
        as_root pg_ctlcluster --skip-systemctl-redirect $cluster start || true
        wait_for pg_answers || { missing "PostgreSQL did not answer on 127.0.0.1:$PG_PORT"; return; }
    fi
    local role url
    role="$(id -un)"
    url="${CONFAB_TEST_DATABASE_URL:-postgres://$role@127.0.0.1:$PG_PORT/postgres}"
    if pg_connects "$url"; then
        echo "    connects as $role"
        export CONFAB_TEST_DATABASE_URL="$url"
        return
    fi
    if [ -n "${CONFAB_TEST_DATABASE_URL:-}" ]; then
        missing "CONFAB_TEST_DATABASE_URL is set but does not connect"
        unset CONFAB_TEST_DATABASE_URL
        return
    fi
    if ! dry && [ "$(as_postgres psql -p "$PG_PORT" -Atqc "SELECT 1 FROM pg_roles WHERE rolname = '$role'" 2>/dev/null | tail -n1)" != 1 ]; then
        echo "    no role $role: creating it as a superuser, with a test password"
        as_postgres createuser -p "$PG_PORT" --superuser "$role" || { missing "createuser $role failed"; return; }
        as_postgres psql -p "$PG_PORT" -qc "ALTER ROLE \"$role\" PASSWORD '$PG_TEST_PASSWORD'" || { missing "could not set $role's password"; return; }
        url="postgres://$role:$PG_TEST_PASSWORD@127.0.0.1:$PG_PORT/postgres"
    elif dry; then
        printf '    would create role %s (superuser, test password) if it is missing\n' "$role"
    fi
    if ! pg_connects "$url" && [ -n "$created" ]; then
        local found
        found="$(pg_cluster)"
        cluster="${found:-$cluster}"
        local hba="/etc/postgresql/${cluster/ //}/pg_hba.conf"
        echo "    $role cannot log in over TCP: trusting 127.0.0.1 in the cluster created here ($hba)"
        as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
        # shellcheck disable=SC2086 # "$cluster" is "VERSION NAME", two arguments on purpose
        as_root pg_ctlcluster --skip-systemctl-redirect $cluster reload
    fi
    if dry; then
        echo "    (dry run) would use $url"
        export CONFAB_TEST_DATABASE_URL="$url"
    elif pg_connects "$url"; then
        echo "    connects as $role"
        export CONFAB_TEST_DATABASE_URL="$url"
    else
        missing "cannot log in to PostgreSQL as $role over 127.0.0.1; set CONFAB_TEST_DATABASE_URL (e.g. postgres://$role:PASSWORD@127.0.0.1:$PG_PORT/postgres)"
    fi
}

ensure_services() {
    ensure_browser
    ensure_redis
    ensure_postgres
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    cd "$(dirname "$0")/.."
    ensure_services
    echo
    echo "export CONFAB_TEST_REDIS_URL=${CONFAB_TEST_REDIS_URL:-}"
    echo "export CONFAB_TEST_DATABASE_URL=${CONFAB_TEST_DATABASE_URL:-}"
fi
