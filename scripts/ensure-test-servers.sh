#!/usr/bin/env bash
# Make sure the binaries behind the test suite's throwaway servers are installed:
# PostgreSQL (initdb, pg_ctl, postgres), redis-server, gettext (xgettext, msgmerge, msgfmt:
# tests/test_i18n.py runs makemessages) and, optionally, chromium + chromedriver + a CJK font
# for the browser tests. Idempotent; returns at once when all is present.
# As root on Debian it installs what is missing with apt-get; otherwise it says what to install.
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
}

missing_optional() {
    [[ -x /usr/bin/chromium ]] || echo chromium
    [[ -x /usr/bin/chromedriver ]] || command -v chromedriver >/dev/null || echo chromium-driver
    command -v wrk >/dev/null || echo wrk  # load generator of benchmarks/relay_overhead.py
    # Chinese text in the browser tests' screenshots (tofu boxes without a CJK font).
    [[ -n $(fc-list :lang=zh 2>/dev/null) ]] || echo fonts-wqy-microhei
}

mapfile -t required < <(missing_required)
mapfile -t optional < <(missing_optional)

if ((${#required[@]} + ${#optional[@]} == 0)); then
    exit 0
fi

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    if ((${#required[@]} > 0)); then
        echo "ensure-test-servers: missing ${required[*]}${optional:+ ${optional[*]}}:" \
            "run this script as root on Debian, or install them with your package manager" >&2
        exit 1
    fi
    echo "ensure-test-servers: warning: ${optional[*]} not installed;" \
        "browser tests need chromium (and a CJK font for readable screenshots)," \
        "make bench needs wrk" \
        "(as root: apt-get install -y ${optional[*]})" >&2
    exit 0
fi

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

mapfile -t still < <(missing_required; missing_optional)
if ((${#still[@]} > 0)); then
    echo "ensure-test-servers: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
