#!/usr/bin/env bash
# The README on a new user's machine: a fresh clone of this repo's HEAD, an empty HOME (so empty
# pip, uv, nox and Go caches), then the README's first command, taken from README.md as it is
# written. Fails unless it prints the agent's reply and the latency table. Run it before you
# call an install or README change done; .ci/run runs it too.
#
#   scripts/fresh-machine.sh            the demo, from nothing, then once more installed
#   scripts/fresh-machine.sh --tests    and then the README's second command (the whole suite)
#
# Needs what the README assumes a machine has: python3, git, and for --tests Go and espeak-ng.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
run_tests=${1:-}
work=$(mktemp -d)
cleanup() {
    # The demo's inference server outlives the console by design (the next run reuses it).
    for state in "$work"/run/tvoice-*/models.json; do
        [[ -f "$state" ]] && kill "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$state")" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT

# The README's commands: the first two lines of its first bash block, comments left out.
mapfile -t commands < <(awk '/^```bash$/ {inside=1; next} inside && /^```/ {exit} inside' \
    "$repo/README.md" | sed 's/[[:space:]]*#.*$//' | head -n 2)
[[ ${#commands[@]} -eq 2 ]] || { echo "fresh-machine: README.md has no two commands" >&2; exit 1; }

git clone --quiet "$repo" "$work/tvoice"
mkdir "$work/home" "$work/run"
# Nothing of this machine's caches may help: a new HOME, and no variable that points elsewhere.
unset PIP_FIND_LINKS PIP_CACHE_DIR UV_CACHE_DIR XDG_CACHE_HOME NOX_ENVDIR GOPATH GOCACHE \
    GOMODCACHE VIRTUAL_ENV
export HOME="$work/home"
# A machine of its own for the models server too (none that this machine already runs).
export XDG_RUNTIME_DIR="$work/run"
cd "$work/tvoice"

demo() {
    local log="$work/demo-$1.log" start=$SECONDS
    echo "fresh-machine: $1: ${commands[0]}" >&2
    if ! bash -c "${commands[0]}" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fresh-machine: the README's first command failed ($1)" >&2
        exit 1
    fi
    if ! grep -q '^agent: ' "$log" || ! grep -qE '^\| 1 \| ' "$log"; then
        cat "$log" >&2
        echo "fresh-machine: no reply from the agent, or no latency table ($1)" >&2
        exit 1
    fi
    grep -E '^(user|agent): |^  tool |^\| ' "$log" >&2
    echo "fresh-machine: $1: the demo answered in $((SECONDS - start)) s" >&2
}

demo "from nothing"
demo "installed"

if [[ "$run_tests" == "--tests" ]]; then
    start=$SECONDS
    echo "fresh-machine: ${commands[1]}" >&2
    bash -c "${commands[1]}"
    echo "fresh-machine: the suite passed in $((SECONDS - start)) s" >&2
fi
