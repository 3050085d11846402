# Sourced by the .ci scripts: every step runs inside the project's own virtual environment (.venv),
# never in the interpreter it finds. .ci/setup creates it.
_tk_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VIRTUAL_ENV="$_tk_root/.venv"
export VIRTUAL_ENV
export PATH="$VIRTUAL_ENV/bin:$PATH"
PY="$VIRTUAL_ENV/bin/python"
unset _tk_root PYTHONHOME
