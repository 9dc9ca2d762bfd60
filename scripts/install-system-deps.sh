#!/usr/bin/env bash
# Installs the Debian packages the heavier checks and the drill use, and only those missing.
# Says what it installs. Needs root (apt-get); Python's moto, boto3 and cfn-lint come with the image.
set -euo pipefail
wanted=(keepalived ansible-core ansible-lint yamllint iproute2 nftables hyperfine time curl)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: missing ${missing[*]}; run as root (sudo) so apt-get can install them" >&2
    exit 1
  fi
  echo "install-system-deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-system-deps: ${wanted[*]} already installed"
fi
for mod in moto boto3; do
  if ! python3 -c "import $mod" 2>/dev/null; then
    echo "install-system-deps: Python module '$mod' is missing; install it with: pip install 'moto[server]==5.2.1' boto3" >&2
    exit 1
  fi
done
