#!/bin/sh
# deb-install.sh DEB WORK DOCTOR_DIR — installs the package into a throwaway copy of this
# machine's root and reports what it finds, section by section, for TestDebianPackage.
#
# Run it in a private mount namespace (unshare --mount --propagation private): an overlay over
# / takes every write into a tmpfs mounted on WORK, and everything vanishes with the
# namespace. Nothing on the machine itself changes.
set -eu
deb=$1 work=$2 doctor=$3

mount -t tmpfs -o size=2g scimbridge-deb-test "$work"
mkdir -p "$work/upper" "$work/work" "$work/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/work" "$work/root"
R=$work/root
mount --rbind /proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/run"
mount -t tmpfs tmpfs "$R/tmp"
cp "$deb" "$R/tmp/scimbridge.deb"
cp -r "$doctor" "$R/tmp/doctor"
in_root() { chroot "$R" "$@"; }

echo "== before"
in_root getent passwd scimbridge || echo "no user"

echo "== install"
in_root env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/scimbridge.deb 2>&1

echo "== user"
in_root getent passwd scimbridge

echo "== files"
for f in /usr/bin/scimbridge /usr/lib/systemd/system/scimbridge.service /usr/lib/sysusers.d/scimbridge.conf \
	/etc/scimbridge/scimbridge.toml /usr/share/doc/scimbridge/README.md /usr/share/doc/scimbridge/changelog.Debian.gz \
	/usr/share/scimbridge/prometheus/scimbridge.rules.yml /usr/share/scimbridge/grafana/scimbridge.json \
	/usr/share/scimbridge/schema/scimbridge.schema /usr/share/scimbridge/schema/scimbridge.ldif \
	/usr/share/scimbridge/schema/scimbridge-389ds.ldif /usr/share/scimbridge/schema/60scimbridge.ldif \
	/usr/share/scimbridge/schema/scimbridge-ad.ldif /usr/share/doc/scimbridge/examples/scimbridge.service.d/allow-network.conf; do
	in_root stat -c '%n %U:%G %a' "$f"
done
in_root stat -c '%n %U:%G %a' /etc/scimbridge

echo "== conffiles"
in_root dpkg-query -W -f='${Conffiles}\n' scimbridge

echo "== enabled"
if ls "$R"/etc/systemd/system/*.wants/scimbridge.service >/dev/null 2>&1; then echo "enabled"; else echo "not enabled"; fi

echo "== verify"
in_root systemd-analyze verify /usr/lib/systemd/system/scimbridge.service 2>&1 && echo "verify ok"

echo "== version"
in_root /usr/bin/scimbridge version

echo "== doctor"
code=0
in_root /usr/bin/scimbridge doctor --config /tmp/doctor/scimbridge.toml || code=$?
echo "doctor exit $code"

echo "== reinstall"
echo "# an admin's edit" >> "$R/etc/scimbridge/scimbridge.toml"
in_root env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/scimbridge.deb >/dev/null 2>&1
tail -n 1 "$R/etc/scimbridge/scimbridge.toml"

echo "== purge"
in_root env DEBIAN_FRONTEND=noninteractive dpkg --purge scimbridge >/dev/null 2>&1
in_root test ! -e /usr/bin/scimbridge && echo "binary removed"
in_root test ! -e /etc/scimbridge/scimbridge.toml && echo "configuration removed"
echo "== end"
