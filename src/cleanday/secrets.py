"""Secrets: one resolver for every secret reference (env:, file:, plug-in schemes), and redaction.

A reference says where a secret lives, never the secret: `env:NAME` (a bare `NAME` means the
same), `file:/path`, or `<scheme>:<rest>` for a scheme plugged in. Model keys (the router),
webhook secrets (the hooks route) and registration (which refuses an unknown scheme) all go
through this module, so a scheme works everywhere or nowhere.

A package plugs a scheme into every cleanday process (the ledger service checks references at
registration, the worker resolves them) with an entry point in the group
`cleanday.secret_schemes`, its name the scheme and its object a function `(rest) -> str`:

    [project.entry-points."cleanday.secret_schemes"]
    vault = "mypackage.vault:read_secret"

Code running inside one process can call `register_scheme` instead.

A `file:` reference resolves only inside the secret directories (`CLEANDAY_SECRET_DIRS`, by
default the data dir's `secrets/`; the data dir's `keys/`, where cleanday keeps the OpenRouter
keys it provisions, always): no `..`, and no symlink that leads out of them. Registration
refuses one that points elsewhere (`check_reference`), and resolution refuses it again, after
following symlinks: otherwise any readable file (`file:/etc/hostname`) would be sent to a
provider as a key.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path, PurePath

from cleanday.config import Settings
from cleanday.errors import SecretResolutionError

REDACTED = "[redacted]"
ENTRY_POINT_GROUP = "cleanday.secret_schemes"
BUILTIN_SCHEMES = ("env", "file")

SchemeResolver = Callable[[str], str]

_REFERENCE = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*):(?P<rest>.+)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Secret:
    """A resolved secret; its repr and str never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class Redactor:
    """Remembers secrets and strikes them out of any text.

    Every secret any Redactor learns is also learned by the process-wide one behind
    `redact_secrets`, so text that never passed through the router (an exception raised by a
    behavior's own step code, say) can be cleaned with every secret this process resolved.
    """

    def __init__(self, *, _process_wide: bool = False) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._process_wide = _process_wide

    def add(self, value: str) -> None:
        if value:
            with self._lock:
                self._values.add(value)
            if not self._process_wide:
                _PROCESS_REDACTOR.add(value)

    def __call__(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)  # a longer secret first
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text


_PROCESS_REDACTOR = Redactor(_process_wide=True)


def redact_secrets(text: str) -> str:
    """`text` with every secret this process resolved (or was configured with) struck out."""
    return _PROCESS_REDACTOR(text)


# --- schemes ---------------------------------------------------------------------------

_plugged: dict[str, SchemeResolver] = {}
_plugged_lock = threading.Lock()
_entry_points_loaded = False


def register_scheme(scheme: str, resolver: SchemeResolver) -> None:
    """Plug `scheme` into every resolver of this process, and into registration's check."""
    if not _REFERENCE.match(f"{scheme}:x") or scheme in BUILTIN_SCHEMES:
        raise ValueError(
            f"secret scheme {scheme!r}: use lower-case letters, digits, '+', '.' or '-', "
            f"starting with a letter, and none of the built-in {', '.join(BUILTIN_SCHEMES)}"
        )
    with _plugged_lock:
        _plugged[scheme] = resolver


def unregister_scheme(scheme: str) -> None:
    """Remove a scheme `register_scheme` added (tests, a plug-in being unloaded)."""
    with _plugged_lock:
        _plugged.pop(scheme, None)


def _plugged_schemes() -> dict[str, SchemeResolver]:
    """The schemes plugged in, the installed entry points read once per process."""
    global _entry_points_loaded
    with _plugged_lock:
        if not _entry_points_loaded:
            # a scheme registered in code wins over an installed one of the same name
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if ep.name not in BUILTIN_SCHEMES:
                    _plugged.setdefault(ep.name, _deferred(ep.load))
            _entry_points_loaded = True
        return dict(_plugged)


def _deferred(load: Callable[[], SchemeResolver]) -> SchemeResolver:
    # a plug-in's module is imported when a reference first needs it, not by every process
    # that only checks a reference's scheme
    loaded = functools.cache(load)

    def resolve(rest: str) -> str:
        return loaded()(rest)

    return resolve


def known_schemes() -> tuple[str, ...]:
    """Every scheme a reference may use in this process: the built-ins, then the plug-ins."""
    return (*BUILTIN_SCHEMES, *sorted(_plugged_schemes()))


def _allowed(schemes: tuple[str, ...]) -> str:
    return ", ".join(f"{s}:" for s in schemes)


def split_reference(ref: str) -> tuple[str, str] | None:
    """(scheme, rest) of a reference, a bare environment variable name read as env:NAME;
    None when `ref` is not shaped like a reference at all."""
    m = _REFERENCE.match(ref)
    if m is not None:
        return m.group("scheme"), m.group("rest")
    if _ENV_NAME.match(ref):
        return "env", ref
    return None


def default_secret_dirs() -> tuple[Path, ...]:
    """The secret directories of this process's settings (`CLEANDAY_SECRET_DIRS`)."""
    return Settings().resolved_secret_dirs


