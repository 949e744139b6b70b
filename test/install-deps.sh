#!/usr/bin/env bash
# Installs the Debian programs the tests use as real peers (DESIGN.md "Real components"):
# mosquitto-clients as a third-party MQTT client, mosquitto beside the broker in the benchmark,
# redis-server under the aedes cluster, victoria-metrics as the InfluxDB v2 write API peer of the history writer,
# chromium as the browser that drives the dashboard (test/e2e/dashboard.test.ts, via playwright-core).
# Needs root (these machines run as root); a no-op when everything is already there.
set -euo pipefail

packages=(mosquitto-clients mosquitto redis-server victoria-metrics chromium)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test/install-deps.sh: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
