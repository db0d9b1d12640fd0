"""SHOTS.json: the shot list, checked whole before anything runs.

A shot's keys are exactly a shot's options as :func:`memvos_core.shot.build_parser` declares them
(the single-shot command line's flags), so a new option is a new shot key without touching this
file. Each shot is parsed by that same parser: a shot that validates here is the command line an
artist could have typed, and the worker runs its parsed options.
"""
import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .. import shot as single
from ..command.shot_inputs import shot_input_paths, shot_outputs
from ..media_io.json_input import JSONInputError, parse_json
from ..command.output_paths import clash, describe_clash

# Options that name files or folders. Relative paths in SHOTS.json are relative to the file
# itself (a shot list stays valid when the project folder moves; Ray workers have another cwd).
PATH_OPTIONS = ("frames", "masks", "out", "models_dir", "save_session", "cache_dir")
MAX_ERRORS_SHOWN = 20


class ShotSpecError(ValueError):
    """SHOTS.json refused; ``errors`` lists every problem, each naming the shot index and key."""

    def __init__(self, errors):
        self.errors = list(errors)
        shown = self.errors[:MAX_ERRORS_SHOWN]
        more = len(self.errors) - len(shown)
        super().__init__("\n".join(shown + ([f"... and {more} more"] if more else [])))


@dataclass(frozen=True)
class Shot:
    index: int
    args: argparse.Namespace   # the shot's options, as memvos_core.shot.build_parser() declares them

    @property
    def out(self):
        return self.args.out


class _ParseError(Exception):
    pass


def _parser():
    """The single-shot parser, raising instead of printing usage and exiting."""
    parser = single.build_parser()
    parser.exit_on_error = False

    def error(message):
        raise _ParseError(message)
    parser.error = error
    return parser


def shot_options(parser=None):
    """``key -> argparse action`` for every option a shot may set (``--models-dir`` is ``models_dir``)."""
    parser = parser or single.build_parser()
    return {a.dest: a for a in parser._actions
            if a.option_strings and not isinstance(a, argparse._HelpAction)}


def _scalar(value):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a string or a number, got {json.dumps(value)}")
    return str(value)


def _tokens(action, value):
    """One JSON value -> the command-line tokens of its option."""
    flag = action.option_strings[-1]
    if action.nargs == 0:  # store_true style switches
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {json.dumps(value)}")
        return [flag] if value else []
    if isinstance(action, argparse._AppendAction):
        if isinstance(value, dict):  # "set": {"mem_every": 5} -> --set mem_every=5
            items = [f"{k}={json.dumps(v) if isinstance(v, bool) else _scalar(v)}" for k, v in value.items()]
        elif isinstance(value, list):
            items = [_scalar(v) for v in value]
        else:
            items = [_scalar(value)]
        return [f"{flag}={item}" for item in items]
    if action.nargs in ("+", "*") or isinstance(action.nargs, int):
        values = value if isinstance(value, list) else [value]
        if not values:
            return []
        return [flag] + [_scalar(v) for v in values]
    return [f"{flag}={_scalar(value)}"]  # "=" so a value starting with "-" is not read as an option


def _absolute(key, value, base):
    if key in PATH_OPTIONS and isinstance(value, str) and value and not os.path.isabs(value):
        return str(base / value)
    if key == "weights" and isinstance(value, str) and not os.path.isabs(value):
        # a bare name (XMem.pth) is a known checkpoint in --models-dir unless such a file is here
        if "/" in value or os.sep in value or (base / value).is_file():
            return str(base / value)
    return value


def _normalise_keys(entry, options, where, errors):
    out = {}
    for key, value in entry.items():
        dest = str(key).lstrip("-").replace("-", "_")
        if dest not in options:
            errors.append(f"{where}, key {key!r}: not an option of the single-shot CLI; "
                          f"known: {', '.join(sorted(options))}")
            continue
        if value is not None:  # null: the CLI's default
            out[dest] = value
    return out


def _parse_error_key(message, options):
    """The key an argparse message is about, and the message."""
    for dest, action in options.items():
        for flag in action.option_strings:
            if message.startswith(f"argument {flag}"):
                return dest, message.split(": ", 1)[-1]
    return None, message


