#!/usr/bin/env bash
# Installs what the build, or the tests and the demo, need on Debian bookworm (as root).
#   setup.sh build   what `make build` needs: a C linker, make and a Rust toolchain (rustup's if
#                    present, else Debian's rustc-web/cargo-web). Nothing else: for a server.
#   setup.sh rocks   what `make rocks` needs besides: luarocks, zip, git and the Lua it targets
#                    (LUA_VERSION, default 5.4) with its headers (luarocks checks for them).
#   setup.sh deb     what `make deb` needs besides: Debian's packaging tools.
#   setup.sh dist    what `make dist` needs besides: rocks (Lua 5.4 and LuaJIT), deb, and each client
#                    ecosystem's own packer (python3-build, npm, composer).
#   setup.sh         that, and everything `make test`, `make demo` and `make serve` need.
#   setup.sh --list build|rocks|deb|dist|all   print the apt packages of that profile, one per line, and exit
#                    (Rust and Node only when no toolchain is found, as an install would).
# Idempotent: installs only what is missing, so it is quick on a machine that has run it before.
set -euo pipefail

profile=all list=false
case "${1:-}" in
	--list) list=true; profile=${2:-all} ;;
	"") ;;
	*) profile=$1 ;;
esac
case "$profile" in
	build|rocks|deb|dist|all) ;;
	*) echo "usage: setup.sh [build|rocks|deb|dist] | setup.sh --list build|rocks|deb|dist|all" >&2; exit 2 ;;
esac

# the native module needs no Lua headers (mlua's module mode links nothing); cargo needs a C linker
# and, to fetch the crates over HTTPS, the CA certificates (a minimal install lacks them)
build_packages=(gcc libc6-dev make ca-certificates)

lua_version=${LUA_VERSION:-5.4}
case "$lua_version" in
	luajit|jit) rock_lua=(luajit libluajit-5.1-dev) ;;
	*) rock_lua=("lua$lua_version" "liblua$lua_version-dev") ;;
esac
# make rocks: the source tarball lists what git tracks; luarocks packs with zip
rock_packages=(luarocks zip unzip git "${rock_lua[@]}")
# make deb: debhelper builds the package, lintian checks it
deb_packages=(dpkg-dev debhelper lintian)
# make dist: both binary rocks, the package, and the clients packed by their ecosystems' tools
# (python3 -m build with Debian's setuptools and wheel, npm pack, composer archive)
dist_packages=(luarocks zip unzip git lua5.4 liblua5.4-dev luajit libluajit-5.1-dev "${deb_packages[@]}"
	python3-build python3-setuptools python3-wheel composer)

test_packages=(
	prosody            # the server under test (0.12.3 on bookworm), runs on Lua 5.4
	lua5.4 liblua5.4-dev
	lua5.1 lua5.2 lua5.3 luajit  # the native module's specs run on every interpreter Prosody supports
	liblua5.1-0-dev liblua5.2-dev liblua5.3-dev  # luarocks wants the headers before any build (ours needs none)
	lua-busted lua-dkjson        # Lua unit tests (busted --lua=<interpreter>); JSON for the vectors
	lua-check pyflakes3          # make check: luacheck on lua/ and spec/, pyflakes on the Python
	luarocks zip unzip git # the rockspec, `luarocks pack` and prosodyctl install tests
	python3-slixmpp    # the real XMPP client in the integration tests
	python3-pyotp      # the Python port of collective.converse's token minting
	python3-pytest python3-websocket
	python3-pytest-xdist  # make test spreads each live pass over TEST_WORKERS processes (a module per process)
	python3-flask      # clients/python/README.md's Flask credentials example, run as written (test_credentials_example.py)
	fail2ban           # the shipped filter is checked with fail2ban-regex
	openssl pkg-config
	valgrind           # make bench: server instructions per login (callgrind)
	g++                # the fuzz targets: libfuzzer-sys compiles libFuzzer (C++); a minimal Debian has only gcc
	chromium           # converse.js browser tests (driven by playwright-core; no browser download)
	php-cli            # the PHP minting library (clients/php; Node and Python are here anyway)
	# the minting libraries as packages, built and installed offline (tests/integration/test_packages.py):
	python3-build python3-venv mypy  # sdist + wheel with Debian's setuptools; a venv; mypy --strict
	python3-setuptools # the build backend python3 -m build --no-isolation imports (trixie's python3-build does not pull it in)
	python3-wheel-whl  # pip builds the sdist offline from /usr/share/python-wheels (bookworm's setuptools needs wheel)
	node-typescript    # tsc --noEmit: a TypeScript consumer against the packed Node library's index.d.ts
	composer           # composer validate --strict; the PHP library installed through a path repository
	phpunit            # the PHP minting library's tests (clients/php/phpunit.xml.dist)
	nginx apache2      # the reverse-proxy tests run examples/nginx/ and examples/apache/ (started by the harness, never as services)
)

