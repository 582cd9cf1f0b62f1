#!/usr/bin/env bash
# Courier POP3 and Cyrus POP3 for the integration tests, next to Dovecot.
#
# Both packages declare `Conflicts: pop3-server`, which dovecot-pop3d provides: installing them
# with apt-get would remove Dovecot's. So their .deb files are fetched with `apt-get download` and
# unpacked with `dpkg-deb -x` into a cache folder: nothing is registered with dpkg, no maintainer
# script runs, no service starts. The tests start the servers from there (test/support/courier.ts
# runs Courier in a private mount namespace over its compiled-in paths; test/support/cyrus.ts runs
# Cyrus from its own config). Only the runtime libraries they miss are installed normally.
#
# Idempotent and non-interactive; run as root on Debian 12. When everything is in place it only
# checks and returns. The cache folder is POPDRAIN_TEST_SERVERS_DIR (default
# /var/cache/popdrain-test-servers); the harnesses read the same variable.
set -euo pipefail

CACHE="${POPDRAIN_TEST_SERVERS_DIR:-/var/cache/popdrain-test-servers}"
ROOT="$CACHE/root"
# Unpacked, never installed: the servers, their private libraries, saslpasswd2 for Cyrus's sasldb.
UNPACK=(courier-pop courier-base courier-authlib courier-authdaemon courier-authlib-userdb
  libcourier-unicode4 cyrus-pop3d cyrus-common sasl2-bin)
# Installed with apt-get when missing: shared libraries (and tools) no POP3 server package owns.
LIBS=(libpcre3 libical3 libxapian30 libidn12 libltdl7 libsasl2-2 libsasl2-modules
  libsasl2-modules-db libgdbm6 libwrap0 perl openssl util-linux)
# What the harnesses execute; each must find every library it links.
BINARIES=(usr/sbin/couriertcpd usr/bin/couriertls usr/lib/courier/courier/courierpop3login
  usr/lib/courier/courier/courierpop3d usr/lib/courier/courier-authlib/authdaemond
  usr/lib/courier/courier-authlib/makedatprog usr/lib/cyrus/bin/master usr/lib/cyrus/bin/pop3d
  usr/lib/cyrus/bin/lmtpd usr/lib/cyrus/bin/ctl_cyrusdb usr/lib/cyrus/bin/mbpath
  usr/sbin/saslpasswd2)
LIBRARY_PATH="$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/usr/lib"
STAMP="$CACHE/.complete"

missing_libraries() {
  local bin
  for bin in "${BINARIES[@]}"; do
    [ -x "$ROOT/$bin" ] || { echo "missing:$bin"; continue; }
    LD_LIBRARY_PATH="$LIBRARY_PATH" ldd "$ROOT/$bin" 2>/dev/null | awk '/not found/ { print $1 }'
  done | sort -u
}

if [ -f "$STAMP" ] && [ -z "$(missing_libraries)" ]; then
  echo "test servers: Courier and Cyrus ready in $CACHE"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-test-servers: run as root (sudo $0); it unpacks Courier and Cyrus into $CACHE" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update_once() {
  if [ "$apt_updated" = 0 ]; then apt-get update -q; apt_updated=1; fi
}

# 1. Runtime libraries, installed normally; the packages' own services must not start.
need=()
for pkg in "${LIBS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  policy_created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_created=1
  fi
  apt-get install -y -q --no-install-recommends "${need[@]}" \
    || { apt_update_once && apt-get install -y -q --no-install-recommends "${need[@]}"; }
  if [ "$policy_created" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# 2. The server packages, downloaded (apt-get download drops privileges to _apt: give it the folder).
mkdir -p "$CACHE/debs"
if id _apt >/dev/null 2>&1; then chown _apt "$CACHE/debs"; fi
fetch=()
for pkg in "${UNPACK[@]}"; do
  compgen -G "$CACHE/debs/${pkg}_*.deb" >/dev/null || fetch+=("$pkg")
done
if [ ${#fetch[@]} -gt 0 ]; then
  echo "== downloading ${fetch[*]}"
  (cd "$CACHE/debs" && { apt-get download -q "${fetch[@]}" || { apt_update_once && apt-get download -q "${fetch[@]}"; }; })
fi

# 3. Unpacked side by side into a fresh tree, swapped in whole.
echo "== unpacking into $ROOT"
rm -rf "$ROOT.new"
mkdir -p "$ROOT.new"
for pkg in "${UNPACK[@]}"; do
  for deb in "$CACHE/debs/${pkg}"_*.deb; do dpkg-deb -x "$deb" "$ROOT.new"; done
done
rm -rf "$ROOT"
mv "$ROOT.new" "$ROOT"
# Cyrus and Courier are started by the tests; their dirs must be reachable by the mail user.
chmod 755 "$CACHE"

left="$(missing_libraries)"
if [ -n "$left" ]; then
  echo "install-test-servers: still missing after install: $left" >&2
  exit 1
fi
touch "$STAMP"
echo "test servers: Courier and Cyrus ready in $CACHE"
