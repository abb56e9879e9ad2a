"""Print the package's requirements with the given extras, one per line, as pip reads a requirements
file: what `make test-matrix` installs into each virtualenv side by side, before the package itself is
installed (editable, one at a time: each install rewrites the metadata in the source tree)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
own = re.compile(rf"^{re.escape(project['name'])}\[(?P<extras>[^\]]+)\]$")


def requirements(extras: list[str]) -> list[str]:
    found = []
    for extra in extras:
        for requirement in project["optional-dependencies"][extra]:
            if match := own.match(requirement):
                found += requirements([name.strip() for name in match["extras"].split(",")])
            else:
                found.append(requirement)
    return found


print("\n".join(dict.fromkeys([*project["dependencies"], *requirements(sys.argv[1:])])))
