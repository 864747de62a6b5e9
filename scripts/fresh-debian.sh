#!/usr/bin/env bash
# Runs the README's commands on a stock Debian: a minbase root made by debootstrap with Debian's
# packages only (its suite, -updates and -security, as an installed Debian has them), the
# committed checkout cloned in, and `make TARGET` run inside for each target, timed.
#
#   scripts/fresh-debian.sh SUITE [TARGET...]     SUITE: bookworm or trixie; TARGETs default: demo test
#
# Environment:
#   FRESH_ROOT=DIR   build the root there (kept afterwards); without it a new folder under
#                    /var/tmp is made and removed at the end. A DIR that already holds a root made
#                    by this script is reused: only the checkout is cloned anew.
#   FRESH_KEEP=1     keep the folder made under /var/tmp.
#   FRESH_REV=REV    the commit to clone (default HEAD): what is committed, as CI sees it.
#   FRESH_INCREMENTAL=1  in a reused root, move the checkout there to REV instead of cloning it
#                    anew, keeping what it built and set up (quicker; not a fresh-clone run).
#   FRESH_WORKTREE=1 then copy the working tree's uncommitted changes over it (files changed or
#                    added since REV): for trying a fix inside the root, never for a recorded run.
#   FRESH_MIRROR=URL Debian mirror (default: the host's, else http://deb.debian.org/debian).
#   FRESH_DEB=FILE   after the targets pass, install this Debian package with apt in the root and
#                    log in with it (scripts/deb-install-check.sh): a package built elsewhere (a
#                    bookworm build on trixie) checked on a stock system.
#
# The root gets nothing from this machine but the checkout and, where the host has any, its extra
# CA certificates (/usr/local/share/ca-certificates): a machine behind a TLS-inspecting proxy needs
# them to reach the registries, and a stock Debian installs them with ca-certificates. Inside, the
# only package added before the README's commands is `make` itself (minbase lacks it).
# Chromium, Prosody and the proxies need /proc, /dev, /dev/pts and a tmpfs /dev/shm: they are
# mounted for the run and unmounted, and every process left in the root is killed, on any exit.
set -euo pipefail

