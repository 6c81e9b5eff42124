"""Short messages for jsonargparse's parse errors: a misspelt config key ("did you mean") and a value of the
wrong type or outside a ``Literal``'s choices, each in place of the full usage and union-validation dump."""

from __future__ import annotations

import argparse
import difflib
import inspect
import re
import sys
from pathlib import Path

from jsonargparse import CLI, ArgumentParser

from vtrep.errors import UsageError, UserError, debug_enabled

# jsonargparse's wording for a key no parser or class accepts
_UNRECOGNISED = re.compile(r"Unrecognized arguments:\s*(--?[^\s=]+)", re.IGNORECASE)
_GROUP_OPTION = re.compile(r"Group '([^']+)' does not accept option '([^']+)'")
_CLASS_OPTION = re.compile(r"Problem with given class_path '([^']+)':\s*Option '([^']+)' is not accepted")
_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
_NO_ACTION = re.compile(r'No action for key "([^"]+)"')


def _parser_keys(parser: argparse.ArgumentParser) -> list[str]:
    """Every dotted key a parser accepts (``trainer.max_steps``, ``model``, ...)."""
    keys = []
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--") and not option.endswith("+"):  # "--x+" appends to a list: not another key
                keys.append(option[2:])
        if action.dest not in (None, argparse.SUPPRESS) and not action.option_strings:
            keys.append(action.dest)
    return keys


