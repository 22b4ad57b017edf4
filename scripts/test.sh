#!/usr/bin/env bash
# The whole test suite: set up .venv, start a throwaway PostgreSQL on loopback when one can be had, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export LITELLM_LOCAL_MODEL_COST_MAP=True
if [ -z "${AGENTMEM_TEST_PG_URL:-}" ]; then
  if url=$(bash scripts/pg_start.sh); then
    export AGENTMEM_TEST_PG_URL="$url"
  else
    echo "warning: no PostgreSQL server could be started; postgres tests will be reported as skipped" >&2
  fi
fi
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 0
fi
exit "$rc"
