# Sourced by the .ci scripts: use the project's virtualenv when .ci/setup had to create one.
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "$(dirname "${BASH_SOURCE[0]}")/../.venv/bin/python" ]; then
  VIRTUAL_ENV="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.venv" && pwd)"
  export VIRTUAL_ENV
  export PATH="$VIRTUAL_ENV/bin:$PATH"
  PY="$VIRTUAL_ENV/bin/python"
fi
