"""JSON from outside (a widget, SHOTS.json, a file's metadata) parsed into one clear error.

``json.loads`` raises ``JSONDecodeError`` for broken text and ``RecursionError`` for text nested
deeper than the interpreter's recursion limit (``[[[[...]]]]`` 5,000 deep): both become a
:class:`JSONInputError` naming the input.
"""
import json

MAX_DEPTH_HINT = "no MemVOS file nests deeper than a few levels"


class JSONInputError(ValueError):
    """Text that is not usable JSON; the message names the input, ``detail`` says what is wrong."""

    def __init__(self, what, detail):
        super().__init__(f"{what} is not valid JSON ({detail})")
        self.detail = detail


def parse_json(text, what):
    """``json.loads(text)`` or a :class:`JSONInputError` starting with ``what``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JSONInputError(what, f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise JSONInputError(what, f"nested too deeply to read; {MAX_DEPTH_HINT}") from None
    except (TypeError, UnicodeDecodeError) as exc:
        raise JSONInputError(what, f"not JSON text: {exc}") from None
