#!/usr/bin/env bash
# Builds the local test image capstan-test/busybox:latest (no registry is reachable): a rootfs
# made of Debian's busybox-static with its applet links, imported with `docker import`.
set -euo pipefail
IMAGE="${CAPSTAN_TEST_IMAGE:-capstan-test/busybox:latest}"
docker image inspect "$IMAGE" >/dev/null 2>&1 && exit 0
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/lib.sh
CAPSTAN_INFRA_TAG=test-image
source "$here/lib.sh"
[[ -x /bin/busybox ]] || apt_install busybox-static
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,tmp,etc,proc,sys,dev,root}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do [[ "$applet" == busybox ]] || ln -sf busybox "$rootfs/bin/$applet"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
echo "built $IMAGE"
