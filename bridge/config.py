"""``openvtuber.toml``: defaults for the flags of ``run`` and ``track``.

The file lives in the user config folder (``tracking.calibration.config_dir()``, which
``OPENVTUBER_CONFIG_DIR`` overrides). Each section names a subcommand and each key is a
flag's destination (``--http-port`` → ``http_port``)::

    [run]
    source = "auto"
    vmc = "127.0.0.1:39539"    # or false: no VMC
    mirror = true
    http_port = 8741

Precedence is flag > file > default: file values become the subcommand parser's
defaults (``set_defaults``) before the command line is parsed. Values are checked with
the same type functions and choices the flags use, so a bad value fails at start with
one line naming the key and what is allowed; unknown keys are warned about and ignored.
The keys are derived from the argparse parsers, so a new flag gets a key for free.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..tracking.calibration import config_dir

FILE_NAME = "openvtuber.toml"
SECTIONS = ("run", "track")
_SKIP_DESTS = {"help", "command"}
_NONE_WORDS = ("none", "off", "")


class ConfigError(ValueError):
    """A value in the config file is unusable; the message is one line naming the key."""


def config_path() -> Path:
    return config_dir() / FILE_NAME


def _toml_loads(text: str) -> dict | None:
    """Parsed TOML, or None where no TOML reader exists (Python 3.10 without tomli)."""
    try:
        import tomllib  # Python >= 3.11
    except ImportError:
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}") from None


def read_file(path: Path | None = None) -> tuple[dict, list[str]]:
    """The raw tables of the config file ({} when absent) and warnings (one line each)."""
    path = path or config_path()
    if not path.is_file():
        return {}, []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read ({e})") from None
    try:
        data = _toml_loads(text)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    if data is None:
        return {}, [f"{path} is ignored: reading TOML on Python {sys.version_info[0]}.{sys.version_info[1]} "
                    "needs `pip install tomli`"]
    return data, []


# ---- the keys, derived from the argparse subparsers ------------------------------------------------

def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:  # noqa: SLF001 - argparse keeps subparsers here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return action.choices[name]
    raise KeyError(name)


def section_actions(sp: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """dest → action for every flag (and positional) of one subcommand."""
    return {a.dest: a for a in sp._actions if a.dest not in _SKIP_DESTS and a.dest != argparse.SUPPRESS}  # noqa: SLF001


def _is_bool(action: argparse.Action) -> bool:
    return isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,  # noqa: SLF001
                               argparse.BooleanOptionalAction))


def _range_text(type_fn: Any) -> str | None:
    name = getattr(type_fn, "__name__", "")
    if name == "_port":
        return "outside 1–65535"
    if name == "_port_or_any":
        return "outside 1–65535 (0: any free port)"
    if name == "_positive_int":
        return "not a whole number of 1 or more"
    return None


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "none"
    return str(value)


def check_value(section: str, dest: str, action: argparse.Action, value: Any) -> dict[str, Any]:
    """The parser defaults one file value sets (usually {dest: value}); ``ConfigError`` if bad."""
    where = f"{FILE_NAME}: {section}.{dest} = {_show(value)}"
    if section == "run" and dest == "vmc":
        if value is False or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
            return {"no_vmc": True}
        if not isinstance(value, str):
            raise ConfigError(f'{where} must be "HOST:PORT" (e.g. "127.0.0.1:39539") or false')
        from .vmc_out import VmcTargetError, parse_target

        try:
            parse_target(value)
        except VmcTargetError as e:
            raise ConfigError(f"{where}: {str(e).split(': ', 1)[-1]}") from None
        return {"vmc": value, "no_vmc": False}
    if _is_bool(action):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        if isinstance(action, argparse._StoreFalseAction):  # noqa: SLF001
            return {dest: not value}
        return {dest: value}
    if action.default is None and (value is False or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS)
                                   or (value == 0 and not isinstance(value, bool) and action.type is not None)):
        return {dest: None}       # unset, e.g. vmc_in = 0 / "none"
    if action.choices is not None:
        if not isinstance(value, str) or value not in action.choices:
            raise ConfigError(f"{where} is not one of {', '.join(map(str, action.choices))}")
        return {dest: value}
    if action.type is not None and _range_text(action.type) is not None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number")
        try:
            return {dest: action.type(str(value))}
        except argparse.ArgumentTypeError:
            raise ConfigError(f"{where} is {_range_text(action.type)}") from None
    if action.type is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where} has the wrong type")
        try:
            return {dest: action.type(str(value))}
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            raise ConfigError(f"{where}: {e}") from None
    if dest == "source" and isinstance(value, int) and not isinstance(value, bool):
        return {dest: str(value)}  # a camera index
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string")
    return {dest: value}


@dataclass
class SectionValues:
    """What the file says for one subcommand, already checked."""

    defaults: dict[str, Any] = field(default_factory=dict)   # for parser.set_defaults
    keys: set[str] = field(default_factory=set)              # dests the file set (for "where from")


def section_values(parser: argparse.ArgumentParser, data: dict, section: str,
                   warnings: list[str]) -> SectionValues:
    out = SectionValues()
    table = data.get(section)
    if table is None:
        return out
    if not isinstance(table, dict):
        warnings.append(f"{FILE_NAME}: [{section}] must be a table; ignored")
        return out
    actions = section_actions(subparser(parser, section))
    for key, value in table.items():
        dest = key.replace("-", "_")
        if dest not in actions:
            warnings.append(f"{FILE_NAME}: unknown key {section}.{key} ignored "
                            f"(known: {', '.join(sorted(actions))})")
            continue
        got = check_value(section, dest, actions[dest], value)
        out.defaults.update(got)
        out.keys.update(got)
    return out


def unknown_sections(data: dict) -> list[str]:
    return [f"{FILE_NAME}: unknown section [{k}] ignored (known: {', '.join(SECTIONS)})"
            for k in data if k not in SECTIONS]


def load_all(parser: argparse.ArgumentParser, path: Path | None = None) -> tuple[dict[str, SectionValues], list[str]]:
    """Every section, checked (``ConfigError`` on the first bad value), and the warnings."""
    data, warnings = read_file(path)
    warnings += unknown_sections(data)
    return {s: section_values(parser, data, s, warnings) for s in SECTIONS}, warnings


def apply(parser: argparse.ArgumentParser, command: str, path: Path | None = None) -> tuple[SectionValues, list[str]]:
    """Make the file's values the defaults of ``command``'s parser (flag > file > default)."""
    if command not in SECTIONS:
        return SectionValues(), []
    data, warnings = read_file(path)
    warnings += unknown_sections(data)
    values = section_values(parser, data, command, warnings)
    if values.defaults:
        subparser(parser, command).set_defaults(**values.defaults)
    return values, warnings


_UNSET = object()


def given_on_command_line(parser: argparse.ArgumentParser, command: str, argv: list[str]) -> set[str]:
    """Dests the user typed for ``command``: parse again with every default replaced by a marker."""
    sp = subparser(parser, command)
    saved = {id(a): a.default for a in sp._actions}  # noqa: SLF001
    saved_defaults = dict(sp._defaults)  # noqa: SLF001
    try:
        for a in sp._actions:  # noqa: SLF001
            if a.dest not in _SKIP_DESTS:
                a.default = _UNSET
        sp._defaults.clear()  # noqa: SLF001
        ns = parser.parse_args(argv)
    finally:
        for a in sp._actions:  # noqa: SLF001
            a.default = saved[id(a)]
        sp._defaults.update(saved_defaults)  # noqa: SLF001
    return {k for k, v in vars(ns).items() if v is not _UNSET and k not in _SKIP_DESTS}


def origins(parser: argparse.ArgumentParser, command: str, argv: list[str], file_keys: set[str]) -> dict[str, str]:
    """dest → "flag", "file" or "default" for ``command``."""
    flags = given_on_command_line(parser, command, argv)
    return {d: "flag" if d in flags else "file" if d in file_keys else "default"
            for d in section_actions(subparser(parser, command))}


# ---- `openvtuber config` ---------------------------------------------------------------------------

def _default_line(dest: str, action: argparse.Action) -> str | None:
    d = action.default
    if dest == "no_vmc":
        return None  # covered by vmc = false
    if d is None:
        if _is_bool(action):
            example = "true"
        elif action.type is not None:
            example = "0"
        else:
            example = '""'
        return f"# {dest} = {example}"
    return f"# {dest} = {_show(d)}"


def default_file_text(parser: argparse.ArgumentParser) -> str:
    lines = ["# OpenVtuber settings: defaults for `openvtuber run` and `openvtuber track`.",
             "# A flag on the command line beats this file; this file beats the built-in defaults.",
             "# Uncomment a line to change it. `openvtuber config` shows what is in effect.", ""]
    for section in SECTIONS:
        lines.append(f"[{section}]")
        for dest, action in section_actions(subparser(parser, section)).items():
            line = _default_line(dest, action)
            if line is None:
                continue
            helptext = (action.help or "").replace("%%", "%").strip()
            if section == "run" and dest == "vmc":
                helptext += "; false: send no VMC"
            if action.default is None and not _is_bool(action):
                helptext += ("; " if helptext else "") + ("0 or \"none\": not set" if action.type is not None
                                                          else "\"\": not set")
            if action.choices:
                helptext += ("; " if helptext else "") + "one of " + ", ".join(map(str, action.choices))
            if helptext:
                lines.append(f"# {helptext}")
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


def init_file(parser: argparse.ArgumentParser, path: Path | None = None) -> tuple[Path, bool]:
    """Write the commented default file unless one exists: (path, written)."""
    path = path or config_path()
    if path.exists():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.part")
    tmp.write_text(default_file_text(parser), encoding="utf-8")
    tmp.replace(path)
    return path, True


def describe(parser: argparse.ArgumentParser, command_line: list[str], out=None) -> int:
    """Print the effective values of ``run`` and ``track`` (or the one ``command_line`` names)."""
    out = out or sys.stdout
    path = config_path()
    sections, warnings = load_all(parser, path)   # ConfigError propagates: one line, exit 2
    for w in warnings:
        print(f"openvtuber: {w}", file=sys.stderr)
    state = "" if path.is_file() else "  (not there: built-in defaults; `openvtuber config --init` writes one)"
    print(f"config file: {path}{state}", file=out)
    shown = SECTIONS
    if command_line:
        if command_line[0] not in SECTIONS:
            raise ConfigError(f"config shows {' and '.join(SECTIONS)}, not {command_line[0]!r}")
        shown = (command_line[0],)
    for section in shown:
        argv = command_line if command_line else [section]
        sp = subparser(parser, section)
        saved_defaults = dict(sp._defaults)  # noqa: SLF001
        saved = {id(a): a.default for a in sp._actions}  # noqa: SLF001
        try:
            if sections[section].defaults:
                sp.set_defaults(**sections[section].defaults)
            ns = parser.parse_args(argv)
            where = origins(parser, section, argv, sections[section].keys)
            if where.get("vmc") == "flag" and where.get("no_vmc") == "file":
                ns.no_vmc, where["no_vmc"] = False, "flag"   # as `run` does: --vmc beats `vmc = false`
        finally:
            for a in sp._actions:  # noqa: SLF001
                a.default = saved[id(a)]
            sp._defaults.clear()  # noqa: SLF001
            sp._defaults.update(saved_defaults)  # noqa: SLF001
        print(f"\n[{section}]", file=out)
        width = max(len(d) for d in where)
        for dest in where:
            value = _show(getattr(ns, dest, None))
            print(f"{dest:<{width}} = {value:<24} # {where[dest]}", file=out)
    return 0
