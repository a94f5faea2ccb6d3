#!/usr/bin/env bash
# Mirador for tests/test_iiif.py (not part of the package, and 2.4 MB, so not kept in git): the UMD
# bundle of mirador@4.0.0 from the npm registry, its tarball's SHA-256 checked, unpacked into
# tests/assets/mirador/mirador.min.js (git-ignored). scripts/test.sh runs it; it does nothing once
# the file is there. tests/assets/mirador/SOURCE.txt says how to move to another version.
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.0.0
tarball_sha256=ac2423944bd52ffb5a0fc02ff280c117fe39433fac56e50c0b79f0d1ca7c57e6
dest=tests/assets/mirador/mirador.min.js
[ -s "$dest" ] && exit 0
if ! command -v npm >/dev/null; then
  echo "error: fetching Mirador for tests/test_iiif.py needs npm (Debian: apt-get install npm)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "mirador@$version" >/dev/null)
echo "$tarball_sha256  $work/mirador-$version.tgz" | sha256sum --check --quiet - || {
  echo "error: mirador-$version.tgz from npm does not have the SHA-256 in $0" >&2
  exit 1
}
tar -xzf "$work/mirador-$version.tgz" -C "$work" package/dist/mirador.min.js
# The 9 MB source map is not fetched: without this line the browser asks for it (a console 404).
grep -v '^//# sourceMappingURL=' "$work/package/dist/mirador.min.js" > "$dest.part"
mv "$dest.part" "$dest"
echo "fetched Mirador $version into $dest"
