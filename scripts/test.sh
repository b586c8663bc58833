#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh machine, then runs every test.
#   ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
# SQLCipher's vendored OpenSSL (rusqlite bundled-sqlcipher-vendored-openssl) builds with perl and make.
command -v perl >/dev/null 2>&1 || need_apt+=(perl)
command -v make >/dev/null 2>&1 || need_apt+=(make)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (real MQTT clients for the end-to-end tests)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
  else sudo apt-get update -qq && sudo apt-get install -y -qq "${need_apt[@]}"; fi
fi

# Python tools we did not write: the FHIR validator (fhir.resources 6.4.0 is the last release for
# R4 4.0.1) and a real HL7 v2 MLLP client (python `hl7`'s mllp_send) for the end-to-end tests.
venv="${VIGIL_TEST_VENV:-${TMPDIR:-/tmp}/vigil-test-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import fhir.resources, hl7' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'fhir.resources==6.4.0' 'pydantic<2' 'hl7==0.4.5'
fi
export VIGIL_TEST_VENV="$venv"

cargo test --workspace --locked
# Every kind of resource Vigil serves, validated against the R4 definitions.
cargo run -q --locked -p vigil-fhir --example dump | "$venv/bin/python" scripts/validate_fhir.py -
