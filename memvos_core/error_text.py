"""Quoting another library's error inside one of ours: whole words, one sentence, a bounded length.

torch and safetensors explain a damaged file in paragraphs ("... This is an internal miniz error.
If you are seeing this error ..."); quoted whole they bury our fix, cut at a fixed width they end
mid-word ("transferred incorrectly, o"). :func:`error_detail` keeps the first sentence and, if that
is still long, cuts it at a word boundary with "…"."""

DETAIL_CHARS = 200


def shortened(text, limit=DETAIL_CHARS):
    """``text`` itself when it fits in ``limit`` characters, else its words up to the last space that
    fits, followed by "…" (a single word longer than ``limit`` is cut, still ending in "…")."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head = text[:limit - 1]
    space = head.rfind(" ")
    if space > 0:
        head = head[:space]
    return head.rstrip(" ,;:.-") + "\u2026"


def error_detail(exc, limit=DETAIL_CHARS):
    """The first sentence of ``exc``'s first line, shortened to ``limit`` at a word boundary."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return "no detail"
    first = lines[0].strip()
    end = first.find(". ")
    return shortened(first[:end] if end > 0 else first, limit)


__all__ = ["DETAIL_CHARS", "error_detail", "shortened"]
