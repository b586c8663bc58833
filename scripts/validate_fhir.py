#!/usr/bin/env python3
"""Validate FHIR R4 (4.0.1) JSON against an implementation Vigil did not write.

Usage:
    validate_fhir.py FILE        a resource or a Bundle in FILE
    validate_fhir.py -           ... read from standard input

The structure, cardinalities, data types and primitive formats of every resource are checked
with the PyPI package fhir.resources 6.4.0, the last release for FHIR R4 (4.0.1); it needs
pydantic 1. A Bundle is checked as a whole and each entry's resource again on its own (nested
Bundles too), so that an error names the entry it is in.

fhir.resources leaves three things unchecked, so this script adds them, driven by the same
models (every element is looked up in the fhir.resources model of its type):
- the JSON format rules of FHIR R4 (http://hl7.org/fhir/R4/json.html): no null values, no empty strings, arrays or
  objects, and JSON types that match the element's (a decimal is a JSON number, not "72"; a
  boolean is true/false);
- codes of required bindings, for the closed R4 value sets listed in REQUIRED_CODES below
  (copied from the R4 specification pages named there);
- SampledData.data: decimals, or E, U, L, separated by single spaces
  (http://hl7.org/fhir/R4/datatypes.html#SampledData).

Set up once:
    python3 -m venv /tmp/fhirvenv
    /tmp/fhirvenv/bin/pip install 'fhir.resources==6.4.0' 'pydantic<2'

Example (from the repository root):
    cargo run -p vigil-fhir --example dump | /tmp/fhirvenv/bin/python scripts/validate_fhir.py -

Exit status: 0 when everything is valid, 1 when anything is not (each error is printed on
standard error), 2 when the input cannot be read or the validator is missing.
"""

import json
import re
import sys

EXPECTED_FHIR_VERSION = "4.0.1"

# Required bindings of `code` elements, keyed by (fhir.resources model name, JSON element name),
# with the complete R4 value sets (http://hl7.org/fhir/R4/valueset-<name>.html).
ISSUE_TYPES = (
    "invalid structure required value invariant security login unknown expired forbidden "
    "suppressed processing not-supported duplicate multiple-matches not-found deleted too-long "
    "code-invalid extension too-costly business-rule conflict transient lock-error no-store "
    "exception timeout incomplete throttled informational"
)
REQUIRED_CODES = {
    # valueset-observation-status
    ("Observation", "status"): "registered preliminary final amended corrected cancelled "
    "entered-in-error unknown",
    # valueset-administrative-gender
    ("Patient", "gender"): "male female other unknown",
    # valueset-identifier-use, valueset-name-use, valueset-quantity-comparator
    ("Identifier", "use"): "usual official temp secondary old",
    ("HumanName", "use"): "usual official temp nickname anonymous old maiden",
    ("Quantity", "comparator"): "< <= >= >",
    # valueset-device-status
    ("Device", "status"): "active inactive entered-in-error unknown",
    # valueset-issue-severity, valueset-issue-type
    ("OperationOutcomeIssue", "severity"): "fatal error warning information",
    ("OperationOutcomeIssue", "code"): ISSUE_TYPES,
    # valueset-bundle-type, valueset-search-entry-mode
    ("Bundle", "type"): "document message transaction transaction-response batch "
    "batch-response history searchset collection",
    ("BundleEntrySearch", "mode"): "match include outcome",
    # valueset-publication-status, valueset-capability-statement-kind, valueset-restful-capability-mode
    ("CapabilityStatement", "status"): "draft active retired unknown",
    ("CapabilityStatement", "kind"): "instance capability requirements",
    ("CapabilityStatementRest", "mode"): "client server",
    # valueset-type-restful-interaction, valueset-versioning-policy, valueset-conditional-read-status,
    # valueset-conditional-delete-status, valueset-search-param-type
    ("CapabilityStatementRestResourceInteraction", "code"): "read vread update patch delete "
    "history-instance history-type create search-type",
    ("CapabilityStatementRestResource", "versioning"): "no-version versioned versioned-update",
    ("CapabilityStatementRestResource", "conditionalRead"): "not-supported modified-since "
    "not-match full-support",
    ("CapabilityStatementRestResource", "conditionalDelete"): "not-supported single multiple",
    # valueset-audit-event-action, valueset-audit-event-outcome, valueset-network-type
    ("AuditEvent", "action"): "C R U D E",
    ("AuditEvent", "outcome"): "0 4 8 12",
    ("AuditEventAgentNetwork", "type"): "1 2 3 4 5",
    ("CapabilityStatementRestResourceSearchParam", "type"): "number date string token reference "
    "composite quantity uri special",
}


def load_validator():
    try:
        import fhir.resources
        from fhir.resources import construct_fhir_element
    except ImportError as e:
        print(
            f"validate_fhir: cannot import fhir.resources ({e}); install it with "
            "pip install 'fhir.resources==6.4.0' 'pydantic<2'",
            file=sys.stderr,
        )
        sys.exit(2)
    version = getattr(fhir.resources, "__fhir_version__", None)
    if version != EXPECTED_FHIR_VERSION:
        print(
            f"validate_fhir: fhir.resources {fhir.resources.__version__} models FHIR {version}, "
            f"not R4 {EXPECTED_FHIR_VERSION}; install fhir.resources==6.4.0",
            file=sys.stderr,
        )
        sys.exit(2)
    return construct_fhir_element