def build_shot(index, values, options, base, parser):
    """One shot's options (keys already checked and normalised) -> :class:`Shot`; raises
    ShotSpecError naming the shot and key."""
    where = f"shot {index}"
    errors = []
    argv = []
    for key, value in values.items():
        try:
            argv += _tokens(options[key], _absolute(key, value, base))
        except ValueError as exc:
            errors.append(f"{where}, key {key!r}: {exc}")
    if errors:
        raise ShotSpecError(errors)
    try:
        args = parser.parse_args(argv)
    except argparse.ArgumentError as exc:
        key = (exc.argument_name or "").lstrip("-").replace("-", "_")
        raise ShotSpecError([f"{where}, key {key!r}: {exc.message}"]) from None
    except _ParseError as exc:
        message = str(exc)
        if "arguments are required" in message:
            missing = [m.strip().lstrip("-").replace("-", "_") for m in message.split(":", 1)[1].split(",")]
            raise ShotSpecError([f"{where}, key {m!r}: missing (every shot needs it)" for m in missing]) from None
        key, detail = _parse_error_key(message, options)
        raise ShotSpecError([f"{where}, key {key!r}: {detail}" if key else f"{where}: {detail}"]) from None
    try:
        single.parse_config(args)  # --set values and their combination, as the shot will apply them
    except ValueError as exc:
        raise ShotSpecError([f"{where}, key 'set': {exc}"]) from None
    return Shot(index, args)


def load_shots(path):
    """Read and check SHOTS.json. It is a list of shots, or ``{"defaults": {...}, "shots": [...]}``
    where ``defaults`` holds options every shot gets unless it sets them itself."""
    path = Path(path)
    try:
        data = parse_json(path.read_text(encoding="utf-8"), "SHOTS.json")
    except FileNotFoundError:
        raise ShotSpecError(["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ShotSpecError([f"could not be read ({exc})"]) from None
    except JSONInputError as exc:
        raise ShotSpecError([f"not valid JSON ({exc.detail})"]) from None
    return check_shots(data, path.resolve().parent)


def check_shots(data, base):
    """Every shot of ``data`` (parsed SHOTS.json) as a :class:`Shot`; all problems at once."""
    defaults = {}
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"defaults", "shots"})
        if unknown or not isinstance(data.get("shots"), list):
            raise ShotSpecError([f"expected a list of shots or an object with \"shots\" "
                                 f"(a list) and optional \"defaults\"; unexpected: {', '.join(unknown) or 'no shots'}"])
        defaults = data.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise ShotSpecError(["\"defaults\": expected an object of CLI options"])
        data = data["shots"]
    if not isinstance(data, list) or not data:
        raise ShotSpecError(["expected a non-empty list of shots (objects of CLI options)"])
    parser = _parser()
    options = shot_options(parser)
    errors = []
    default_values = _normalise_keys(defaults, options, "defaults", errors)
    shots = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            errors.append(f"shot {index}: expected an object of CLI options, got {json.dumps(entry)[:60]}")
            continue
        values = {**default_values, **_normalise_keys(entry, options, f"shot {index}", errors)}
        try:
            shots.append(build_shot(index, values, options, Path(base), parser))
        except ShotSpecError as exc:
            errors += exc.errors
    seen = {}
    for shot in shots:
        out = os.path.realpath(shot.out)
        if out in seen:
            errors.append(f"shot {shot.index}, key 'out': {shot.out} is also shot {seen[out]}'s output "
                          "folder; give every shot its own")
        seen.setdefault(out, shot.index)
    errors += _outputs_over_inputs(shots)
    if errors:
        raise ShotSpecError(sorted(set(errors), key=errors.index))
    return shots


def _outputs_over_inputs(shots):
    """Every shot's outputs against every shot's inputs (its own included): one error per
    clash, naming both shots."""
    def key(option):
        return f"key {option.lstrip('-').replace('-', '_')!r}"

    errors = []
    for shot in shots:
        outputs = {key(name): path for name, path in shot_outputs(shot.args).items()}
        for other in shots:
            inputs = {f"{key(name)} of shot {other.index}": path for name, path in shot_input_paths(other.args).items()}
            found = clash(outputs, inputs)
            if found is not None:
                errors.append(f"shot {shot.index}, {describe_clash(found)}")
    return errors
