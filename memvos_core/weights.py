"""Official checkpoints: where they come from, how they are downloaded safely, how local files are found.

A download is written to a temporary file next to its target, verified (against the sha256 where
one is known, otherwise by loading it strictly into the network), its sha256 recorded in a sidecar
``<name>.sha256`` and only then renamed into place in one step. A partial, wrong or hostile file is
therefore never left under the real name, and a later change of the file is noticed before use.
"""
import hashlib
import http.client
import os
import secrets
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import torch

from .error_text import error_detail
from .families.registry import known_weights, load_network
from .network.checkpoint import SAFETENSORS_EXTENSIONS, read_state_dict


MODELS_DIR_ENV = "MEMVOS_MODELS_DIR"


def default_models_dir():
    """Where weights go outside ComfyUI: ``$MEMVOS_MODELS_DIR`` or a per-user cache folder."""
    return os.environ.get(MODELS_DIR_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "memvos", "models")


class WeightsError(RuntimeError):
    """A weights file that cannot be found, downloaded or trusted; the message says what to do."""


# Every family's known files (declared in its package), by name; tests swap entries here.
KNOWN_CHECKPOINTS = known_weights()

SIDECAR_SUFFIX = ".sha256"
PART_MARKER = ".part-"
CHUNK_BYTES = 1 << 20
STALE_PART_AGE_S = 3600  # an active download touches its part file every chunk


# ---------------------------------------------------------------- hashes and their records

def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(path):
    return os.fspath(path) + SIDECAR_SUFFIX


def read_recorded_sha256(path):
    """The sha256 recorded next to ``path`` when it was downloaded or converted, or None."""
    sidecar = sidecar_path(path)
    if not os.path.isfile(sidecar):
        return None
    with open(sidecar, encoding="utf-8") as f:
        fields = f.read().split()
    digest = fields[0].lower() if fields else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise WeightsError(
            f"the sha256 record {sidecar!r} is damaged (expected 64 hex digits): delete it and "
            f"{os.path.basename(path)!r} to download the file again")
    return digest


def record_sha256(path, digest):
    """Write the sidecar atomically, in ``sha256sum`` format so ``sha256sum -c`` can check it too."""
    sidecar = sidecar_path(path)
    tmp = f"{sidecar}{PART_MARKER}{secrets.token_hex(4)}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{digest}  {os.path.basename(path)}\n")
        os.replace(tmp, sidecar)
    finally:
        _remove_quietly(tmp)


def check_recorded_sha256(path):
    """Raise if ``path`` differs from the sha256 recorded when it was stored; True if checked."""
    recorded = read_recorded_sha256(path)
    if recorded is None:
        return False
    actual = file_sha256(path)
    if actual != recorded:
        raise WeightsError(
            f"weights file {os.fspath(path)!r} changed since it was downloaded (sha256 {actual[:16]}..., "
            f"recorded {recorded[:16]}... in {sidecar_path(path)!r}): delete it to download it again, "
            "or, if you replaced it on purpose, delete the .sha256 file next to it")
    return True


# ---------------------------------------------------------------- verification

def read_tensors(path, fmt=None, label=None):
    """A ``name -> tensor`` mapping read without running pickled code (see :func:`read_state_dict`)."""
    return read_state_dict(path, fmt, label)


def verify_checkpoint(path, fmt=None, label=None):
    """Default verification: the file loads strictly into the network of its family (told
    apart by its keys)."""
    load_network(read_tensors(path, fmt, label), source_name=label or os.fspath(path))




# ---------------------------------------------------------------- local files

def _safe_join(folder, name):
    """``folder/name`` for a relative name that stays inside ``folder`` (names come from widgets)."""
    if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        return None
    return os.path.join(folder, name)


def safetensors_sibling(path):
    stem, ext = os.path.splitext(os.fspath(path))
    return None if ext in SAFETENSORS_EXTENSIONS else stem + ".safetensors"


def preferred_weights_file(path):
    """``path``, or its converted ``.safetensors`` sibling when that was made from this very file."""
    sibling = safetensors_sibling(path)
    recorded = read_recorded_sha256(path)
    if sibling is None or recorded is None or not os.path.isfile(sibling):
        return os.fspath(path)
    if safetensors_source_sha256(sibling) != recorded:
        return os.fspath(path)  # made from another file: not a stand-in for this one
    check_recorded_sha256(sibling)
    return sibling


def safetensors_source_sha256(path):
    from safetensors import safe_open
    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            return (f.metadata() or {}).get("source_sha256")
    except Exception:  # unreadable header: the sibling is ignored, the original is used
        return None


