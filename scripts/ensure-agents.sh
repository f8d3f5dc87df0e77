#!/usr/bin/env bash
# Install the npm packages the tests run, at the exact versions of tests/agents/package-lock.json,
# into tests/agents/node_modules (`npm ci` from the npm registry): the real coding agents that
# tests/relay/agents/ runs through TokenHub (Claude Code, Codex CLI and Gemini CLI) and axe-core,
# the accessibility checker the browser tests inject into each page. Node and npm come from Debian:
# as root on Debian it installs `nodejs npm` with apt-get when they are missing.
# Idempotent; returns at once when what is installed matches the lock file.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$root/tests/agents
stamp=$dir/node_modules/.tokenhub-installed
bins=(claude codex gemini)

installed() {
    [[ -f $stamp ]] || return 1
    # The stamp holds the checksum of the lock file the agents were installed from.
    [[ $(cat "$stamp") == $(sha256sum <"$dir/package-lock.json") ]] || return 1
    local bin
    for bin in "${bins[@]}"; do
        [[ -x $dir/node_modules/.bin/$bin ]] || return 1
    done
    [[ -f $dir/node_modules/axe-core/axe.min.js ]]
}

if installed; then
    exit 0
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "ensure-agents: node and npm are missing: run this script as root on Debian," \
            "or install Node.js (20 or later) and npm with your package manager" >&2
        exit 1
    fi
    log=$scratch/apt.log
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 nodejs npm; } \
        >"$log" 2>&1; then
        echo "ensure-agents: apt-get install nodejs npm failed:" >&2
        cat "$log" >&2
        exit 1
    fi
fi

# Gemini CLI needs Node 20 (Claude Code and Codex ship native binaries behind small
# wrappers). Debian 12's own nodejs is 18: install 20 or later from elsewhere there.
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
    echo "ensure-agents: Node.js $(node --version) is too old for Gemini CLI: install 20 or later" >&2
    exit 1
fi

echo "ensure-agents: installing the coding agents and axe-core of tests/agents/package-lock.json" >&2
cd "$dir"
# npm ci removes node_modules first: a half-finished earlier install cannot linger. Its
# output goes to stderr so that callers see progress and failures alike.
npm ci --no-audit --no-fund --loglevel=error >&2
# Each agent must start and report its pinned version (a blocked install script, say,
# would leave Claude Code's placeholder binary behind).
declare -A packages=(
    [claude]=@anthropic-ai/claude-code [codex]=@openai/codex [gemini]=@google/gemini-cli
)
for bin in "${bins[@]}"; do
    want=$(node -p "require('./package.json').dependencies['${packages[$bin]}']")
    got=$(HOME=$scratch "node_modules/.bin/$bin" --version 2>&1 || true)
    if [[ $got != *"$want"* ]]; then
        echo "ensure-agents: $bin --version says '$got', expected $want" >&2
        exit 1
    fi
done
sha256sum <package-lock.json >"$stamp"
