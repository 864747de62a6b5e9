#!/usr/bin/env bash
# The Debian package as an admin installs it, in a throwaway Debian root (a debootstrap
# --variant=minbase root, or one scripts/fresh-debian.sh kept with FRESH_ROOT):
#
#   scripts/deb-install-check.sh ROOT DEB
#
# Inside ROOT: `apt-get install ./DEB` (apt pulls in Prosody and Lua), `hmac-token keygen --write
# /etc/prosody`, Prosody started with a config that has no plugin_paths and no auth_hmac_library, a
# token from the package's hmac-token logged in over c2s (PLAIN) and refused the second time, then
# `apt-get remove`: /etc/prosody must be unchanged, no file of the package left in Prosody's module
# directory, and the running Prosody must go on logging a second token in. Exit status 0 when all
# of that holds.
#
# ROOT is changed (the package's dependencies stay installed): use a throwaway one. It runs in
# private mount and PID namespaces, so its /proc and /dev and every process started in it end with
# this script; policy-rc.d keeps packages from starting services. Needs root.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: scripts/deb-install-check.sh ROOT DEB" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "deb-install-check: run as root (chroot, namespaces)" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$1" && pwd)
deb=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
[ -x "$root/usr/bin/apt-get" ] || { echo "deb-install-check: $root is not a Debian root" >&2; exit 1; }

work=$root/tmp/deb-install-check
rm -rf "$work" && mkdir -p "$work"
cp "$deb" "$repo/tests/integration/rawxmpp.py" "$work/"
[ -e "$root/usr/sbin/policy-rc.d" ] || { printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod 755 "$root/usr/sbin/policy-rc.d"; }
cp /etc/resolv.conf "$root/etc/resolv.conf"

cat > "$work/inside.sh" <<'INSIDE'
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
work=/tmp/deb-install-check
deb=$(ls $work/prosody-auth-hmac_*.deb)
apt-get update -qq
echo "== apt-get install ./$(basename "$deb")"
apt-get install -y -q --no-install-recommends "$deb" python3 python3-websocket openssl 2>&1 \
	| grep -E "^([0-9]+ upgraded|Setting up (prosody|lua5\.4) )" || true
dpkg-query -W prosody prosody-auth-hmac lua5.4 libc6
rm -f /etc/prosody/token_secret /etc/prosody/otp_seed  # keygen never overwrites: a reused root
echo "== hmac-token keygen --write /etc/prosody"
hmac-token keygen --write /etc/prosody
before=$(find /etc/prosody -type f -exec sha256sum {} + | sort)
mkdir -p $work/data
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout $work/host.key -out $work/host.crt \
	-subj /CN=example.test -addext subjectAltName=DNS:example.test 2>/dev/null
cat > $work/prosody.cfg.lua <<CFG
run_as_root = true
daemonize = false
pidfile = "$work/prosody.pid"
data_path = "$work/data"
log = { { levels = { min = "info" }, to = "file", filename = "$work/prosody.log" } }
interfaces = { "127.0.0.1" }
c2s_ports = { $port }
modules_enabled = { "roster", "saslauth", "tls", "disco" }
modules_disabled = { "s2s" }
authentication = "hmac"
token_secret_file = "/etc/prosody/token_secret"
otp_seed_file = "/etc/prosody/otp_seed"
VirtualHost "example.test"
	ssl = { key = "$work/host.key", certificate = "$work/host.crt" }
CFG
prosody --config $work/prosody.cfg.lua -F > $work/stdout.log 2>&1 &
pid=$!
for _ in $(seq 150); do
	grep -q "Ready on example.test" $work/prosody.log 2>/dev/null \
		&& python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
	sleep 0.2
done
export TOKEN_SECRET_FILE=/etc/prosody/token_secret OTP_SEED_FILE=/etc/prosody/otp_seed
first=$(hmac-token mint --jid alice@example.test); second=$(hmac-token mint --jid alice@example.test)
login() {
	python3 -c "import sys; sys.path.insert(0, '$work'); import rawxmpp
s = rawxmpp.C2S($port, 'example.test'); print(s.auth('PLAIN', b'\\0alice\\0' + sys.argv[1].encode()).status)" "$1"
}
fail() { echo "deb-install-check: FAILED: $*" >&2; tail -20 $work/prosody.log >&2; kill $pid 2>/dev/null; exit 1; }
grep "Ready on example.test" $work/prosody.log || fail "Prosody did not load the module"
[ "$(login "$first")" = success ] || fail "the token did not log in"
[ "$(login "$first")" = failure ] || fail "the same token was not refused the second time"
echo "== a token from hmac-token mint logged in, and was refused the second time"
echo "== apt-get remove prosody-auth-hmac"
apt-get remove -y -q prosody-auth-hmac 2>&1 | grep -E "^Removing" || true
[ "$(find /etc/prosody -type f -exec sha256sum {} + | sort)" = "$before" ] || fail "/etc/prosody changed"
echo "== /etc/prosody unchanged ($(echo "$before" | wc -l) files)"
! ls /usr/lib/prosody/modules | grep -q hmac || fail "files of the package left in /usr/lib/prosody/modules"
kill -0 $pid 2>/dev/null || fail "Prosody stopped"
[ "$(login "$second")" = success ] || fail "Prosody no longer logs in"
echo "== Prosody still running and logging in"
kill $pid; wait $pid || true
echo "deb-install-check: ok"
INSIDE

exec unshare --mount --pid --fork --propagation private sh -c '
	mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && mount -t tmpfs tmpfs "$1/dev/shm" &&
	exec chroot "$1" /bin/sh /tmp/deb-install-check/inside.sh' sh "$root"
