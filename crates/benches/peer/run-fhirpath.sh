#!/usr/bin/env bash
# Times the peer FHIRPath engine (npm fhirpath, fhirpath.js) on the jobs the
# Rust bench wrote to generated/fhirpath-jobs.json (run `cargo bench -p
# ehds-benches --bench fhirpath` first). Installs the pinned packages from
# package-lock.json when missing. Extra arguments go to fhirpath.mjs
# (--iterations N).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f generated/fhirpath-jobs.json ]; then
    echo "generated/fhirpath-jobs.json is missing: run 'cargo bench -p ehds-benches --bench fhirpath' first" >&2
    exit 1
fi
if [ ! -d node_modules/fhirpath ]; then
    npm ci --no-audit --no-fund
fi
exec node fhirpath.mjs "$@"