def find_weights(name_or_path, search_dirs):
    """The checked local file for a name (relative to one of ``search_dirs``) or a path, or None."""
    name_or_path = os.fspath(name_or_path)
    if os.path.isabs(name_or_path):
        candidates = [name_or_path]
    else:
        candidates = [p for d in search_dirs if (p := _safe_join(d, name_or_path))]
    for candidate in candidates:
        if os.path.isfile(candidate):
            check_recorded_sha256(candidate)
            return preferred_weights_file(candidate)
    for candidate in candidates:  # only the converted file kept, the .pth deleted
        sibling = safetensors_sibling(candidate)
        if sibling and os.path.isfile(sibling) and read_recorded_sha256(sibling):
            check_recorded_sha256(sibling)
            return sibling
    return None


def resolve_weights(name_or_path, search_dirs):
    """Like :func:`find_weights`, but a missing file is an error that says where to put it."""
    found = find_weights(name_or_path, search_dirs)
    if found is not None:
        return found
    where = ", ".join(repr(os.fspath(d)) for d in search_dirs) or "(no model folders)"
    hint = ""
    known = KNOWN_CHECKPOINTS.get(os.path.basename(os.fspath(name_or_path)))
    if known:
        hint = f" It downloads automatically, or download it from {known.url} yourself."
    raise WeightsError(
        f"weights file {os.fspath(name_or_path)!r} was not found in {where}: put the file in one "
        f"of these folders or pick another.{hint}")


# ---------------------------------------------------------------- download

def ensure_weights(name, models_dir, *, url=None, sha256=None, search_dirs=None, progress=None,
                   cancel=None, timeout=60.0, verify=None, convert=False):
    """Path of a usable weights file ``name``, downloading it into ``models_dir`` if it is absent.

    url: defaults to the known checkpoint's release URL; sha256: the expected digest (defaults to
    the table's). search_dirs: folders to look in first (default: ``models_dir``). progress:
    ``callable(bytes_done, bytes_total_or_None)`` per chunk. cancel: a callable checked between
    chunks that raises to abort (the partial file is removed, the exception passes through).
    timeout: seconds the connection or any single read may stall before the download fails.
    verify: ``callable(temp_path)`` raising on a bad file, used when no sha256 is known;
    default: strict load into the network of the file's family. convert: also
    write a ``.safetensors`` copy (see :func:`convert_to_safetensors`), used from then on.
    """
    name = os.fspath(name)
    if not name or os.path.isabs(name) or _safe_join(models_dir, name) is None:
        raise WeightsError(f"weights name {name!r} must be a file name such as '{next(iter(KNOWN_CHECKPOINTS))}', inside the model folder")
    dirs = list(search_dirs or [])
    if not any(os.path.abspath(d) == os.path.abspath(models_dir) for d in dirs):
        dirs.append(models_dir)  # never download over a file that is already there
    known = KNOWN_CHECKPOINTS.get(name)
    url = url or (known.url if known else None)
    sha256 = (sha256 or (known.sha256 if known else None) or "").lower() or None
    md5 = known.md5 if known and url == known.url else None
    found = find_weights(name, dirs)
    if found is not None:
        official_name = os.path.basename(found) == os.path.basename(name)
        if sha256 and official_name and read_recorded_sha256(found) is None and file_sha256(found) != sha256:
            raise WeightsError(
                f"weights file {found!r} is not the official {name} (its sha256 differs): delete it "
                f"to download it again, or download it from {url} into {os.fspath(models_dir)!r}")
        return found
    if url is None:
        where = ", ".join(repr(os.fspath(d)) for d in dirs)
        raise WeightsError(
            f"weights file {name!r} was not found in {where} and is not a known checkpoint "
            f"({', '.join(KNOWN_CHECKPOINTS)}): put the file in one of these folders or pick a known name")
    target = download_weights(url, os.path.join(models_dir, name), sha256=sha256, progress=progress,
                              cancel=cancel, timeout=timeout, verify=verify, md5=md5)
    return convert_to_safetensors(target) if convert else target


def download_weights(url, target, *, sha256=None, progress=None, cancel=None, timeout=60.0, verify=None,
                     md5=None):
    """Download ``url`` to ``target`` through a verified temporary file; returns ``target``."""
    target = os.fspath(target)
    folder, name = os.path.split(os.path.abspath(target))
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise WeightsError(f"weights URL {url!r} must start with https:// (or http://)")
    fmt = "safetensors" if name.endswith(SAFETENSORS_EXTENSIONS) else "pth"
    if verify is None:
        def verify(path):
            verify_checkpoint(path, fmt, label=url)
    manual = f"download it manually from {url} into {folder!r}"
    os.makedirs(folder, exist_ok=True)
    remove_stale_parts(folder, name)
    tmp = os.path.join(folder, f"{name}{PART_MARKER}{secrets.token_hex(6)}")
    sidecar_written = False
    try:
        digest, md5_digest = _fetch_to(url, tmp, folder, progress, cancel, timeout, manual)
        if md5 and md5_digest != md5.lower():
            raise WeightsError(
                f"the file downloaded from {url} was refused: its md5 {md5_digest} is not the one the "
                f"official project publishes ({md5.lower()}): a changed or damaged file. Nothing was saved; "
                f"try again later or {manual} and check it")
        if sha256 and digest != sha256:
            raise WeightsError(
                f"the file downloaded from {url} was refused: its sha256 {digest[:16]}... is not the "
                f"expected {sha256[:16]}... (a changed or damaged file). Nothing was saved; try again "
                f"later or {manual} and check it")
        if not sha256:  # a known digest already proves it is the official file
            try:
                verify(tmp)
            except Exception as exc:  # a custom verifier may raise anything short of an interrupt
                raise WeightsError(f"the download from {url} was refused: {exc}. Nothing was saved; "
                                   f"check the URL, or {manual}") from None
        record_sha256(target, digest)
        sidecar_written = True
        os.replace(tmp, target)
    except BaseException:
        _remove_quietly(tmp)
        if sidecar_written and not os.path.exists(target):
            _remove_quietly(sidecar_path(target))
        raise
    return target


