#!/usr/bin/env python3
"""Select the offline-runnable R4 cases of the fhir-test-cases validator suite.

A maintenance tool, never run by the build or the tests. Usage:

    python3 select.py SOURCE_VALIDATOR_DIR [--write]

SOURCE_VALIDATOR_DIR is a copy of fhir-test-cases `validator/` (holding
manifest-r4-ips.json, the inputs and outcomes/java/). Prints the exclusion
counts; with --write, copies the runnable cases' inputs, supporting files and
Java expected outcomes here unchanged (same relative names) and writes
manifest.json. See README.md for the rules.
"""

import collections
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORE = "hl7.fhir.r4.core"
# Registry::load keeps these types; anything else in `supporting` is not loaded.
LOADABLE = {"StructureDefinition", "ValueSet", "CodeSystem", "NamingSystem", "ConceptMap"}
# Modules whose inputs are not FHIR resources checked by the core rules, or
# that need a terminology server.
EXCLUDED_MODULES = {
    "tx": "terminology server needed (module tx)",
    "tx-advanced": "terminology server needed (module tx-advanced)",
    "cdshooks": "CDS Hooks logical model (module cdshooks)",
    "shc": "SMART Health Cards (module shc)",
    "json5": "JSON5 input (module json5)",
    "dsig": "digital signatures (module dsig)",
    "matchetype": "matchetype comparison (module matchetype)",
    "cda": "CDA logical model (module cda)",
    "logical": "logical model (module logical)",
    "scoring": "validator scoring (module scoring)",
    "package-versioning": "package version maps (module package-versioning)",
    "xver": "cross-version extensions (module xver)",
}
# Harness options that change what the Java validator checks and that the
# gateway has no counterpart for.
EXCLUDED_OPTIONS = {
    "allow-comments": "allow-comments (JSON with comments)",
    "logical": "logical model",
    "validateReference": "reference targets resolved from test files (validateReference)",
    "package-map": "package-map",
    "bundle-param": "bundle-param",
    "advisor": "validation policy advisor file",
    "certificate": "digital signature certificate",
    "security-checks": "Java option with no counterpart (security-checks)",
    "for-publication": "Java option with no counterpart (for-publication)",
    "noHtmlInMarkdown": "Java option with no counterpart (noHtmlInMarkdown)",
    "no-experimental-content": "Java option with no counterpart (no-experimental-content)",
    "fhir-validator-cli-options": "Java option with no counterpart (CLI options)",
    "new-xver-mode": "cross-version extensions (new-xver-mode)",
    "r5-bundle-relative-reference-policy": "R5 option",
    "supporting5": "R5 supporting files",
    "sct": "terminology server needed (SNOMED edition)",
    "wrong-displays": "terminology server needed (wrong-displays)",
    "language": "terminology server needed (display language)",
    "ips": "IPS package chosen by the harness (ips option)",
    "matchetype": "matchetype comparison",
    "scoring": "validator scoring",
}


def java_expectation(focus):
    """(kind, value) of a step's Java expectation, or None."""
    java = focus.get("java")
    if isinstance(java, str):
        return ("file", "outcomes/" + java)
    if isinstance(java, dict):
        if "outcome" in java:
            return ("inline", None)
        if "errorCount" in java:
            return ("inline", None)
    return None


def packages_needed(case):
    out = []
    for focus in (case, case.get("profile") or {}, case.get("logical") or {}):
        out.extend(focus.get("packages", []))
    return [p for p in out if p.split("#")[0] != CORE]


def supporting_files(case):
    files = list(case.get("supporting", [])) + list(case.get("profiles", []))
    profile = case.get("profile") or {}
    files += profile.get("supporting", [])
    source = profile.get("source")
    if source and "://" not in source:
        files.append(source)
    return files


def check_supporting(src, name):
    """Why a supporting file cannot be loaded, or None."""
    path = os.path.join(src, name)
    if not os.path.isfile(path):
        return "supporting file absent upstream"
    if not name.endswith(".json"):
        return "supporting file not JSON"
    try:
        with open(path, encoding="utf-8-sig") as f:
            resource = json.load(f)
    except ValueError:
        return "supporting file not JSON"
    rt = resource.get("resourceType")
    if rt not in LOADABLE:
        return f"supporting {rt} (not loadable: the registry keeps only StructureDefinition, ValueSet, CodeSystem, NamingSystem, ConceptMap)"
    if rt == "StructureDefinition" and "snapshot" not in resource:
        return "supporting StructureDefinition without snapshot (Java generates it; we cannot)"
    if "url" not in resource:
        return "supporting resource without url"
    return None


