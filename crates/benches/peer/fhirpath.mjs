// Peer for crates/benches/benches/fhirpath.rs: fhirpath.js (npm `fhirpath`,
// the HL7 JavaScript FHIRPath engine, with its R4 model) evaluates the same
// invariants on the same elements of the same document, read from
// generated/fhirpath-jobs.json (run `cargo bench -p ehds-benches --bench
// fhirpath` first). Every expression is compiled once per element type
// outside the timing; each iteration evaluates every job with %resource and
// %rootResource set. Prints the median and p90 per iteration in µs and how
// many jobs passed (empty or true), to compare with the Rust engine's count.
//
// Usage: node fhirpath.mjs [--iterations N] [--jobs generated/validator-invariant-jobs.json]
// (the second job file, written by the same bench, holds exactly the evaluations the
// validator performs on a pushed IPS; its jobs also give the %rootResource pointer).

import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4/index.js';

const here = new URL('.', import.meta.url);
const args = process.argv.slice(2);
const at = args.indexOf('--iterations');
const iterations = at >= 0 ? Number(args[at + 1]) : 2000;
const installed = JSON.parse(readFileSync(new URL('node_modules/fhirpath/package.json', here), 'utf8')).version;

const jobsAt = args.indexOf('--jobs');
const jobsFile = jobsAt >= 0 ? args[jobsAt + 1] : 'generated/fhirpath-jobs.json';
const manifest = JSON.parse(readFileSync(new URL(jobsFile, here), 'utf8'));
const root = JSON.parse(readFileSync(new URL(manifest.document, here), 'utf8'));

/** Follows a JSON pointer (`/entry/0/resource`). */
function at_pointer(pointer) {
  let node = root;
  for (const part of pointer.split('/').slice(1)) {
    node = node[/^\d+$/.test(part) ? Number(part) : part];
  }
  return node;
}

const compiled = new Map();
const jobs = manifest.jobs.map(([pointer, base, resourcePointer, expression, rootPointer]) => {
  const source = manifest.expressions[expression];
  const key = `${base}\u0000${source}`;
  if (!compiled.has(key)) {
    // trace() output is discarded, as the gateway's engine does by default.
    compiled.set(key, fhirpath.compile(base ? { base, expression: source } : source, r4, { traceFn: () => {} }));
  }
  return {
    fn: compiled.get(key),
    node: at_pointer(pointer),
    vars: {
      resource: at_pointer(resourcePointer),
      rootResource: rootPointer === undefined ? root : at_pointer(rootPointer),
    },
  };
});

function run() {
  let passed = 0;
  let errors = 0;
  for (const job of jobs) {
    try {
      const r = job.fn(job.node, job.vars);
      if (r.length === 0 || (r.length === 1 && r[0] !== false)) {
        passed += 1;
      }
    } catch {
      errors += 1;
    }
  }
  return { passed, errors };
}

for (let i = 0; i < Math.min(200, iterations); i++) run();
const times = [];
let outcome;
for (let i = 0; i < iterations; i++) {
  const t = performance.now();
  outcome = run();
  times.push((performance.now() - t) * 1000);
}
times.sort((a, b) => a - b);
const pct = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(1);
console.log(
  JSON.stringify(
    {
      peer: `fhirpath.js ${installed} (node ${process.version})`,
      jobs: jobs.length,
      passed: outcome.passed,
      errors: outcome.errors,
      median_us: Number(pct(0.5)),
      p90_us: Number(pct(0.9)),
      iterations,
      cpu: cpus()[0]?.model,
      loadavg: loadavg()[0].toFixed(2),
    },
    null,
    2,
  ),
);
