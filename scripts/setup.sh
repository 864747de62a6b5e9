#!/usr/bin/env bash
# Installs everything `make build`, `make test` and `make demo` need on Debian bookworm (as root).
# Idempotent: installs only what is missing, so it is quick on a machine that has run it before.
set -euo pipefail

apt_packages=(
	prosody            # the server under test (0.12.3 on bookworm), runs on Lua 5.4
	lua5.4 liblua5.4-dev
	lua-busted         # Lua unit tests (run with --lua=lua5.4)
	luarocks           # the rockspec install test
	python3-slixmpp    # the real XMPP client in the integration tests
	python3-pyotp      # the Python port of collective.converse's token minting
	python3-pytest python3-websocket
	fail2ban           # the shipped filter is checked with fail2ban-regex
	openssl ca-certificates make gcc pkg-config
	chromium           # converse.js browser tests (driven by playwright-core; no browser download)
)

missing=()
for p in "${apt_packages[@]}"; do
	[[ "$p" == \#* ]] && continue
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
	export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
	# No rustup toolchain: bookworm's rustc-web/cargo-web (1.96) are new enough (we need >= 1.88).
	missing+=(rustc-web cargo-web)
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	missing+=(nodejs npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# converse.js and playwright-core, pinned by web/package-lock.json; reinstalled when the lock changes.
here=$(cd "$(dirname "$0")/.." && pwd)
stamp="$here/web/node_modules/.lock-sha256"
want=$(sha256sum "$here/web/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
	echo "setup: npm ci in web/"
	(cd "$here/web" && npm ci --no-audit --no-fund --loglevel=error)
	echo "$want" > "$stamp"
fi

# Installing the prosody package may start the system's own Prosody (on 5222/5280). The tests use
# their own ports on 127.0.0.1 and never touch it.
command -v cargo >/dev/null || { echo "setup: cargo still not found" >&2; exit 1; }
echo "setup: ok ($(cargo --version), prosody $(dpkg-query -W -f='${Version}' prosody), $(lua5.4 -v 2>&1))"