# Reasons that no longer exclude a case (issue 15: widen to every R4 JSON case
# whose supporting files an offline validator can load). Differential-only
# StructureDefinitions get their snapshot generated from the base; Library,
# Measure and ImplementationGuide supporting files are resources the
# validator does not need to check the input, and are skipped by the loader.
WIDENED = {
    "supporting StructureDefinition without snapshot (Java generates it; we cannot)",
    "supporting Library (not loadable: the registry keeps only StructureDefinition, ValueSet, CodeSystem, NamingSystem, ConceptMap)",
    "supporting Measure (not loadable: the registry keeps only StructureDefinition, ValueSet, CodeSystem, NamingSystem, ConceptMap)",
    "supporting ImplementationGuide (not loadable: the registry keeps only StructureDefinition, ValueSet, CodeSystem, NamingSystem, ConceptMap)",
}


def exclusion(src, case, seen):
    if case["name"] in seen:
        return "name repeated in the manifest (the Java harness keeps one)"
    if case.get("version", "5.0")[:3] != "4.0":
        return "not R4"
    if case.get("use-test") is False:
        return "disabled upstream (use-test: false)"
    if java_expectation(case) is None:
        return "no Java expectation"
    if not case["file"].endswith(".json"):
        return "input not JSON (" + case["file"].rsplit(".", 1)[-1] + ")"
    module = case.get("module")
    if module in EXCLUDED_MODULES:
        return EXCLUDED_MODULES[module]
    for option, reason in EXCLUDED_OPTIONS.items():
        if option in case:
            return reason
    if case.get("examples") is False:
        return "Java option with no counterpart (examples: false)"
    if case.get("validateContains") == "IGNORE":
        return "Java option with no counterpart (validateContains: IGNORE)"
    if any("infoway-auth-required" in t for t in case.get("tags", [])):
        return "terminology server needed (infoway)"
    needed = packages_needed(case)
    if needed:
        return "needs packages not held offline (" + ", ".join(sorted(set(p.split("#")[0] for p in needed))) + ")"
    if not os.path.isfile(os.path.join(src, case["file"])):
        return "input absent upstream"
    for name in supporting_files(case):
        why = check_supporting(src, name)
        if why and why not in WIDENED:
            return why
    for focus in (case, case.get("profile")):
        if focus:
            exp = java_expectation(focus)
            if exp is None:
                return "no Java expectation (profile step)"
            if exp[0] == "file" and not os.path.isfile(os.path.join(src, exp[1])):
                return "Java outcome file absent upstream"
    return None


def main():
    src = sys.argv[1]
    write = "--write" in sys.argv
    with open(os.path.join(src, "manifest-r4-ips.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    reasons = collections.Counter()
    kept = []
    original = []
    seen = set()
    names = collections.Counter(c["name"] for c in manifest["test-cases"])
    for case in manifest["test-cases"]:
        why = exclusion(src, case, seen if names[case["name"]] > 1 else set())
        seen.add(case["name"])
        if why:
            reasons[why] += 1
        else:
            kept.append(case)
            if not any(
                check_supporting(src, name) in WIDENED for name in supporting_files(case)
            ):
                original.append(case["name"])
    total = len(manifest["test-cases"])
    print(f"{len(kept)} runnable / {total} ({len(original)} of the original selection); excluded {total - len(kept)}:")
    for why, n in reasons.most_common():
        print(f"  {n:4}  {why}")
    if not write:
        return
    files = set()
    for case in kept:
        files.add(case["file"])
        files.update(supporting_files(case))
        for focus in (case, case.get("profile")):
            if focus and java_expectation(focus)[0] == "file":
                files.add(java_expectation(focus)[1])
    for name in sorted(files):
        dest = os.path.join(HERE, name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(os.path.join(src, name), dest)
    out = {
        "documentation": [
            "Trimmed from fhir-test-cases validator/manifest-r4-ips.json (see README.md):",
            "only the R4 cases runnable offline by crates/validation/tests/fhir_test_cases.rs.",
            "Each entry in test-cases is the upstream entry unchanged (inputs, options and the",
            "Java validator's expectations: a file under outcomes/ or inline).",
        ],
        "selected": len(kept),
        "original-selection": original,
        "upstream-r4-cases": total,
        "excluded": dict(reasons.most_common()),
        "test-cases": kept,
    }
    with open(os.path.join(HERE, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(files)} files and manifest.json")


if __name__ == "__main__":
    main()
