#!/usr/bin/env bash
# bench/faust/setup.sh — install the real Python Faust (faust-streaming, pinned in
# bench/faust/requirements.txt) into a virtualenv at <repo>/.bench/faust-venv.
#
#   bench/faust/setup.sh          install, or do nothing if already installed
#   bench/faust/setup.sh --force  reinstall from scratch
#
# Idempotent: a marker file in the venv holds the sha256 of requirements.txt and the
# interpreter's version; when both match, the script exits at once without the network.
#
# Environment: FAUST_PYTHON (interpreter; default python3.11), FAUST_VENV (venv directory;
# default <repo>/.bench/faust-venv).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
REQUIREMENTS=$HERE/requirements.txt
VENV=${FAUST_VENV:-$REPO_ROOT/.bench/faust-venv}
PYTHON=${FAUST_PYTHON:-python3.11}
MARKER=$VENV/.installed

command -v "$PYTHON" >/dev/null || { echo "setup.sh: $PYTHON not found (set FAUST_PYTHON)" >&2; exit 1; }
py_version=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) python-$py_version"

if [[ ${1:-} != --force && -f $MARKER && $(cat "$MARKER") == "$want" && -x $VENV/bin/faust ]]; then
    exit 0
fi

echo "setup.sh: installing faust-streaming into $VENV (python $py_version)" >&2
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
# smoke test: the CLI starts and the pinned Kafka client is the one imported
"$VENV/bin/faust" --version >/dev/null
"$VENV/bin/python" -c 'import faust, aiokafka; print("setup.sh: faust", faust.__version__, "aiokafka", aiokafka.__version__)' >&2
echo "$want" >"$MARKER"
