"""Read a TOML configuration file into a ``MascConfig``, with errors an operator can act on.

Every failure — unreadable file, TOML syntax, a bad value, a broken cross-field rule — comes
out as one exception type, ``ConfigError``, whose text is ``file: key.path: problem``. No
``tomllib`` or pydantic exception escapes: ``masc check-config`` and the daemon's start-up
print the message and exit, and a traceback through pydantic internals helps nobody.
"""

from __future__ import annotations

import datetime
import os
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from masc.config.models import KeyedProblems, KeyPath, MascConfig, format_key_path

__all__ = ["ConfigError", "load_config", "load_model", "parse_config_text", "parse_model"]

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration problem, located by file and dotted key path.

    ``key`` is ``""`` when the problem is with the file as a whole (unreadable, not TOML).
    When validation found several problems, this one is the first and ``others`` holds the
    rest; ``str()`` lists them all, one per line, so the operator fixes them in one go.
    """

    def __init__(
        self, file: str, key: str, problem: str, others: Sequence[ConfigError] = ()
    ) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        self.others: tuple[ConfigError, ...] = tuple(others)
        super().__init__(file, key, problem)

    @property
    def line(self) -> str:
        """This problem alone, without the others."""
        if self.key:
            return f"{self.file}: {self.key}: {self.problem}"
        return f"{self.file}: {self.problem}"

    def __str__(self) -> str:
        return "\n".join([self.line, *(other.line for other in self.others)])

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, str, tuple[ConfigError, ...]]]:
        # Exception pickling replays args; ours has a keyword-shaped signature.
        return (type(self), (self.file, self.key, self.problem, self.others))


def load_config(path: str | os.PathLike[str]) -> MascConfig:
    """Read and validate the configuration file at ``path``. Raises ``ConfigError``."""
    return load_model(path, MascConfig)


def parse_config_text(text: str, source: str = "<string>") -> MascConfig:
    """Validate configuration given as TOML text; ``source`` names it in errors."""
    return parse_model(text, MascConfig, source)


def load_model(path: str | os.PathLike[str], model: type[M]) -> M:
    """Read the TOML file at ``path`` into ``model`` (another program's configuration, such
    as ``masc madcap``'s), with the same ``ConfigError`` texts. Raises ``ConfigError``."""
    file = os.fspath(path)
    try:
        raw = Path(file).read_bytes()
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read file: {exc.strerror or exc}") from None
    try:
        # utf-8-sig: tolerate the byte-order mark some editors write.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            file, "", f"invalid TOML: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    return parse_model(text, model, source=file)


def parse_model(text: str, model: type[M], source: str = "<string>") -> M:
    """Validate TOML text against ``model``; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"invalid TOML: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _config_error(source, exc) from None


def _config_error(source: str, exc: ValidationError) -> ConfigError:
    found = [
        ConfigError(source, format_key_path(loc), problem)
        for loc, problem in _problems(exc.errors(include_url=False))
    ]
    if not found:  # pydantic never reports zero errors, but do not index blindly
        return ConfigError(source, "", "invalid configuration")
    first, *rest = found
    return ConfigError(first.file, first.key, first.problem, rest)


def _problems(errors: Iterable[Any]) -> Iterable[tuple[KeyPath, str]]:
    """Flatten pydantic's error dicts into (key path, operator-facing text)."""
    for err in errors:
        loc: KeyPath = tuple(err["loc"])
        error = err.get("ctx", {}).get("error")
        if isinstance(error, KeyedProblems):
            for rel, text in error.problems:
                yield (*loc, *rel), text
        elif err["type"] in ("value_error", "assertion_error") and error is not None:
            # Our own validators' messages, without pydantic's "Value error, " prefix.
            yield loc, str(error)
        else:
            yield loc, _pydantic_message(err)


# Pydantic speaks of Python types; the operator wrote TOML.
_TOML_EXPECTED: Final = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key (not a MASC setting: check the spelling)",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
    "dict_type": "expected a table",
    "tuple_type": "expected an array",
    "list_type": "expected an array",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "path_type": "expected a path string",
}


def _pydantic_message(err: Any) -> str:
    kind = err["type"]
    text = _TOML_EXPECTED.get(kind)
    if kind in ("missing", "extra_forbidden"):
        return str(text)  # the key path says it all; the value is irrelevant
    if text is None:
        msg = str(err["msg"])
        prefix = "Input should be "
        text = "must be " + msg[len(prefix) :] if msg.startswith(prefix) else msg
    if "password" in err.get("loc", ()):
        return f"{text} (the value is not shown: it is a secret)"
    return f"{text}, got {_toml_repr(err.get('input'))}"


def _toml_repr(value: object) -> str:
    """Show a value the way it looked in the file (roughly: TOML, not Python, spelling)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return f"{value.isoformat()} (a TOML date/time)"
    return repr(value)
