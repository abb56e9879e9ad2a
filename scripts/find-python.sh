#!/usr/bin/env bash
# Print the path of a working interpreter for Python $1 (e.g. 3.12): the one on PATH, or one that
# pyenv has installed (its shims answer only for the selected versions).
set -uo pipefail
want=$1
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
for candidate in "python$want" $(ls -d "$root"/versions/"$want".*/bin/python"$want" 2>/dev/null | sort -V -r); do
    if path=$("$candidate" -c 'import sys; print(sys.executable)' 2>/dev/null); then
        echo "$path"
        exit 0
    fi
done
echo "No Python $want found: install it (for example: pyenv install $want)" >&2
exit 1
