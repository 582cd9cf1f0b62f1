#!/usr/bin/env bash
# The whole test suite: type check, unit + integration tests (real Dovecot, s3rver, dynalite,
# local-aws-sqs on loopback), and an offline `cdk synth`. On a fresh Debian machine, as root,
# it first installs what the tests need: Dovecot (dovecot-core, dovecot-pop3d), Courier and Cyrus
# (scripts/install-test-servers.sh) and the npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-core dovecot-pop3d)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "popdrain tests need: ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "== installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages' own services from starting: the tests start Dovecot themselves.
  policy_created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_created=1
  fi
  apt-get install -y --no-install-recommends "${missing[@]}" \
    || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
  [ "$policy_created" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
# Courier and Cyrus conflict with dovecot-pop3d as packages: unpacked into a cache, not installed.
scripts/install-test-servers.sh

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
fi

echo "== type check"
npx tsc --noEmit -p tsconfig.json

echo "== tests (vitest builds dist/ first: test/global-build.ts)"
npx vitest run

echo "== cdk synth (offline, with cdk-nag)"
# No AWS account: fake credentials, no instance-metadata probing, nothing leaves the machine.
AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=test-fake AWS_SECRET_ACCESS_KEY=test-fake AWS_REGION=us-east-1 \
  npx cdk synth --quiet > /dev/null
echo "cdk synth: ok"
