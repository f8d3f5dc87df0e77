#!/usr/bin/env bash
# Make sure the binaries behind the test suite's throwaway servers are installed.
# Required: PostgreSQL (initdb, pg_ctl, postgres), redis-server, gettext (xgettext, msgmerge,
# msgfmt: tests/test_i18n.py runs makemessages), chromium + chromedriver (the browser tests).
# Optional: a CJK font for readable screenshots, wrk for `make bench`.
# Idempotent; returns at once when all is present. As root on Debian it installs the missing
# required packages with apt-get, saying which and why first; the optional ones only with
# TEST_INSTALL_OPTIONAL=1. Otherwise it says what to install.
set -euo pipefail

have_postgres() {
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null \
        && command -v postgres >/dev/null; then
        return 0
    fi
    # Debian keeps the server binaries off PATH, in a per-version directory.
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]]; then
            return 0
        fi
    done
    return 1
}

missing_required() {
    have_postgres || echo postgresql
    command -v redis-server >/dev/null || echo redis-server
    command -v xgettext >/dev/null && command -v msgmerge >/dev/null || echo gettext
    # The portal's browser tests (Playwright drives Debian's headless Chromium).
    [[ -x /usr/bin/chromium ]] || echo chromium
    [[ -x /usr/bin/chromedriver ]] || command -v chromedriver >/dev/null || echo chromium-driver
}

missing_optional() {
    command -v wrk >/dev/null || echo wrk  # load generator of benchmarks/relay_overhead.py
    # Chinese text in the browser tests' screenshots (tofu boxes without a CJK font).
    [[ -n $(fc-list :lang=zh 2>/dev/null) ]] || echo fonts-wqy-microhei
}

# What each package is for, printed before anything is installed.
why() {
    case $1 in
    postgresql) echo "the PostgreSQL test run (initdb, pg_ctl, postgres)" ;;
    redis-server) echo "the Redis-backed test run (cache, rate limits, Celery broker)" ;;
    gettext) echo "tests/test_i18n.py (makemessages, msgfmt)" ;;
    chromium | chromium-driver) echo "the Playwright browser tests of the portal" ;;
    fonts-wqy-microhei) echo "readable Chinese text in the browser tests' screenshots" ;;
    wrk) echo "make bench (benchmarks/relay_overhead.py)" ;;
    *) echo "the test suite" ;;
    esac
}

mapfile -t required < <(missing_required)
mapfile -t optional < <(missing_optional)
want_optional=${TEST_INSTALL_OPTIONAL:-0}

if ((${#optional[@]} > 0)) && [[ $want_optional != 1 ]]; then
    echo "ensure-test-servers: optional, not installed: ${optional[*]}" \
        "(TEST_INSTALL_OPTIONAL=1 installs them)" >&2
    optional=()
fi

if ((${#required[@]} + ${#optional[@]} == 0)); then
    exit 0
fi

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "ensure-test-servers: missing ${required[*]} ${optional[*]}:" \
        "run this script as root on Debian, or install them with your package manager" >&2
    if ((${#required[@]} > 0)); then
        exit 1
    fi
    exit 0
fi

echo "ensure-test-servers: installing Debian packages with apt-get:" >&2
for package in "${required[@]}" "${optional[@]}"; do
    echo "  $package: for $(why "$package")" >&2
done

# apt output goes to a log that is shown only when something fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT

apt_quiet() {
    if ! DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$log" 2>&1; then
        echo "ensure-test-servers: apt-get $* failed:" >&2
        cat "$log" >&2
        exit 1
    fi
}

apt_quiet update -qq
apt_quiet install -y -qq -o Dpkg::Use-Pty=0 "${required[@]}" "${optional[@]}"

mapfile -t still < <(missing_required; [[ $want_optional == 1 ]] && missing_optional)
if ((${#still[@]} > 0)); then
    echo "ensure-test-servers: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
