"""A picture of a UI-format workflow (nodes, sockets, widget values, links), drawn with PIL.

Used for the template browser's thumbnails (``<name>.jpg`` beside ``<name>.json``) and the
README's pictures of the example graphs; a schematic, not a screenshot of the frontend.
"""
from PIL import Image, ImageDraw, ImageFont

TITLE_H, SLOT_H, WIDGET_H, MARGIN = 30, 20, 18, 40
BACKGROUND = (32, 32, 36)
LINK_COLOURS = {"IMAGE": (100, 181, 246), "MASK": (129, 199, 132), "VIDEO": (255, 183, 77), "FLOAT": (170, 170, 170),
                "INT": (170, 170, 170), "STRING": (170, 170, 170)}
OUR_LINK = (236, 128, 255)
NODE_BODY, OUR_TITLE, CORE_TITLE = (53, 53, 58), (112, 64, 140), (70, 70, 78)
NOTE_BODY, NOTE_TITLE = (102, 85, 51), (68, 51, 34)
TEXT, DIM = (235, 235, 235), (165, 165, 165)


def _font(size):
    return ImageFont.load_default(size=size)


def _slot_y(node, index):
    return node["pos"][1] + TITLE_H + SLOT_H * index + SLOT_H // 2


def _text(draw, xy, text, font, fill, width):
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "\u2026" if len(text) > 2 else ""
    draw.text(xy, text, font=font, fill=fill)


def _widget_lines(node, names):
    """``(name, value)`` per widget; the upload button's value is left out."""
    values = node.get("widgets_values") or []
    names = list(names or [])
    values = values[:len(names)] if names else values
    text = [v if isinstance(v, str) else ("true" if v is True else "false" if v is False else repr(v)) for v in values]
    return list(zip(names + [""] * (len(text) - len(names)), text))


def _curve(start, end, steps=24):
    """LiteGraph-like spline: leaves the output to the right, enters the input from the left."""
    reach = max(60, abs(end[0] - start[0]) * 0.5)
    p1, p2 = (start[0] + reach, start[1]), (end[0] - reach, end[1])
    points = []
    for i in range(steps + 1):
        t = i / steps
        a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3
        points.append((a * start[0] + b * p1[0] + c * p2[0] + d * end[0],
                       a * start[1] + b * p1[1] + c * p2[1] + d * end[1]))
    return points


def _height(node):
    """The node's height as drawn: what its sockets and widgets need (notes keep theirs)."""
    if node["type"] in ("Note", "MarkdownNote"):
        return node["size"][1]
    rows = max(len(node.get("inputs", [])), len(node.get("outputs", [])))
    return TITLE_H + SLOT_H * rows + 10 + WIDGET_H * len(_widget_lines(node, None))


def draw(workflow, width_px=1600, display_names=None, widget_names=None):
    """The workflow as an RGB image ``width_px`` wide. ``display_names``: node titles by type;
    ``widget_names``: ``type -> [widget names]`` to label the values."""
    widget_names = widget_names or {}
    nodes = {n["id"]: n for n in workflow["nodes"]}
    left = min(n["pos"][0] for n in nodes.values()) - MARGIN
    top = min(n["pos"][1] for n in nodes.values()) - MARGIN
    right = max(n["pos"][0] + n["size"][0] for n in nodes.values()) + MARGIN
    bottom = max(n["pos"][1] + _height(n) for n in nodes.values()) + MARGIN
    canvas = Image.new("RGB", (right - left, bottom - top), BACKGROUND)
    pen = ImageDraw.Draw(canvas)
    shift = (lambda x, y: (x - left, y - top))
    small, title_font = _font(13), _font(15)
    for _, origin, slot, target, target_slot, kind in workflow["links"]:
        a, b = nodes[origin], nodes[target]
        start = shift(a["pos"][0] + a["size"][0], _slot_y(a, slot))
        end = shift(b["pos"][0], _slot_y(b, target_slot))
        colour = OUR_LINK if kind.startswith("MEMVOS_") else LINK_COLOURS.get(kind, DIM)
        pen.line(_curve(start, end), fill=colour, width=3, joint="curve")
    for node in nodes.values():
        x, y = shift(*node["pos"])
        w, h = node["size"][0], _height(node)
        note = node["type"] in ("Note", "MarkdownNote")
        ours = node.get("properties", {}).get("cnr_id") == "memvos"
        body, head = (NOTE_BODY, NOTE_TITLE) if note else (NODE_BODY, OUR_TITLE if ours else CORE_TITLE)
        pen.rounded_rectangle([x, y, x + w, y + h], radius=8, fill=body, outline=(20, 20, 20), width=2)
        pen.rounded_rectangle([x, y, x + w, y + TITLE_H], radius=8, fill=head)
        name = node.get("title") or (display_names or {}).get(node["type"], node["type"])
        _text(pen, (x + 10, y + 7), "Note" if note else name, title_font, TEXT, w - 20)
        if note:
            _wrap(pen, node["widgets_values"][0], (x + 10, y + TITLE_H + 6), w - 20, y + h - 8, small)
            continue
        for i, inp in enumerate(node.get("inputs", [])):
            cy = y + TITLE_H + SLOT_H * i + SLOT_H // 2
            pen.ellipse([x - 5, cy - 5, x + 5, cy + 5], fill=LINK_COLOURS.get(inp["type"], OUR_LINK))
            _text(pen, (x + 10, cy - 8), inp["name"], small, DIM, w / 2 - 10)
        for i, out in enumerate(node.get("outputs", [])):
            cy = y + TITLE_H + SLOT_H * i + SLOT_H // 2
            pen.ellipse([x + w - 5, cy - 5, x + w + 5, cy + 5], fill=LINK_COLOURS.get(out["type"], OUR_LINK))
            label = out["name"]
            pen.text((x + w - 10 - pen.textlength(label, font=small), cy - 8), label, font=small, fill=DIM)
        rows = max(len(node.get("inputs", [])), len(node.get("outputs", [])))
        wy = y + TITLE_H + SLOT_H * rows + 6
        for label, value in _widget_lines(node, widget_names.get(node["type"])):
            pen.rounded_rectangle([x + 8, wy, x + w - 8, wy + WIDGET_H - 3], radius=6, fill=(34, 34, 38))
            _text(pen, (x + 14, wy + 1), label, small, DIM, w * 0.45)
            shown = value if pen.textlength(value, font=small) < w * 0.5 else value[:24] + "\u2026"
            pen.text((x + w - 14 - pen.textlength(shown, font=small), wy + 1), shown, font=small, fill=TEXT)
            wy += WIDGET_H
    scale = width_px / canvas.width
    return canvas.resize((width_px, max(1, round(canvas.height * scale))), Image.LANCZOS)


def _wrap(pen, text, xy, width, bottom, font):
    x, y = xy
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}".strip()
            if pen.textlength(trial, font=font) > width and line:
                if y + 16 > bottom:
                    return
                pen.text((x, y), line, font=font, fill=TEXT)
                y, line = y + 16, word
            else:
                line = trial
        if y + 16 > bottom:
            return
        pen.text((x, y), line, font=font, fill=TEXT)
        y += 16
