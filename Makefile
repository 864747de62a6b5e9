# make demo  - set up, build, start a local Prosody with the plugin and log in with a real client
# make check - the fast tier: Rust tests, busted on Lua 5.4, clippy, rustfmt, luacheck (about a minute)
# make test  - set up, build and run the whole test suite (make check first)
# make serve - the demo, then keeps Prosody and the converse.js page running for a person
#              (make serve PROXY=nginx / PROXY=apache: behind that proxy, over HTTPS)
# make deb   - the Debian package, dist/prosody-auth-hmac_<version>_<arch>.deb (debhelper, lintian)
# make dist  - every release artifact (the package, the rocks, the four client packages) in dist/,
#              with SHA256SUMS; nothing is published (docs/development.md, "Cutting a release")
# make build - the native Lua module (build/lua5.4/prosody_auth_hmac.so) and the hmac-token CLI;
#              installs only the build packages (scripts/setup.sh build), never the test set-up

SHELL := /bin/bash
# rustup's cargo lives in $CARGO_HOME/bin (default ~/.cargo/bin). prosodyctl sets HOME to Prosody's
# data directory before it runs luarocks, so a source install through it with rustup's cargo must
# pass CARGO_HOME and RUSTUP_HOME; a cargo on the system PATH (Debian's /usr/bin/cargo) needs
# nothing (see README, "Install").
CARGO_HOME ?= $(HOME)/.cargo
export PATH := $(CARGO_HOME)/bin:$(PATH)
LUA_VERSION ?= 5.4
# make rocks: a binary rock for each (5.1 .. 5.4, luajit)
ROCK_TARGETS ?= $(sort $(LUA_VERSION) luajit)
CLI := target/release/hmac-token
PY := /usr/bin/python3

.PHONY: all setup setup-build setup-rocks setup-deb setup-dist deb dist build fuzz build-all-lua check test test-rust test-lua test-integration demo serve clean

all: build

# the test, demo and benchmark set-up (and the build's)
setup:
	@bash scripts/setup.sh

setup-build:
	@bash scripts/setup.sh build

# make rocks' packages: the build's, luarocks, zip, git and each target Lua with its headers; no test set-up
setup-rocks: $(addprefix setup-rocks-,$(ROCK_TARGETS))
setup-rocks-%:
	@LUA_VERSION=$* bash scripts/setup.sh rocks

# make deb's packages: the build's and Debian's packaging tools (dpkg-dev, debhelper, lintian)
setup-deb:
	@bash scripts/setup.sh deb

deb: setup-deb
	bash scripts/deb.sh

setup-dist:
	@bash scripts/setup.sh dist

dist: setup-dist build
	bash scripts/dist.sh

build: setup-build
	cargo build --release --locked --bin hmac-token
	$(MAKE) --no-print-directory native-lua$(LUA_VERSION)

# build/<interpreter>/prosody_auth_hmac.so for one interpreter: native-lua5.1 .. native-lua5.4, native-luajit
native-%:
	CARGO_TARGET_DIR=target/$(subst .,,$*) cargo build --release --locked --lib --no-default-features --features $(subst .,,$*)
	@mkdir -p build/$*
	@# a new file renamed into place: a Prosody running with the old library keeps its copy (writing
	@# over a loaded library in place makes that Prosody crash)
	cp target/$(subst .,,$*)/release/libprosody_auth_hmac.so build/$*/prosody_auth_hmac.so.new
	mv -f build/$*/prosody_auth_hmac.so.new build/$*/prosody_auth_hmac.so

# build/<interpreter>/ for every interpreter Prosody runs on (make test builds each through the rockspec)
ALL_LUA := lua5.1 lua5.2 lua5.3 lua5.4 luajit
build-all-lua: setup-build
	@for l in $(ALL_LUA); do $(MAKE) --no-print-directory native-$$l || exit 1; done

# the fast tier (about a minute once built): Rust tests, busted on 5.4, clippy, rustfmt, luacheck
check: setup build
	@bash scripts/check.sh

# everything: the fast tier first, then every interpreter, both Prosody versions, the fuzz targets
test: setup build
	@bash scripts/test.sh

test-rust: setup build
	cargo test --release --locked

# every fuzz target for FUZZ_SECONDS each, from the committed seeds (fuzz/seeds/); make test runs
# 15 s each. Afterwards `scripts/fuzz.sh --update-seeds` folds what the run found into the seeds.
FUZZ_SECONDS ?= 600
fuzz: setup build
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

