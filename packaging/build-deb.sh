#!/usr/bin/env bash
# Builds foneai-bridge_VERSION_amd64.deb with debhelper from prebuilt release binaries
# (`make deb` builds them with `swift build -c release --static-swift-stdlib` first), then runs
# lintian on it.
#
#   packaging/build-deb.sh --version V --bin-dir DIR --out-dir DIR [--no-lintian]
#
# The source tree is staged in .build-deb/foneai-bridge-V/ with packaging/debian as debian/;
# when V differs from the top entry of packaging/debian/changelog a changelog entry for V is
# added to the staged copy (so a test build can bump the version without editing the repo).
set -euo pipefail
cd "$(dirname "$0")/.."

version="" bin_dir=".build/release" out_dir="out" run_lintian=1
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version="$2"; shift 2 ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --out-dir) out_dir="$2"; shift 2 ;;
    --no-lintian) run_lintian=0; shift ;;
    *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$version" ] || { echo "build-deb.sh: --version is required" >&2; exit 2; }
for exe in foneai-bridge foneaictl; do
  [ -x "$bin_dir/$exe" ] || { echo "build-deb.sh: $bin_dir/$exe missing: run 'make release'" >&2; exit 1; }
done
for tool in dpkg-buildpackage dh; do
  command -v "$tool" >/dev/null || {
    echo "build-deb.sh: $tool missing: apt-get install --no-install-recommends debhelper dpkg-dev fakeroot lintian" >&2
    exit 1
  }
done
# A statically linked Swift runtime is what makes the package installable without Swift.
if ldd "$bin_dir/foneai-bridge" | grep -qi 'libswift\|libFoundation'; then
  echo "build-deb.sh: $bin_dir/foneai-bridge links the Swift runtime dynamically;" \
       "build with: swift build -c release --static-swift-stdlib" >&2
  exit 1
fi

stage_root=".build-deb"
stage="$stage_root/foneai-bridge-$version"
rm -rf "$stage_root"
mkdir -p "$stage/bin" "$stage/etc/foneai" "$stage/docs/man" "$stage/packaging/bash-completion" "$out_dir"

cp "$bin_dir/foneai-bridge" "$bin_dir/foneaictl" "$stage/bin/"
cp etc/foneai/config.json "$stage/etc/foneai/"
cp README.md "$stage/"
cp docs/*.md "$stage/docs/"
for page in docs/man/foneai-bridge.8 docs/man/foneaictl.1; do
  sed "s/\"foneai-bridge [0-9][^\"]*\"/\"foneai-bridge $version\"/" "$page" > "$stage/$page"
done
# A completion file is sourced, not run: no #! line (lintian bash-completion-with-hashbang).
if [ -f packaging/bash-completion/foneaictl ]; then
  sed '1{/^#!/d}' packaging/bash-completion/foneaictl > "$stage/packaging/bash-completion/foneaictl"
else
  echo "build-deb.sh: warning: packaging/bash-completion/foneaictl missing;" \
       "using the one foneaictl generates" >&2
  "$bin_dir/foneaictl" --generate-completion-script bash | sed '1{/^#!/d}' \
    > "$stage/packaging/bash-completion/foneaictl"
fi

cp -r packaging/debian "$stage/debian"
cp packaging/systemd/foneai-bridge.service "$stage/debian/foneai-bridge.service"
top_version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
if [ "$top_version" != "$version" ]; then
  maintainer=$(sed -n 's/^Maintainer: //p' packaging/debian/control)
  {
    echo "foneai-bridge ($version) unstable; urgency=medium"
    echo
    echo "  * Build of version $version."
    echo
    echo " -- $maintainer  $(date -R)"
    echo
    cat packaging/debian/changelog
  } > "$stage/debian/changelog"
fi

# The unit as installed, checked against the real binary (verify needs ExecStart to exist).
if command -v systemd-analyze >/dev/null; then
  verify_dir=$(mktemp -d)
  sed "s#^ExecStart=/usr/bin/foneai-bridge#ExecStart=$(realpath "$bin_dir")/foneai-bridge#" \
    packaging/systemd/foneai-bridge.service > "$verify_dir/foneai-bridge.service"
  if ! systemd-analyze verify --man=no "$verify_dir/foneai-bridge.service"; then
    rm -rf "$verify_dir"
    echo "build-deb.sh: systemd-analyze verify found problems in packaging/systemd/foneai-bridge.service" >&2
    exit 1
  fi
  rm -rf "$verify_dir"
  echo "build-deb.sh: systemd-analyze verify foneai-bridge.service: OK"
fi

echo "build-deb.sh: building foneai-bridge $version in $stage"
(cd "$stage" && dpkg-buildpackage -b -us -uc --no-sign >../build.log 2>&1) || {
  cat "$stage_root/build.log" >&2
  echo "build-deb.sh: dpkg-buildpackage failed (log: $stage_root/build.log)" >&2
  exit 1
}
deb="foneai-bridge_${version}_amd64.deb"
cp "$stage_root/$deb" "$out_dir/$deb"
echo "build-deb.sh: $out_dir/$deb"
dpkg-deb --info "$out_dir/$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$out_dir/$deb"

if [ "$run_lintian" = 1 ]; then
  if command -v lintian >/dev/null; then
    echo "build-deb.sh: lintian $out_dir/$deb"
    lintian --display-info --fail-on error "$out_dir/$deb"
    echo "build-deb.sh: lintian: no errors"
  else
    echo "build-deb.sh: warning: lintian not installed; package not checked" >&2
  fi
fi
