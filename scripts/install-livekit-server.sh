#!/usr/bin/env bash
# Install the LiveKit server binary (`server`) that the tests under tests/livekit/ start on
# loopback. Idempotent: a binary of the right version is left alone; otherwise Go's module and
# build caches make a reinstall take seconds after the first (a few minutes of compiling).
#
# Pinned to v1.13.5: v1.13.0-1 and newer untagged code carry `replace` directives in go.mod,
# which `go install pkg@version` refuses. CGO_ENABLED=0 gives a static binary and needs no C
# toolchain. Usage: scripts/install-livekit-server.sh  (prints the binary's path last).
set -euo pipefail

VERSION="1.13.5"
PACKAGE="github.com/livekit/livekit-server/cmd/server@v${VERSION}"

# Go may be installed without being on PATH (the official tarball lives in /usr/local/go).
GO="${GO:-$(command -v go || true)}"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then
    GO=/usr/local/go/bin/go
fi
if [[ -z "$GO" ]]; then
    echo "install-livekit-server: Go is not installed (https://go.dev/dl/)" >&2
    exit 1
fi

# `go install` writes to GOBIN when it is set, else to GOPATH/bin (first entry of GOPATH).
BIN_DIR="$("$GO" env GOBIN)"
if [[ -z "$BIN_DIR" ]]; then
    BIN_DIR="$("$GO" env GOPATH)"
    BIN_DIR="${BIN_DIR%%:*}/bin"
fi
SERVER="$BIN_DIR/server"

installed_version() {
    # `server --version` prints "server version 1.13.5"; anything else counts as not installed.
    [[ -x "$SERVER" ]] && "$SERVER" --version 2>/dev/null | awk '{print $NF}' || true
}

if [[ "$(installed_version)" == "$VERSION" ]]; then
    echo "livekit-server $VERSION already installed" >&2
else
    echo "installing livekit-server $VERSION with $("$GO" version) (compiles for a few minutes)" >&2
    CGO_ENABLED=0 "$GO" install "$PACKAGE"
    if [[ "$(installed_version)" != "$VERSION" ]]; then
        echo "install-livekit-server: $SERVER does not report version $VERSION" >&2
        exit 1
    fi
fi
echo "$SERVER"
