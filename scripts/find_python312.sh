#!/usr/bin/env bash
# Print the path of a Python 3.12 interpreter, or explain what to install and exit 1.
# Order: $PYTHON, python3.12 on PATH, pyenv's 3.12.x builds, python3.
set -u
is_312() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; }
candidates=()
[ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
candidates+=(python3.12)
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for p in "$root"/versions/3.12*/bin/python3.12; do [ -x "$p" ] && candidates+=("$p"); done
fi
candidates+=(python3 python)
for c in "${candidates[@]}"; do
  path=$(command -v "$c" 2>/dev/null) || continue
  if is_312 "$path"; then echo "$path"; exit 0; fi
done
cat >&2 <<'MSG'
error: Python 3.12 is required (pandas-ta 0.4 needs >=3.12; the lock file is resolved for 3.12),
but none was found on PATH, in pyenv, or in $PYTHON.
Install it, for example `pyenv install 3.12` or your OS package `python3.12` (with venv),
or point to one with `make PYTHON=/path/to/python3.12 ...`.
MSG
exit 1