def _class_keys(class_path: str) -> list[str]:
    """The ``__init__`` parameter names of a class (following ``**kwargs`` up the MRO)."""
    import importlib

    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - only a suggestion is lost
        return []
    keys: list[str] = []
    for klass in inspect.getmro(cls):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            break
        keys += [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return keys


def _config_files(argv: list[str]) -> list[str]:
    files = []
    for i, arg in enumerate(argv):
        if arg in ("-c", "--config") and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def _from_command_line(key: str, argv: list[str]) -> bool:
    return any(arg == f"--{key}" or arg.startswith(f"--{key}=") for arg in argv)


def _file_with_key(leaf: str, argv: list[str]) -> str | None:
    """The last config file that spells the (misspelt) key, if one does."""
    pattern = re.compile(rf"(^|[\s{{,]){re.escape(leaf)}\s*:", re.MULTILINE)
    found = None
    for path in _config_files(argv):
        try:
            if pattern.search(Path(path).read_text()):
                found = path
        except OSError:
            continue
    return found


def _flatten(value, prefix: str) -> list[str]:
    """Dotted keys of a config node (piece files already inlined), each accepted by jsonargparse under it."""
    if not isinstance(value, dict):
        return []
    keys = []
    for name, item in value.items():
        key = f"{prefix}{name}"
        keys += [key, *_flatten(item, key + ".")]
    return keys


def _config_keys(argv: list[str]) -> list[str]:
    """The dotted keys the given config files set, following the pieces they name (all accepted by the parse)."""
    from vtrep.io.config_files import read_fit_config

    keys = []
    for path in _config_files(argv):
        try:
            keys += _flatten(read_fit_config(path), "")
        except Exception:  # noqa: BLE001 - only a suggestion is lost
            continue
    return keys


def _suggest(key: str, accepted: list[str]) -> list[str]:
    """Close matches of the whole key, then of its last part (``mask_ratoi`` → ``...masking.init_args.mask_ratio``)."""
    accepted = [k for k in dict.fromkeys(accepted) if k != key]
    close: list[str] = []
    leaf = key.rsplit(".", 1)[-1]
    by_leaf: dict[str, list[str]] = {}
    for k in accepted:
        by_leaf.setdefault(k.rsplit(".", 1)[-1], []).append(k)
    for name in difflib.get_close_matches(leaf, list(by_leaf), n=3, cutoff=0.75):
        close += sorted(by_leaf[name], key=len)
    close += difflib.get_close_matches(key, accepted, n=3, cutoff=0.6)
    return list(dict.fromkeys(close))[:3]


def unknown_key_message(message: str, parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """A short message for a misspelt key, or ``None`` when ``message`` is some other error."""
    key = None
    accepted: list[str] = []
    class_keys: list[str] = []
    if m := _CLASS_OPTION.search(message):
        outer = _PARSER_KEY.search(message)
        prefix = f"{outer.group(1)}.init_args." if outer else ""
        key = prefix + m.group(2)
        class_keys = _class_keys(m.group(1))
        accepted = [prefix + k for k in class_keys]
    elif m := _GROUP_OPTION.search(message):
        key = f"{m.group(1)}.{m.group(2)}"
        accepted = _parser_keys(parser)
    elif m := _UNRECOGNISED.search(message):
        key = m.group(1).lstrip("-")
        accepted = _parser_keys(parser)
    elif m := _NO_ACTION.search(message):
        key = m.group(1)
        accepted = _parser_keys(parser)
    if key is None:
        return None
    prog = parser.prog.replace(" [options]", "")
    source = None if _from_command_line(key, argv) else _file_with_key(key.rsplit(".", 1)[-1], argv)
    where = f" in config file {source}" if source else ""
    leaf = key.rsplit(".", 1)[-1]
    in_files = _config_keys(argv)
    spelt = [k for k in in_files if k.rsplit(".", 1)[-1] == leaf]  # the misspelt key as the file nests it
    if source and spelt:
        key = spelt[0]  # jsonargparse's message drops the nesting above the class that refused it
        nesting = key.rsplit(".", 1)[0] + "."
        accepted = [nesting + k for k in class_keys] or accepted
    lines = [f"{prog}: error: unknown config key '{key}'{where}"]
    close = _suggest(key, accepted + [k for k in in_files if k.rsplit(".", 1)[-1] != leaf])
    if close:
        lines.append("did you mean: " + ", ".join(f"'{c}'" for c in close) + "?")
    lines.append(f"see `{prog} --help` for the accepted keys (VTREP_DEBUG=1 shows the full error)")
    return "\n".join(lines)


_GIVEN_CLASS = re.compile(r"Problem with given class_path '[^']+':")
_EXPECTED = re.compile(r"Expected a (.+?)(?:\. Got value: (.*))?$")
_GIVEN_VALUE = re.compile(r"Given value: (.*)$")


def _type_name(expected: str) -> str:
    """``typing.Literal['a', 'b']`` → ``one of 'a', 'b'``; ``<class 'float'>`` → ``a float``; NoneType → null."""
    if expected.startswith("typing.Literal[") and expected.endswith("]"):
        return "one of " + expected[len("typing.Literal["):-1]
    name = re.fullmatch(r"<class '(?:[\w.]+\.)?(\w+)'>", expected)
    name = name.group(1) if name else expected
    return "null" if name == "NoneType" else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _value_error(lines: list[str]) -> tuple[list[str], str] | None:
    """The expected types and the given value in the lines under one ``Parser key`` (nested unions included)."""
    expected, value = [], None
    for line in lines:
        if match := _EXPECTED.search(line.strip()):
            expected.append(_type_name(match.group(1)))
            value = match.group(2) if match.group(2) is not None else value
        elif value is None and (match := _GIVEN_VALUE.search(line.strip())):
            value = match.group(1)
    return (list(dict.fromkeys(expected)), value) if expected and value is not None else None


def _block(lines: list[str], start: int) -> list[str]:
    """The lines under ``lines[start]``: those after it indented deeper, up to the first that is not."""
    end = next((i for i in range(start + 1, len(lines)) if _indent(lines[i]) <= _indent(lines[start])), len(lines))
    return lines[start + 1:end]


def wrong_value_message(message: str, prog: str) -> str | None:
    """A short message for a value of the wrong type or outside a ``Literal`` (``model.init_args.schedule must
    be one of 'warmup_cosine', 'patchtst_epochs'; got 'cosine'``), or ``None`` for any other error.

    jsonargparse nests a class argument's error under ``Problem with given class_path``, once per class level
    (``model`` → ``encoder`` → ``d_model``); the key is followed down those levels to the innermost one.
    """
    lines = message.splitlines()
    start = next((i for i, line in enumerate(lines) if _PARSER_KEY.search(line)), None)
    if start is None:
        return None
    key = _PARSER_KEY.search(lines[start]).group(1)
    while True:
        block = _block(lines, start)
        given_class = next((i for i, line in enumerate(block) if _GIVEN_CLASS.search(line)), None)
        if given_class is None:
            break
        deeper = next((j for j in range(given_class + 1, len(block)) if _PARSER_KEY.search(block[j])), None)
        if deeper is None:
            break
        start += 1 + deeper
        key = f"{key}.init_args.{_PARSER_KEY.search(lines[start]).group(1)}"
    found = _value_error(_block(lines, start))
    if found is None:
        return None
    expected, value = found
    hint = " (a list is written '[a,b]')" if "a list" in expected else ""
    return (f"{prog.replace(' [options]', '')}: error: {key} must be {' or '.join(expected)}; got {value!r}{hint}\n"
            "(VTREP_DEBUG=1 shows the full error)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


class ShortParseErrors:
    """A jsonargparse parser whose misspelt key or wrong value is a few lines, not the usage and the union dump."""

    argv: list[str] = []  # the command line being parsed, to tell which config file a key came from

    def _subcommand_parser(self) -> argparse.ArgumentParser | None:
        subcommands = self._subcommands_action
        if subcommands is None or not ShortParseErrors.argv:
            return None
        return subcommands._name_parser_map.get(ShortParseErrors.argv[0])

    def error(self, message: str, ex: Exception | None = None):
        if self.exit_on_error and not debug_enabled():
            parser = getattr(ex, "subcommand_parser", None) or self._subcommand_parser() or self
            short = (unknown_key_message(message, parser, ShortParseErrors.argv)
                     or wrong_value_message(message, parser.prog))
            if short is not None:
                sys.stderr.write(short + "\n")
                sys.exit(2)
        if self.exit_on_error and debug_enabled():
            raise argparse.ArgumentError(None, message) from ex
        return super().error(message, ex)


class CommandParser(ShortParseErrors, ArgumentParser):
    """The parser of ``vtrep probe`` / ``extract`` / ``concepts`` / ``import-videomae`` / ``benchmark``."""

    def instantiate(self, cfg, *args, **kwargs):
        """Build the configured classes (``--data``); a constructor refusing a value (``ValueError``) is the
        user's mistake, as in ``vtrep fit`` (:meth:`vtrep.cli_commands.VtrepCLI.instantiate_classes`)."""
        try:
            return super().instantiate(cfg, *args, **kwargs)
        except ValueError as error:
            if isinstance(error, UserError) or debug_enabled():
                raise
            raise UsageError(str(error)) from error


def run_command(components, args: list[str] | None):
    """Run a non-Lightning command (a function, or a dict of them for subcommands) as jsonargparse's CLI does,
    with keyword options only and vtrep's short errors."""
    return CLI(components, args=args, as_positional=False, parser_class=CommandParser)
