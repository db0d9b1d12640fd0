"""Warnings where the artist looks: the server log and a toast in ComfyUI's page.

A warning only in the server log is missed (a mask resized to the frame, an output of a long shot
about to take gigabytes of RAM); :func:`warn` logs it and sends it to the page as a
``memvos.warning`` event, which web/memvos_player.js shows as a toast. Sizes are written as
ComfyUI writes them: width×height (:func:`size_text`)."""
import logging
import sys

LOG = logging.getLogger("memvos")  # the pack's logger (nodes/common.py); common imports this module's users

EVENT = "memvos.warning"
WARN_BYTES = 256 * 2 ** 20  # an output batch this big is announced before it is built


def size_text(height_width):
    """``(height, width)`` -> ``"1280×720"`` (width first, as ComfyUI shows sizes)."""
    height, width = (int(v) for v in height_width)
    return f"{width}\u00d7{height}"


def send_event(event, data):
    """Send ``data`` to the page as the websocket event ``event`` (nothing outside a ComfyUI server)."""
    server = sys.modules.get("server")  # ComfyUI's, imported before any pack; never import one here
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    send = getattr(instance, "send_sync", None)
    if send is not None:
        try:
            send(event, data)
        except Exception as exc:  # a message to the page is never worth failing a run over
            LOG.debug("MemVOS: %s could not reach the page (%s)", event, exc)


def warn(text, node=None):
    """Log ``text`` and show it as a toast in the page."""
    LOG.warning("MemVOS: %s", text)
    send_event(EVENT, {"message": text, "node": node})


def batch_warning(node, output, frames, height_width, channels, bytes_per_value=4):
    """Warn, before it is built, of the RAM an IMAGE/MASK batch ``output`` will take."""
    size = frames * height_width[0] * height_width[1] * channels * bytes_per_value
    if size < WARN_BYTES:
        return
    amount = f"{size / 2 ** 30:.1f} GiB" if size >= 2 ** 30 else f"{size / 2 ** 20:.0f} MiB"
    warn(f"{node}: building its {output} output, {frames} frames at {size_text(height_width)} "
         f"({amount} of RAM), because a node is connected to it; on a long shot connect MemVOS Save "
         "Masks to the masks instead, or pick a range with Get Masks / Get Frames")


__all__ = ["EVENT", "batch_warning", "send_event", "size_text", "warn"]