def _fetch_to(url, tmp, folder, progress, cancel, timeout, manual):
    request = urllib.request.Request(url, headers={"User-Agent": "ComfyUI-MemVOS weights downloader"})
    digest, md5 = hashlib.sha256(), hashlib.md5()
    done = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.headers.get_content_type() == "text/html":
                raise WeightsError(f"the download from {url} was refused: the server sent a web page, "
                                   f"not a weights file. Nothing was saved; {manual}")
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            _check_free_space(folder, total, url)
            with open(tmp, "wb") as out:
                while True:
                    if cancel is not None:
                        cancel()
                    chunk = response.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    md5.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise WeightsError(f"could not download {url}: the server answered HTTP {exc.code} {exc.reason}. "
                           f"Nothing was saved; check the name and URL, or {manual}") from None
    except urllib.error.URLError as exc:
        raise WeightsError(f"could not download {url}: {exc.reason}. Nothing was saved; check the "
                           f"internet connection and try again, or {manual}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise WeightsError(f"the download of {url} broke off after {done} bytes "
                           f"({type(exc).__name__}: {error_detail(exc)}). Nothing was saved; try again, "
                           f"or {manual}") from None
    if total is not None and done != total:
        raise WeightsError(f"the download of {url} broke off: {done} of {total} bytes arrived. Nothing "
                           f"was saved; try again, or {manual}")
    return digest.hexdigest(), md5.hexdigest()


def _check_free_space(folder, total, url):
    if total is None:
        return
    free = shutil.disk_usage(folder).free
    if free < total + (64 << 20):
        raise WeightsError(
            f"not enough disk space in {folder!r} to download {url}: {total / 2**20:.0f} MiB needed, "
            f"{free / 2**20:.0f} MiB free. Free some space or download the file yourself")


def remove_stale_parts(folder, name, max_age_s=STALE_PART_AGE_S):
    """Delete part files of ``name`` left by a crashed download; recent ones may still be in use."""
    prefix = f"{name}{PART_MARKER}"
    now = time.time()
    for entry in os.scandir(folder):
        if entry.name.startswith(prefix) and entry.is_file():
            try:
                if now - entry.stat().st_mtime > max_age_s:
                    os.remove(entry.path)
            except OSError:
                pass


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------- conversion

def convert_to_safetensors(path):
    """Write a ``.safetensors`` copy next to a ``.pth`` file and return its path.

    The copy records the sha256 of its source in its metadata, so it is used in place of the
    source only while the two belong together (:func:`preferred_weights_file`). It is read back
    and compared with the source before it is renamed into place.
    """
    from safetensors.torch import save_file
    path = os.fspath(path)
    target = safetensors_sibling(path)
    if target is None:
        return path
    source_sha = read_recorded_sha256(path)
    if source_sha is None:
        source_sha = file_sha256(path)
        record_sha256(path, source_sha)  # from now on a change of the source is noticed too
    else:
        check_recorded_sha256(path)
    if os.path.isfile(target) and safetensors_source_sha256(target) == source_sha:
        check_recorded_sha256(target)
        return target
    state = {k: v.contiguous().clone() for k, v in read_tensors(path).items()}  # no shared storage
    tmp = f"{target}{PART_MARKER}{secrets.token_hex(6)}"
    try:
        save_file(state, tmp, metadata={"source_sha256": source_sha, "source_name": os.path.basename(path)})
        copy = read_tensors(tmp, "safetensors", label=target)
        if copy.keys() != state.keys() or not all(torch.equal(copy[k], v) for k, v in state.items()):
            raise WeightsError(f"converting {path!r} to {target!r} did not give the same tensors; "
                               "the .pth file is used instead")
        record_sha256(target, file_sha256(tmp))
        os.replace(tmp, target)
    finally:
        _remove_quietly(tmp)
    return target