test-lua: setup build
	busted --lua=lua$(LUA_VERSION) spec

# PYTEST_ARGS='tests/integration/test_live.py -k bosh' runs a part
PYTEST_ARGS ?= tests/integration
test-integration: setup build
	$(PY) -m pytest -q $(PYTEST_ARGS)

# PROXY=nginx or PROXY=apache: the demo behind that reverse proxy (examples/nginx/, examples/apache/)
DEMO_ARGS = $(if $(PROXY),--proxy $(PROXY))
demo: setup build
	$(PY) scripts/demo.py $(DEMO_ARGS)

serve: setup build
	$(PY) scripts/demo.py --serve $(DEMO_ARGS)

clean:
	rm -rf build target

# --- luarocks (the rockspec calls these; no apt, no setup) ---
# The mlua feature for the interpreter luarocks targets: lua51..lua54, or luajit.
ROCK_FEATURE = $(shell $(LUA) -e 'io.write(jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"):gsub("%.", "")))')

.PHONY: rock-build rock-install rocks
# dist/: source tarball, source rock, and a binary rock for each of ROCK_TARGETS (dist/lua5.4/, dist/luajit/)
rocks: setup-rocks build
	ROCK_TARGETS="$(ROCK_TARGETS)" bash scripts/rocks.sh

# where rock-build builds: target/<feature>, unless the caller names a directory (make test's spec
# builds for the other interpreters share one, so the dependencies are compiled once)
ROCK_TARGET_DIR ?= target/$(ROCK_FEATURE)
rock-build:
	@command -v cargo >/dev/null || { echo "prosody-auth-hmac: cargo not found (HOME=$(HOME)). Building this rock needs Rust's cargo on the PATH (Debian: apt-get install rustc-web cargo-web); for rustup's through prosodyctl, which resets HOME, run: CARGO_HOME=/root/.cargo RUSTUP_HOME=/root/.rustup prosodyctl install <rock> (your own paths), or install the binary rock." >&2; exit 1; }
	CARGO_TARGET_DIR=$(ROCK_TARGET_DIR) cargo build --release --locked --lib --no-default-features --features $(ROCK_FEATURE)

rock-install:
	install -d "$(LIBDIR)" "$(LUADIR)"
	install -m 0755 $(ROCK_TARGET_DIR)/release/libprosody_auth_hmac.so "$(LIBDIR)/prosody_auth_hmac.so"
	install -m 0644 lua/mod_auth_hmac.lua lua/mod_sasl_hmac.lua "$(LUADIR)/"

# --- benchmarks (figures, not tests; recorded in docs/benchmarks.md) ---
.PHONY: bench bench-storm bench-cache bench-cache-cap loadgen
loadgen:
	cd tools/loadgen && cargo build --release --locked

# login storms: 2 000 (sessions held, and closed) and 20 000 distinct users at once, four modes
bench-storm: setup build loadgen
	$(PY) benches/storm_bench.py --storms 2000:held,2000,20000 --rounds 3
	$(PY) benches/storm_bench.py --storms 2000:held --rounds 1 --backlog 0
	$(PY) benches/storm_bench.py --profile 500 --concurrency 50

# the replay cache in a storm longer than an entry lives: default settings, then a small cap
bench-cache: setup build loadgen
	$(PY) benches/cache_run.py --seconds 200
bench-cache-cap: setup build loadgen
	$(PY) benches/cache_run.py --cap 20000 --seconds 200

bench: setup build loadgen
	REPO_ROOT=$(CURDIR) lua5.4 benches/lua/verify_bench.lua 2000 30
	REPO_ROOT=$(CURDIR) lua5.4 benches/lua/call_overhead.lua
	cargo bench --locked --bench verify -- --warm-up-time 1 --measurement-time 3
	cargo bench --locked --bench replay_flood -- 10000
	cargo bench --locked --bench replay_flood -- 100000
	cargo bench --locked --bench replay_flood -- 1000000
	cargo bench --locked --bench timing
	$(PY) benches/login_bench.py 3000 3 8
	$(PY) benches/login_bench.py --instructions 300 5 4
	$(PY) benches/mint_bench.py 20000 300
	$(MAKE) --no-print-directory bench-storm bench-cache bench-cache-cap