apt_packages=("${build_packages[@]}")
[ "$profile" = rocks ] && apt_packages+=("${rock_packages[@]}")
[ "$profile" = deb ] && apt_packages+=("${deb_packages[@]}")
[ "$profile" = dist ] && apt_packages+=("${dist_packages[@]}")
[ "$profile" = all ] && apt_packages+=("${test_packages[@]}" "${deb_packages[@]}")  # test_deb.py builds the package

missing=()
for p in "${apt_packages[@]}"; do
	[[ "$p" == \#* ]] && continue
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
	export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
	# No rustup toolchain: bookworm's rustc-web/cargo-web, new enough (>= 1.88) from bookworm-security
	# and bookworm-updates (checked below).
	missing+=(rustc-web cargo-web)
fi

if { [ "$profile" = all ] || [ "$profile" = dist ]; } && { ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; }; then
	missing+=(nodejs npm)
fi

if $list; then
	for p in "${apt_packages[@]}"; do [[ "$p" == \#* ]] || echo "$p"; done
	command -v cargo >/dev/null 2>&1 || printf '%s\n' rustc-web cargo-web
	{ [ "$profile" = all ] || [ "$profile" = dist ]; } && { command -v npm >/dev/null 2>&1 || printf '%s\n' nodejs npm; }
	exit 0
fi

if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Packages with a service (nginx, apache2) must not start it: the tests run their own on loopback ports.
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

here=$(cd "$(dirname "$0")/.." && pwd)
command -v cargo >/dev/null || { echo "setup: cargo still not found" >&2; exit 1; }
# Cargo.toml's rust-version. bookworm's rustc-web/cargo-web reach it through bookworm-security
# and bookworm-updates; the release as first published (1.85) does not.
need=1.88
have=$(cargo --version | awk '{ print $2 }')
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
	echo "setup: cargo $have is older than the $need this build needs. On Debian bookworm, enable the" \
		"bookworm-security and bookworm-updates suites in /etc/apt/sources.list(.d) and run" \
		"apt-get update && apt-get install rustc-web cargo-web; or install Rust with rustup." >&2
	exit 1
fi
if [ "$profile" != all ]; then
	echo "setup ($profile): ok ($(cargo --version))"
	exit 0
fi

# make check lints with clippy and rustfmt: rustup's components, or Debian's for its rustc-web
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
	if command -v rustup >/dev/null 2>&1; then
		echo "setup: rustup component add clippy rustfmt"
		rustup component add clippy rustfmt
	else
		echo "setup: installing rust-web-clippy rustfmt-web"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rust-web-clippy rustfmt-web >/dev/null
	fi
	cargo clippy --version >/dev/null 2>&1 && cargo fmt --version >/dev/null 2>&1 \
		|| { echo "setup: cargo clippy / cargo fmt still not found" >&2; exit 1; }
fi

# playwright-core, pinned by tests/web/package-lock.json, and converse.js's browser build in .converse/,
# pinned by tests/web/converse.sha512 (scripts/get-converse.sh: Debian's npm cannot `npm ci` it);
# each fetched again when its pin changes.
stamp="$here/tests/web/node_modules/.lock-sha256"
want=$(sha256sum "$here/tests/web/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
	echo "setup: npm ci in tests/web/ (npm $(npm --version))"
	(cd "$here/tests/web" && npm ci --no-audit --no-fund --loglevel=error)
	echo "$want" > "$stamp"
fi
if ! cmp -s "$here/tests/web/converse.sha512" "$here/.converse/.pin" 2>/dev/null; then
	bash "$here/scripts/get-converse.sh" "$here/.converse"
	cp "$here/tests/web/converse.sha512" "$here/.converse/.pin"
fi

# The live tests run against every Prosody this Debian offers. bookworm: its own 0.12, and 13 from
# bookworm-backports unpacked into .prosody13/ (never installed over 0.12; its dependencies are
# 0.12's). trixie: its own 13 (there is no 0.12 for trixie).
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
p13="$here/.prosody13"
if [ "$codename" = bookworm ]; then
	if [ ! -x "$p13/root/usr/bin/prosody" ]; then
		if ! apt-cache policy prosody 2>/dev/null | grep -q 'bpo12'; then
			# the backports suite of the mirror this machine already uses
			mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
			[ -n "$mirror" ] || mirror=$(awk '/^deb / && !/security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
			printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
				"$mirror" > /etc/apt/sources.list.d/bookworm-backports.sources
			apt-get update -qq
		fi
		rm -rf "$p13" && mkdir -p "$p13"
		(cd "$p13" && apt-get download -qq prosody/bookworm-backports 2>/dev/null)
		dpkg -x "$p13"/prosody_*.deb "$p13/root"
		echo "setup: Prosody $(cat "$p13/root/usr/lib/prosody/prosody.version") unpacked in .prosody13/"
	fi
	# its launchers look for their Lua code under /usr/lib/prosody: point them at the unpacked copy
	sed -i "s|^CFG_SOURCEDIR='/usr/lib/prosody';|CFG_SOURCEDIR='$p13/root/usr/lib/prosody';|; s|^CFG_PLUGINDIR='/usr/lib/prosody/modules/';|CFG_PLUGINDIR='$p13/root/usr/lib/prosody/modules/';|" \
		"$p13/root/usr/bin/prosody" "$p13/root/usr/bin/prosodyctl"
	modules_specs=("0.12:prosody-modules/bookworm" "13:prosody-modules/bookworm-backports")
else
	rm -rf "$p13"
	series=$(cut -d. -f1,2 /usr/lib/prosody/prosody.version); [ "${series%%.*}" = 0 ] || series=${series%%.*}
	modules_specs=("$series:prosody-modules")
fi

# prosody-modules (the community modules; mod_sasl2 for the XEP-0388 tests), unpacked and never
# installed, the build for each Prosody under test. The tests put one mod_sasl2 directory on
# plugin_paths, nothing else from it.
pm="$here/.prosody-modules"
for spec in "${modules_specs[@]}"; do
	v=${spec%%:*}
	[ -f "$pm/$v/root/usr/lib/prosody/modules/mod_sasl2/mod_sasl2.lua" ] && continue
	rm -rf "${pm:?}/$v" && mkdir -p "$pm/$v"
	(cd "$pm/$v" && apt-get download -qq "${spec#*:}" 2>/dev/null)
	dpkg -x "$pm/$v"/prosody-modules_*.deb "$pm/$v/root"
	echo "setup: $(basename "$pm/$v"/prosody-modules_*.deb) unpacked in .prosody-modules/$v/"
done

# Installing the prosody package may start the system's own Prosody (on 5222/5280). The tests use
# their own ports on 127.0.0.1 and never touch it.
echo "setup: ok ($(cargo --version), prosody $(dpkg-query -W -f='${Version}' prosody), $(lua5.4 -v 2>&1))"
