#!/usr/bin/env bash
# Proves the README's two commands on a fresh Debian machine: runs `make demo`, then
# `make test`, in a minimal Debian bookworm chroot that has only what the README's premise
# says such a machine has ("a fresh Debian machine with the Rust toolchain and Python 3 with
# pip"). Everything else (Lua, busted, luarocks, curl, componentize-py, the crates) must be
# installed by the project's own scripts (scripts/deps.sh, scripts/guests.sh, cargo).
#
#   scripts/clean-room.sh [--fresh] [--prepare-only]
#     --fresh         rebuild the debootstrapped base (otherwise a complete one is reused)
#     --prepare-only  set the chroot up and check the toolchain, pip, cc, the clone and
#                     apt-get inside it, then stop without building anything
#
# Needs root (debootstrap, mount, chroot). Not part of `make test`; `make clean-room` runs it.
#
# Layout, under CLEAN_ROOM_DIR (default: <repo>/build/clean-room):
#   base/           the pristine debootstrapped root, never modified after it is built
#   base.complete   written when base/ was built completely (with the options it was built with)
#   upper/, work/   the overlayfs layers of one run (thrown away at the start of the next)
#   root/           the chroot of one run: base/ + upper/ (or a copy of base/ without overlayfs)
#   demo.log, test.log   the output of `make demo` and `make test` of the last run
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

fresh=0
prepare_only=0
for arg in "$@"; do
  case "$arg" in
    --fresh) fresh=1 ;;
    --prepare-only) prepare_only=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "clean-room: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

