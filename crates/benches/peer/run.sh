#!/usr/bin/env bash
# Times the peer validators (npm @medplum/core, fhir) on the inputs the Rust
# bench wrote to generated/ (run `cargo bench -p ehds-benches --bench validate`
# first). Installs the pinned packages from package-lock.json when missing.
# Extra arguments go to bench.mjs (--only name1,name2; --json out.json).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f generated/inputs.json ]; then
    echo "generated/inputs.json is missing: run 'cargo bench -p ehds-benches --bench validate' first" >&2
    exit 1
fi
if [ ! -d node_modules ]; then
    npm ci --no-audit --no-fund
fi
# The 100k-entry Bundle (~90 MB of JSON) needs more than the default heap.
exec node --max-old-space-size=8192 bench.mjs "$@"
