#!/bin/sh
# Install the image's Python dependencies into a new virtualenv. The Dockerfile runs this,
# and CI runs it as is in a clean virtualenv, so a missing requirement fails in CI and
# not in the Space's build.
set -eu

venv=${1:?usage: deploy/install-deps.sh VENV_DIR}
# The PyPI torch wheel for Linux pulls in several GB of CUDA libraries the Space cannot use.
torch_index=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
cd "$(dirname -- "$0")/.."

python3 -m venv "$venv"
pip="$venv/bin/pip"
# torch first, from the CPU index, at the version requirements.txt pins (one place to bump);
# the second install then finds 2.13.0+cpu already satisfying torch==2.13.0, and brings
# torch's own dependencies from PyPI with the rest.
torch_pin=$(grep -E '^torch==' requirements.txt)
"$pip" install --no-deps --index-url "$torch_index" "$torch_pin"
"$pip" install -r requirements.txt -r deploy/requirements-space.txt
"$pip" check
