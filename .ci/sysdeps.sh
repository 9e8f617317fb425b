#!/usr/bin/env bash
# Install the Debian packages covey's tests and benchmarks rely on, when root and missing.
set -euo pipefail
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)                 # the DNS SRV discovery tests
command -v chromium >/dev/null 2>&1 || need+=(chromium)            # the dashboard's browser test
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
    echo "sysdeps: not root, cannot install ${need[*]}; tests that need them will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