say() { echo "== clean-room: $*"; }
die() { echo "clean-room: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, mount, chroot): run it with sudo"

# --- Settings -------------------------------------------------------------------------------

REPO=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
CR=$(realpath -m "${CLEAN_ROOM_DIR:-$REPO/build/clean-room}")
# Mount points are matched by path below (findmnt escapes blanks): keep the path plain.
[[ "$CR" =~ ^/[A-Za-z0-9._/+-]+$ ]] || die "CLEAN_ROOM_DIR must be a plain path: $CR"
BASE=$CR/base
ROOT=$CR/root
UPPER=$CR/upper
WORK=$CR/work

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
# What the premise says a fresh machine has, and nothing that scripts/deps.sh installs:
# - python3, python3-pip, python3-venv: "Python 3 with pip";
# - ca-certificates: any networked Debian install has it (and cargo, pip, apt need it);
# - gcc, libc6-dev: a decision. The Rust toolchain cannot link without a C linker (`cc`),
#   and rustup's install notes ask for one, so a machine "with the Rust toolchain" has it;
# - make: a decision. The README's commands are `make demo` and `make test`, so make has
#   to be there before any project script can run (deps.sh cannot install it).
# CLEAN_ROOM_INCLUDE overrides the list (e.g. to test a deps.sh that installs gcc itself).
INCLUDE=${CLEAN_ROOM_INCLUDE:-python3,python3-pip,python3-venv,ca-certificates,gcc,libc6-dev,make}
# What base.complete records: a base built otherwise (or by an older recipe, see "r2") is
# rebuilt.
BASE_ID="r2 debootstrap --variant=minbase --include=$INCLUDE $SUITE $MIRROR"

# The host's Rust toolchain, bound read-only into the chroot. The chroot gets its own
# CARGO_HOME (so cargo downloads every crate itself) whose bin/ is the host's rustup proxies.
HOST_CARGO_BIN=${HOST_CARGO_BIN:-$(dirname "$(command -v cargo 2>/dev/null || echo /root/.cargo/bin/cargo)")}
HOST_RUSTUP_HOME=${HOST_RUSTUP_HOME:-${RUSTUP_HOME:-/root/.rustup}}
[ -x "$HOST_CARGO_BIN/cargo" ] || die "no cargo in $HOST_CARGO_BIN (set HOST_CARGO_BIN)"
[ -d "$HOST_RUSTUP_HOME/toolchains" ] || die "no rustup toolchains in $HOST_RUSTUP_HOME (set HOST_RUSTUP_HOME)"
# The host's default toolchain, e.g. stable-x86_64-unknown-linux-gnu.
TOOLCHAIN=${CLEAN_ROOM_TOOLCHAIN:-$(RUSTUP_HOME=$HOST_RUSTUP_HOME "$HOST_CARGO_BIN/rustup" default | awk '{print $1}')}
[ -n "$TOOLCHAIN" ] || die "could not read the host's default rustup toolchain"

# Paths inside the chroot.
IN_RUSTUP_HOME=/root/.rustup
IN_CARGO_HOME=/root/.cargo-clean
IN_SRC=/src/funcs

mkdir -p "$CR"
# One run at a time: two runs would share root/ and upper/.
exec 9>"$CR/.lock"
flock -n 9 || die "another clean-room run holds $CR/.lock"

# --- Mounts and their cleanup ---------------------------------------------------------------

# Mount points under $CR (the chroot's, and debootstrap's own if it was interrupted),
# deepest first.
mounts_under_cr() {
  findmnt -rn -o TARGET | awk -v p="$CR/" 'index($0, p) == 1' | sort -r
}

# Ends the processes still running inside the chroot (all started by this script: an
# interrupted build, a test's server), then unmounts everything under $CR. Runs on every
# exit (success, failure, Ctrl-C) and before a run, in case an earlier run was killed hard.
cleanup() {
  local pid mp pids=()
  for pid in /proc/[0-9]*; do
    [ "$(readlink "$pid/root" 2>/dev/null)" = "$ROOT" ] && pids+=("${pid#/proc/}")
  done
  if [ ${#pids[@]} -gt 0 ]; then
    echo "clean-room: stopping processes left in the chroot: ${pids[*]}" >&2
    kill -TERM "${pids[@]}" 2>/dev/null || true
    sleep 2
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
  while read -r mp; do
    [ -n "$mp" ] || continue
    umount "$mp" 2>/dev/null || umount -l "$mp" ||
      echo "clean-room: warning: could not unmount $mp" >&2
  done < <(mounts_under_cr)
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cleanup

# rm -rf, but never through a mount point (a bound /dev or /root/.rustup).
remove_tree() {
  local dir=$1
  [ -e "$dir" ] || return 0
  if findmnt -rn -o TARGET | awk -v d="$dir" '$0 == d || index($0, d "/") == 1' | grep -q .; then
    die "refusing to remove $dir: something is still mounted under it"
  fi
  rm -rf --one-file-system "$dir"
}

# bind <host path> <chroot path> [ro]
bind() {
  mkdir -p "$ROOT$2"
  mount --bind "$1" "$ROOT$2"
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$ROOT$2"; fi
}

# Runs a command in the chroot, as root, in a clean environment, from the clone.
in_root() {
  chroot "$ROOT" /usr/bin/env -i -C "$IN_SRC" \
    HOME=/root LANG=C.UTF-8 \
    PATH="$IN_CARGO_HOME/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    CARGO_HOME="$IN_CARGO_HOME" RUSTUP_HOME="$IN_RUSTUP_HOME" RUSTUP_TOOLCHAIN="$TOOLCHAIN" \
    "$@"
}

# --- 1. The pristine base: debootstrap once, reuse while complete ---------------------------

if [ "$fresh" -eq 1 ]; then
  say "--fresh: removing the base"
  remove_tree "$ROOT"
  remove_tree "$UPPER"
  remove_tree "$WORK"
  rm -f "$CR/base.complete"
  remove_tree "$BASE"
fi

if [ -d "$BASE" ] && [ "$(cat "$CR/base.complete" 2>/dev/null)" = "$BASE_ID" ]; then
  say "reusing the base $BASE ($(du -sh "$BASE" | cut -f1))"
else
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap on the host"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  # A base without its marker is an interrupted or older build: start over.
  rm -f "$CR/base.complete"
  remove_tree "$ROOT"
  remove_tree "$BASE"
  remove_tree "$BASE.tmp"
  say "debootstrap: $BASE_ID"
  start=$(date +%s)
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$BASE.tmp" "$MIRROR"
  # The sources a fresh install has: the release, its updates and security updates.
  cat > "$BASE.tmp/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
  # The /etc/hosts the Debian installer writes (debootstrap writes none).
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    > "$BASE.tmp/etc/hosts"
  # Package installs inside a chroot must not start services.
  printf '#!/bin/sh\nexit 101\n' > "$BASE.tmp/usr/sbin/policy-rc.d"
  chmod 755 "$BASE.tmp/usr/sbin/policy-rc.d"
  rm -f "$BASE.tmp"/var/cache/apt/archives/*.deb
  mv "$BASE.tmp" "$BASE"
  echo "$BASE_ID" > "$CR/base.complete"
  say "base built in $(( $(date +%s) - start ))s ($(du -sh "$BASE" | cut -f1))"
fi

# --- 2. This run's root: the pristine base plus a fresh writable layer ----------------------

remove_tree "$ROOT"
remove_tree "$UPPER"
remove_tree "$WORK"
mkdir -p "$ROOT"
if grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null; then
  mkdir -p "$UPPER" "$WORK"
  mount -t overlay clean-room -o "lowerdir=$BASE,upperdir=$UPPER,workdir=$WORK" "$ROOT"
  say "root: overlayfs over the base at $ROOT"
else
  cp -a "$BASE/." "$ROOT/"
  say "root: a copy of the base at $ROOT (no overlayfs)"
fi

# --- 3. The committed HEAD, cloned as CI would see it ---------------------------------------

if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]; then
  say "note: the working tree has uncommitted changes; they are NOT part of this run"
fi
head=$(git -C "$REPO" rev-parse HEAD)
mkdir -p "$ROOT$(dirname "$IN_SRC")"
git clone --quiet --no-local "$REPO" "$ROOT$IN_SRC"
[ "$(git -C "$ROOT$IN_SRC" rev-parse HEAD)" = "$head" ] || die "the clone is not at HEAD $head"
say "cloned $REPO at $(git -C "$REPO" log -1 --format='%h %s' | cut -c1-80)"

# --- 4. What the chroot needs from the host ------------------------------------------------

# The kernel's file systems: /proc read-write; /sys and /dev read-only, so nothing in the
# chroot (nor an rm -rf of build/ while it is mounted) can change the host's; /dev/pts for
# terminals; a private /dev/shm for POSIX shared memory.
bind /proc /proc
bind /sys /sys ro
bind /dev /dev ro
bind /dev/pts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev clean-room-shm "$ROOT/dev/shm"
# Network plumbing of this host (not of the project): name resolution for apt, cargo, pip;
# and the CAs the host trusts that Debian's bundle lacks (a TLS-intercepting egress proxy
# here), as local CAs, so they survive a regeneration of the bundle.
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  extra_cas=$(awk -v out="$ROOT/usr/local/share/ca-certificates" '
    FNR == 1 { file++ }
    /-----BEGIN CERTIFICATE-----/ { cert = ""; in_cert = 1 }
    in_cert { cert = cert $0 "\n" }
    /-----END CERTIFICATE-----/ {
      in_cert = 0
      if (file == 1) known[cert] = 1
      else if (!(cert in known)) { n++; printf "%s", cert > (out "/host-ca-" n ".crt") }
    }
    END { print n + 0 }' "$ROOT/etc/ssl/certs/ca-certificates.crt" /etc/ssl/certs/ca-certificates.crt)
  if [ "$extra_cas" -gt 0 ]; then
    chroot "$ROOT" /usr/sbin/update-ca-certificates >/dev/null 2>&1 ||
      die "update-ca-certificates failed in the chroot"
    say "added the host's $extra_cas extra CA certificate(s) to the chroot's trust store"
  fi
fi
# The Rust toolchain, read-only: the toolchains and the rustup proxies (cargo, rustc, ...).
bind "$HOST_RUSTUP_HOME" "$IN_RUSTUP_HOME" ro
bind "$HOST_CARGO_BIN" "$IN_CARGO_HOME/bin" ro

# --- Checks: the premise holds, the registries are reachable -----------------------------

say "toolchain $TOOLCHAIN; checks inside the chroot:"
in_root cargo --version
in_root rustc --version
in_root sh -c 'cc --version | head -n 1'
in_root python3 -m pip --version
in_root sh -c 'make --version | head -n 1'
in_root sh -c 'ls -d .git Makefile README.md scripts/deps.sh'
# HTTPS to the registries cargo and pip use (one small file each; apt uses plain HTTP).
in_root python3 -c '
import urllib.request
for url in ("https://index.crates.io/config.json", "https://pypi.org/simple/pip/"):
    print(urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30).status, url)'
# The clone's deps.sh list (its `packages=(...)`, read up to where it parses), split into
# what the base already has (the premise) and what deps.sh has to install.
deps_list=""
while IFS= read -r line; do
  [[ -n "$deps_list" || "$line" =~ ^packages=\( ]] || continue
  deps_list+="$line"$'\n'
  bash -n <<< "$deps_list" 2>/dev/null && break
done < "$ROOT$IN_SRC/scripts/deps.sh"
in_base=()
to_install=()
for p in $(bash -c "$deps_list"$'\n''printf "%s\n" "${packages[@]}"' 2>/dev/null); do
  if [ "$(dpkg-query --admindir="$BASE/var/lib/dpkg" -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ]; then
    in_base+=("$p")
  else
    to_install+=("$p")
  fi
done
echo "deps.sh's packages already in the base: ${in_base[*]:-none}"
echo "deps.sh's packages it has to install: ${to_install[*]:-none (or its list could not be read)}"

if [ "$prepare_only" -eq 1 ]; then
  say "apt-get update inside the chroot"
  in_root apt-get update
  say "--prepare-only: the chroot is ready; stopping before make demo / make test"
  exit 0
fi

# --- 5. The README's two commands -----------------------------------------------------------

# run <name>: `make <name>` in the chroot, output to the terminal and to $CR/<name>.log;
# sets <name>_rc and <name>_secs.
run() {
  local name=$1 start rc
  say "make $name (log: $CR/$name.log)"
  start=$(date +%s)
  set +e
  in_root make "$name" < /dev/null 2>&1 | tee "$CR/$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  printf -v "${name}_rc" '%s' "$rc"
  printf -v "${name}_secs" '%s' "$(( $(date +%s) - start ))"
}
run demo
run test

# --- 6. Summary -----------------------------------------------------------------------------

installed() {
  dpkg-query --admindir="$1/var/lib/dpkg" -W -f='${db:Status-Abbrev} ${Package}\n' |
    awk '$1 == "ii" { print $2 }' | sort
}
duration() { printf '%dm%02ds' $(( $1 / 60 )) $(( $1 % 60 )); }

echo
say "summary"
printf '  make demo: exit %s in %s\n' "$demo_rc" "$(duration "$demo_secs")"
printf '  make test: exit %s in %s\n' "$test_rc" "$(duration "$test_secs")"
echo "-- last lines of $CR/test.log:"
tail -n 15 "$CR/test.log"
echo "-- Debian packages installed in the chroot that the base did not have:"
comm -13 <(installed "$BASE") <(installed "$ROOT") | fmt -w 100 | sed 's/^/  /'

[ "$demo_rc" -eq 0 ] && [ "$test_rc" -eq 0 ]