def _outside(path: str, dirs: Sequence[Path]) -> str:
    shown = ", ".join(str(d) for d in dirs)
    return (
        f"secret reference file:{path} is outside the secret directories ({shown}); put the "
        "file in one of them, or name its directory in CLEANDAY_SECRET_DIRS"
    )


def contained_file(path: str, dirs: Sequence[Path], *, follow: bool) -> Path:
    """`path` when it lies inside one of `dirs`, else SecretResolutionError. `..` is refused
    outright; with `follow`, symlinks are followed first (the file must then exist), so one
    that leads out of the directories is refused too."""
    if ".." in PurePath(path).parts:
        raise SecretResolutionError(
            f"secret reference file:{path}: '..' is not allowed in a secret file's path; "
            "name the file inside a secret directory directly"
        )
    candidate = Path(path)
    if follow:
        try:
            candidate = candidate.resolve(strict=True)
        except OSError as exc:
            raise SecretResolutionError(
                f"secret reference file:{path}: cannot read the file ({exc.strerror or exc})"
            ) from None
        roots = [d.resolve() for d in dirs]
    else:
        candidate = Path(os.path.abspath(candidate))
        roots = [Path(os.path.abspath(d)) for d in dirs] + [d.resolve() for d in dirs]
    if not any(candidate.is_relative_to(root) and candidate != root for root in roots):
        raise SecretResolutionError(_outside(path, dirs))
    return candidate


def check_reference(ref: str, secret_dirs: Sequence[Path] | None = None) -> None:
    """Refuse a reference this process could not resolve for its shape or its scheme, and a
    `file:` reference outside the secret directories (without resolving it: the secret need
    not exist where the Work Order is registered)."""
    parts = split_reference(ref)
    if parts is None:
        raise SecretResolutionError(
            f"{ref!r} is not a secret reference; write env:NAME, file:/path or "
            f"<scheme>:<rest> with one of {_allowed(known_schemes())}"
        )
    scheme, rest = parts
    if scheme not in BUILTIN_SCHEMES and scheme not in _plugged_schemes():
        raise SecretResolutionError(_unknown(ref, scheme, known_schemes()))
    if scheme == "file":
        dirs = default_secret_dirs() if secret_dirs is None else secret_dirs
        contained_file(rest, dirs, follow=Path(rest).exists())


def _unknown(ref: str, scheme: str, schemes: tuple[str, ...]) -> str:
    return f"{ref!r} uses an unknown secret scheme {scheme!r}; use one of {_allowed(schemes)}"


class SecretResolver:
    """Turns a reference into a Secret, teaching its redactor the value.

    Reads `env:` from `env` (the process environment by default) and `file:` from disk, inside
    `secret_dirs` only (the settings' secret directories by default); the schemes plugged into
    the process (see the module docstring), and any registered on this resolver alone with
    `register`, resolve the rest. Errors name the reference, never a value.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
        secret_dirs: Sequence[Path] | None = None,
    ) -> None:
        self._env = env if env is not None else os.environ
        self.redactor = redactor or Redactor()
        self._dirs: list[Path] | None = None if secret_dirs is None else list(secret_dirs)
        self._extra_dirs: list[Path] = []
        self._own: dict[str, SchemeResolver] = {"env": self._from_env, "file": self._from_file}

    @property
    def secret_dirs(self) -> tuple[Path, ...]:
        if self._dirs is None:
            self._dirs = list(default_secret_dirs())
        return (*self._dirs, *self._extra_dirs)

    def allow_directory(self, path: Path) -> None:
        """Let `file:` references of this resolver read inside `path` too (the router's data
        dir's `keys/`, where the keys it provisions live)."""
        if path not in self._extra_dirs:
            self._extra_dirs.append(path)

    def register(self, scheme: str, resolver: SchemeResolver) -> None:
        """Plug `scheme` into this resolver only (`register_scheme` plugs it in everywhere)."""
        self._own[scheme] = resolver

    def _schemes(self) -> tuple[str, ...]:
        return (*BUILTIN_SCHEMES, *sorted({*_plugged_schemes(), *self._own} - {*BUILTIN_SCHEMES}))

    def resolve(self, ref: str) -> Secret:
        parts = split_reference(ref)
        if parts is None:
            raise SecretResolutionError(
                f"{ref!r} is not a secret reference; write env:NAME, file:/path or one of "
                f"{_allowed(self._schemes())}"
            )
        scheme, rest = parts
        resolver = self._own.get(scheme) or _plugged_schemes().get(scheme)
        if resolver is None:
            raise SecretResolutionError(_unknown(ref, scheme, self._schemes()))
        value = resolver(rest).strip()
        if not value:
            raise SecretResolutionError(f"secret reference {ref}: resolved to an empty value")
        self.redactor.add(value)
        return Secret(value)

    def _from_env(self, name: str) -> str:
        value = self._env.get(name)
        if value is None:
            raise SecretResolutionError(
                f"secret reference env:{name}: environment variable not set"
            )
        return value

    def _from_file(self, path: str) -> str:
        contained = contained_file(path, self.secret_dirs, follow=True)
        try:
            return contained.read_text()
        except OSError as exc:
            raise SecretResolutionError(
                f"secret reference file:{path}: cannot read the file ({exc.strerror})"
            ) from None
