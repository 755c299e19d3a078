#!/usr/bin/env bash
# Installs everything Realtime Gateway needs on Debian 12, from Debian's packages only.
#   tests/install-deps.sh          build and run dependencies
#   tests/install-deps.sh --package  plus what tests/package.sh needs (debhelper, lintian)
#   tests/install-deps.sh --test   plus the test peers (aiortc, Chromium, node for the
#                                  libwebrtc-based client, sanitizer runtimes) and clang with
#                                  libFuzzer (tests/fuzz; llvm for its symbolizer)
# Runs apt-get as root, or through sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

build_packages=(
  meson ninja-build pkg-config g++
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  libnice-dev libsoup-3.0-dev libjson-glib-dev libgtest-dev libhiredis-dev libpq-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-nice gstreamer1.0-tools
)
# tests/package.sh (the Debian package): debhelper, lintian; adduser for its postinst.
package_packages=(debhelper lintian fakeroot adduser)
test_packages=(
  python3 python3-aiortc python3-aiohttp python3-pytest python3-selenium
  chromium chromium-driver libasan8 libubsan1 iproute2 iptables coturn
  clang libclang-rt-14-dev llvm redis-server postgresql python3-pytest-xdist
  openssl libnss3-tools
  python3-gi gir1.2-gstreamer-1.0
)
# python3-gi, gir1.2-gstreamer-1.0: test_recording.py decodes the recordings with GStreamer.

want=("${build_packages[@]}")
if [[ "${1:-}" == "--package" ]]; then
  want+=("${package_packages[@]}")
fi
if [[ "${1:-}" == "--test" ]]; then
  want+=("${test_packages[@]}" "${package_packages[@]}")
  command -v npm >/dev/null 2>&1 || want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The platform floor (docs/media-trust.md): Debian 12's current security updates of GStreamer.
# 1.22.0-4+deb12u8 of gst-plugins-bad fixes CVE-2026-14935 and CVE-2026-59692 in its DTLS
# handling. --only-upgrade touches only the installed gstreamer packages that have a newer
# version (nothing new is installed); then the floor is checked.
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
mapfile -t gst_installed < <(dpkg-query -W -f='${Package} ${Status}\n' 'gstreamer1.0-*' \
  'libgstreamer*' 2>/dev/null | awk '/install ok installed/ {print $1}')
if ((${#gst_installed[@]})); then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --only-upgrade "${gst_installed[@]}"
fi
gst_floor="1.22.0-4+deb12u8"
gst_bad=$(dpkg-query -W -f='${Version}' gstreamer1.0-plugins-bad 2>/dev/null || true)
if [[ -z "$gst_bad" ]] || ! dpkg --compare-versions "$gst_bad" ge "$gst_floor"; then
  echo "install-deps: gstreamer1.0-plugins-bad ${gst_bad:-missing} is below $gst_floor" \
    "(CVE-2026-14935, CVE-2026-59692 in DTLS): enable bookworm-security in the apt sources" >&2
  exit 1
fi

if [[ "${1:-}" == "--test" ]]; then
  # The libwebrtc-based native test client (node + @roamhq/wrtc), from the lock file.
  (cd tests/integration/peers && { for d in @roamhq/wrtc werift openai ws @openai/agents-realtime; do [[ -d node_modules/$d ]] || { npm ci --no-audit --no-fund; break; }; done; })
fi
