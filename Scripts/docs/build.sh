#!/usr/bin/env bash
# Builds the DocC site of the GLaM library with the toolchain's own `docc` (no package plugin):
# symbol graphs from a build of the GLaM target, then `docc convert` with warnings as errors, laid
# out for static hosting. Output: .build-docs/site (serve it with any static web server; the pages
# live under /documentation/glam/). Scripts/docs/check_site.py opens it in a headless browser.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.build-docs
docc=${DOCC:-$(command -v docc || echo "$(dirname "$(command -v swift)")/docc")}
# The graphs are rewritten whenever the module is recompiled; an up-to-date build leaves them as they are.
rm -rf "$out/site"
mkdir -p "$out/symbol-graphs"
swift build --target GLaM --scratch-path "$out/build" \
    -Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir -Xswiftc "$out/symbol-graphs"
"$docc" convert Sources/GLaM/GLaM.docc --additional-symbol-graph-dir "$out/symbol-graphs" \
    --fallback-display-name GLaM --fallback-bundle-identifier org.glam.GLaM \
    --output-path "$out/site" --transform-for-static-hosting --warnings-as-errors
echo "DocC site: $out/site (open /documentation/glam/ on a static server)"
