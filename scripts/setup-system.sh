#!/usr/bin/env bash
# Installs the system packages layerlab needs, once. As root it uses apt-get; otherwise it
# prints the one command to run. A second run finds everything present and does nothing.
set -euo pipefail

# fuse3 brings fusermount3 and mount.fuse; libfuse3 is what layerfs's daemon loads (unionfs/lowlevel.py,
# or mfusepy); libfuse3-dev and gcc let a test compare lowlevel.py's structs with libfuse's headers.
# The rest are peers and real components used by the tests, the labs and bench/.
# busybox-static is the offline busybox image (python -m tutorials.images busybox) and the
# static busybox of podman's test image; procps gives `ps`, which `imagegraph top` runs as
# `docker top` does. podman and buildah run layerfs as their overlay mount_program
# (tests/unionfs/test_podman.py), with what they need here: an OCI runtime (crun, runc), conmon,
# the CNI plugins, slirp4netns and newuidmap (uidmap).
packages=(fuse3 libfuse3-3 libfuse3-dev gcc fuse-overlayfs unionfs-fuse docker-registry skopeo umoci
          tree attr graphviz fonts-wqy-microhei apache2-utils python3-venv curl
          podman buildah crun runc conmon containernetworking-plugins slirp4netns uidmap
          busybox-static procps)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The docker CLI is the real client of `imagegraph daemon`. Any docker on PATH will do; without
# one, Debian's docker.io brings it (its dockerd is never started: see below).
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "layerlab: please install these packages with your package manager: ${missing[*]}" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "layerlab: missing system packages; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 0
fi
echo "layerlab: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# No service may start while installing (docker.io's dockerd above all): invoke-rc.d asks
# policy-rc.d, and 101 means "not now". Ours is removed afterwards; one already there is kept.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    # One unknown name (a renamed package on another release) must not block the others.
    for p in "${missing[@]}"; do
        apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 \
            || echo "layerlab: could not install $p; the tests that need it will say so" >&2
    done
fi
# Debian starts the registry as a service on :5000, and docker.io would start dockerd: the tests
# run their own registry on a free port, and imagegraph daemon is the only daemon docker talks to.
if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now docker-registry docker.service docker.socket >/dev/null 2>&1 || true
fi
