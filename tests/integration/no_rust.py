"""An environment in which no Rust toolchain can be found: for installing the binary rocks as on a
server that has none. PATH is one directory of links to every program in /usr/local/bin, /usr/bin and
/bin except Rust's (cargo*, rust*, clippy*), so Debian's /usr/bin/cargo is as absent as rustup's
~/.cargo/bin; HOME, CARGO_HOME and RUSTUP_HOME are empty directories, and TMPDIR is the caller's, so
that anything a build would write (a target/ directory) stays where the test can look for it."""
import os
import re
import shutil
from pathlib import Path

SYSTEM_BIN = ("/usr/local/bin", "/usr/bin", "/bin")
RUST_TOOL = re.compile(r"^(cargo|rust|clippy)")


def env(root, system_bin=SYSTEM_BIN):
    """The environment, with everything under `root` (which must exist); `system_bin`: the
    directories whose programs it links."""
    root = Path(root)
    bin_dir, home, tmp = root / "usr" / "bin", root / "home", root / "tmp"
    for d in (bin_dir, home, tmp):
        d.mkdir(parents=True)
    # luarocks takes the Lua prefix from where PATH has the interpreter (here root/usr) and looks
    # for the headers under it, as it finds /usr/include on an admin's PATH
    for d in ("include", "lib", "share"):
        (root / "usr" / d).symlink_to("/usr/" + d)
    for d in system_bin:
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            link = bin_dir / name
            if RUST_TOOL.match(name) or link.exists() or link.is_symlink():
                continue
            link.symlink_to(os.path.realpath(os.path.join(d, name)))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CARGO", "RUSTUP", "RUSTC", "RUSTFLAGS"))}
    result = dict(base, PATH=str(bin_dir), HOME=str(home), CARGO_HOME=str(home / ".cargo"),
                  RUSTUP_HOME=str(home / ".rustup"), TMPDIR=str(tmp))
    for tool in ("cargo", "rustc", "rustup"):
        assert shutil.which(tool, path=result["PATH"]) is None, tool
    return result


def build_dirs(*roots):
    """Every directory named target/ or holding a Cargo.toml under `roots`: what a cargo build leaves."""
    found = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            if "target" in dirnames or "Cargo.toml" in filenames:
                found.append(dirpath)
    return found