def json_format_errors(value, path):
    """FHIR R4 JSON (json.html): no nulls (outside arrays), no empty strings, arrays or objects."""
    errors = []
    if value is None:
        errors.append(f"{path}: null is not allowed")
    elif isinstance(value, str):
        if value.strip() == "":
            errors.append(f"{path}: empty or blank strings are not allowed")
    elif isinstance(value, list):
        if not value:
            errors.append(f"{path}: empty arrays are not allowed")
        for i, item in enumerate(value):
            errors.extend(json_format_errors(item, f"{path}[{i}]"))
    elif isinstance(value, dict):
        if not value:
            errors.append(f"{path}: empty objects are not allowed")
        for key, item in value.items():
            errors.extend(json_format_errors(item, f"{path}.{key}"))
    return errors


def primitive_json_type(fhirtype):
    """The JSON type FHIR R4 JSON (json.html) gives a primitive of this fhir.resources type."""
    from fhir.resources import fhirtypes

    if issubclass(fhirtype, (bool, fhirtypes.Boolean)):
        return bool, "a JSON boolean"
    if not issubclass(fhirtype, fhirtypes.Primitive):
        return None, None
    if issubclass(fhirtype, (fhirtypes.Integer, fhirtypes.PositiveInt, fhirtypes.UnsignedInt)):
        return int, "a JSON integer"
    if issubclass(fhirtype, fhirtypes.Decimal):
        return (int, float), "a JSON number"
    return str, "a JSON string"


# R4 decimal (http://hl7.org/fhir/R4/datatypes.html#decimal).
DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def is_sampled_data(text):
    return all(t in ("E", "U", "L") or DECIMAL.fullmatch(t) for t in text.split(" "))


def strict_errors(model, obj, path):
    """Element-by-element checks fhir.resources does not make (see the module docstring)."""
    from fhir.resources import get_fhir_model_class

    errors = []
    fields = {f.alias: f for f in model.__fields__.values()}
    for key, value in obj.items():
        field = fields.get(key)
        if key == "resourceType" or key.startswith("_") or field is None:
            continue  # unknown elements are fhir.resources' to report
        items = value if isinstance(value, list) else [value]
        kind = field.type_
        resource_type = getattr(kind, "__resource_type__", None)
        for i, item in enumerate(items):
            where = f"{path}.{key}" + (f"[{i}]" if isinstance(value, list) else "")
            if resource_type:
                if not isinstance(item, dict):
                    continue
                name = item.get("resourceType") if resource_type == "Resource" else resource_type
                try:
                    errors.extend(strict_errors(get_fhir_model_class(name), item, where))
                except (KeyError, LookupError, ValueError):
                    pass  # an unknown type is fhir.resources' to report
                continue
            if isinstance(kind, type):
                python_type, described = primitive_json_type(kind)
                if python_type is None:
                    continue
                is_bool = isinstance(item, bool)
                if (python_type is not bool and is_bool) or not isinstance(item, python_type):
                    errors.append(f"{where}: {json.dumps(item)} must be {described}")
                    continue
            allowed = REQUIRED_CODES.get((model.__name__, key))
            if allowed is not None and item not in allowed.split(" "):
                errors.append(f"{where}: {json.dumps(item)} is not a code of its required value set")
            if model.__name__ == "SampledData" and key == "data" and not is_sampled_data(item):
                errors.append(f"{where}: must be decimals, E, U or L separated by single spaces")
    return errors


def model_errors(construct, resource, where):
    """Errors fhir.resources finds in one resource (and, for a Bundle, in each entry alone)."""
    if not isinstance(resource, dict):
        return [f"{where}: a resource must be a JSON object"]
    kind = resource.get("resourceType")
    if not isinstance(kind, str):
        return [f"{where}: resourceType is missing"]
    where = f"{where} ({kind}/{resource.get('id', '-')})"
    errors = []
    try:
        construct(kind, resource)
    except Exception as e:  # pydantic.ValidationError, or LookupError for an unknown type
        errors.append(f"{where}: {e}")
    else:
        from fhir.resources import get_fhir_model_class

        errors.extend(strict_errors(get_fhir_model_class(kind), resource, where))
    if kind == "Bundle":
        for i, entry in enumerate(resource.get("entry") or []):
            if isinstance(entry, dict) and "resource" in entry:
                errors.extend(model_errors(construct, entry["resource"], f"{where}.entry[{i}]"))
    return errors


def count_resources(resource):
    n = 1
    if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
        for entry in resource.get("entry") or []:
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                n += count_resources(entry["resource"])
    return n


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    construct = load_validator()
    source = argv[1]
    try:
        text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
    except OSError as e:
        print(f"validate_fhir: cannot read {source}: {e}", file=sys.stderr)
        return 2
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        print(f"validate_fhir: {source} is not JSON: {e}", file=sys.stderr)
        return 1
    errors = json_format_errors(document, "$") + model_errors(construct, document, "$")
    for error in errors:
        print(error, file=sys.stderr)
    total = count_resources(document)
    if errors:
        print(f"INVALID: {len(errors)} error(s) in {total} resource(s)", file=sys.stderr)
        return 1
    print(f"valid FHIR R4 {EXPECTED_FHIR_VERSION}: {total} resource(s) checked")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