usage() { echo "usage: scripts/fresh-debian.sh bookworm|trixie [TARGET...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
suite=$1; shift
case "$suite" in bookworm|trixie) ;; *) usage ;; esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(demo test)
[ "$(id -u)" = 0 ] || { echo "fresh-debian: run as root (debootstrap, chroot, mounts)" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
deb=
if [ -n "${FRESH_DEB:-}" ]; then
	[ -f "$FRESH_DEB" ] || { echo "fresh-debian: FRESH_DEB=$FRESH_DEB is not a file" >&2; exit 2; }
	deb=$(cd "$(dirname "$FRESH_DEB")" && pwd)/$(basename "$FRESH_DEB")
fi
rev=$(git -C "$repo" rev-parse "${FRESH_REV:-HEAD}")
command -v debootstrap >/dev/null || {
	echo "fresh-debian: installing debootstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

mirror=${FRESH_MIRROR:-}
if [ -z "$mirror" ]; then
	mirror=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi
security=${mirror%/debian}/debian-security

made_root=false
if [ -n "${FRESH_ROOT:-}" ]; then
	root=$(mkdir -p "$FRESH_ROOT" && cd "$FRESH_ROOT" && pwd)
else
	root=$(mktemp -d "/var/tmp/fresh-$suite.XXXXXX")
	made_root=true
fi
# The root's / as a Debian installs it: mktemp makes 0700, and then no user but root can reach
# anything inside (Prosody's runuser, Apache's www-data workers, the prosody user reading a config).
chmod 0755 "$root"
log=$repo/test-artifacts/fresh-$suite.log
mkdir -p "$(dirname "$log")"
: > "$log"
say() { printf '%s fresh-debian[%s]: %s\n' "$(date -u +%H:%M:%S)" "$suite" "$*" | tee -a "$log"; }

# Every process whose root is the chroot, then the mounts, deepest first.
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local p pids=()
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && pids+=("${p#/proc/}")
	done
	if [ ${#pids[@]} -gt 0 ]; then
		say "killing ${#pids[@]} processes left in the root"
		kill -9 "${pids[@]}" 2>/dev/null || true
		sleep 1
	fi
	local m
	for m in $(awk -v r="$root" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	if $made_root && [ "${FRESH_KEEP:-}" != 1 ]; then
		rm -rf --one-file-system "$root"
	else
		say "root kept in $root"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -f "$root/etc/fresh-debian-suite" ] && [ "$(cat "$root/etc/fresh-debian-suite")" = "$suite" ]; then
	say "reusing the $suite root in $root"
else
	say "debootstrap --variant=minbase $suite into $root ($mirror)"
	start=$(date +%s)
	debootstrap --variant=minbase "$suite" "$root" "$mirror" >>"$log" 2>&1 \
		|| { say "debootstrap failed (see $log)"; exit 1; }
	rm -f "$root/etc/apt/sources.list"
	cat > "$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	echo "$suite" > "$root/etc/fresh-debian-suite"
	say "root ready in $(( $(date +%s) - start )) s"
fi
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
	mkdir -p "$root/usr/local/share/ca-certificates"
	cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# The /etc/hosts Debian's installer writes (bookworm's minbase has none, so `localhost` did not resolve)
if [ ! -s "$root/etc/hosts" ]; then
	printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n' \
		> "$root/etc/hosts"
fi

# On an installed Debian / is a mount point; a bare chroot directory is not, and then
# `unshare --propagation private` (test_deb.py's private module directory, deb-install-check.sh)
# fails with "cannot change root filesystem propagation". A private bind of the root onto itself
# makes it one, and keeps every mount made inside from propagating back to this machine.
mount --bind "$root" "$root"
mount --make-private "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts" 2>/dev/null || mount --bind /dev/pts "$root/dev/pts"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"

checkout=/root/prosody-auth-hmac
if [ "${FRESH_INCREMENTAL:-}" = 1 ] && [ -d "$root$checkout/.git" ]; then
	git -C "$root$checkout" fetch -q "$repo" "$rev"
	git -C "$root$checkout" checkout -q --force "$rev"
	say "checkout moved to $(git -C "$repo" rev-parse --short "$rev") in $checkout (incremental)"
else
	rm -rf --one-file-system "$root$checkout"
	git clone -q --no-hardlinks "$repo" "$root$checkout"
	git -C "$root$checkout" checkout -q "$rev"
	say "checkout $(git -C "$repo" rev-parse --short "$rev") in $checkout (fresh clone)"
fi
if [ "${FRESH_WORKTREE:-}" = 1 ]; then
	changed=$( (git -C "$repo" diff --name-only "$rev"; git -C "$repo" ls-files --others --exclude-standard) | sort -u)
	for f in $changed; do
		if [ -e "$repo/$f" ]; then
			mkdir -p "$(dirname "$root$checkout/$f")" && cp -p "$repo/$f" "$root$checkout/$f"
		else
			rm -f "$root$checkout/$f"
		fi
	done
	say "working tree's changes copied in: $(wc -w <<<"$changed") files (not a recorded run)"
fi

# A login shell's environment as root on a fresh machine; the CA variables only where the host
# needs them for its TLS-inspecting proxy (they name the file ca-certificates writes).
envs=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb)
for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE PIP_CERT REQUESTS_CA_BUNDLE CURL_CA_BUNDLE GIT_SSL_CAINFO; do
	[ -n "${!v:-}" ] && envs+=("$v=/etc/ssl/certs/ca-certificates.crt")
done
[ -n "${CI:-}" ] && envs+=("CI=$CI")
in_root() { chroot "$root" /usr/bin/env -i "${envs[@]}" bash -c "$1"; }

if ! in_root 'command -v make' >/dev/null; then
	say "apt-get install make (the one package the README's commands need first)"
	in_root 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make >/dev/null' >>"$log" 2>&1
fi
say "$(in_root '. /etc/os-release; echo "$PRETTY_NAME"; echo "npm $(npm --version 2>/dev/null || echo absent), node $(node --version 2>/dev/null || echo absent)"' | tr '\n' ' ')"

status=0
for t in "${targets[@]}"; do
	say "make $t"
	start=$(date +%s)
	set +e
	in_root "cd $checkout && make $t" 2>&1 | tee -a "$log" | sed -u "s/^/[$suite ${t%% *}] /"
	rc=${PIPESTATUS[0]}
	set -e
	say "make $t: exit $rc in $(( $(date +%s) - start )) s"
	[ "$rc" = 0 ] || { status=$rc; break; }
done
if [ -n "$deb" ] && [ "$status" = 0 ]; then
	say "the package $(basename "$deb") ($(sha256sum "$deb" | cut -c1-16)…) installed with apt: scripts/deb-install-check.sh"
	start=$(date +%s)
	set +e
	bash "$repo/scripts/deb-install-check.sh" "$root" "$deb" 2>&1 | tee -a "$log" | sed -u "s/^/[$suite deb-install] /"
	rc=${PIPESTATUS[0]}
	set -e
	say "deb-install-check: exit $rc in $(( $(date +%s) - start )) s"
	[ "$rc" = 0 ] || status=$rc
fi
summary=$(grep -E '^(total: |=+ .*(passed|failed))' "$log" | tail -5 || true)
[ -n "$summary" ] && say "summary: $(tr '\n' ';' <<<"$summary")"
exit "$status"
