"""Room on disk for what visitors upload and are handed, checked before the work starts.

With the disk full, Gradio's upload route answers HTTP 500 and leaves its partly written temporary files behind,
and a handler whose players or files cannot be copied into Gradio's cache ends in a bare "Error". Checking the
free space first turns both into a sentence and writes nothing: uploads are refused by an ASGI middleware before
Gradio reads the body, and handlers that hand out audio or files call `check_room` before decoding anything.
"""

import errno
import os
import shutil
import time
from pathlib import Path

from gradio.utils import get_upload_folder

from nsynth_core.exports.files import outputs_dir

RESERVE_ENV = "NSYNTH_DISK_RESERVE_MB"
DEFAULT_RESERVE_MB = 200  # more than any one answer writes (a 9 x 9 grid of 4 s notes: ~30 MB of wav, zip, copies)
PARTIAL_UPLOAD_PREFIX = "tmp"  # Gradio streams an upload into <upload folder>/tmpXXXX, then moves it to a subfolder
ORPHAN_AGE = 600  # s: older partial uploads are orphans (another app sharing the folder may be receiving a new one)
MB = 1024 * 1024


class DiskFullError(ValueError):
    """Too little room on disk for the request; nothing was written."""


def reserve_bytes() -> int:
    return round(float(os.environ.get(RESERVE_ENV, DEFAULT_RESERVE_MB)) * MB)


def free_bytes(folder) -> int:
    """Free bytes on the file system that holds `folder` (or would hold it, if it does not exist yet)."""
    path = Path(folder).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def watched_folders() -> list[Path]:
    """Where answers are written: Gradio's cache (players, uploads) and the app's outputs folder."""
    return [Path(get_upload_folder()), outputs_dir()]


def check_room(incoming_bytes: int = 0, folders=None) -> None:
    """Raises DiskFullError unless every folder keeps the reserve free after `incoming_bytes` more."""
    for folder in watched_folders() if folders is None else folders:
        free = free_bytes(folder)
        if free - incoming_bytes < reserve_bytes():
            raise DiskFullError(f"The server's disk is nearly full ({free / MB:.0f} MB free), so nothing new can "
                                "be uploaded or decoded right now; your notes are kept. Try again later.")


def remove_partial_uploads(folder=None, names=None, older_than: float = 0.0) -> int:
    """Deletes Gradio's partly written upload files (top-level tmp* files) in `folder`, all of them or only
    `names`, last written more than `older_than` seconds ago; returns how many."""
    folder = Path(get_upload_folder() if folder is None else folder)
    cutoff = time.time() - older_than
    removed = 0
    for name in partial_uploads(folder) if names is None else names:
        try:
            if (folder / name).stat().st_mtime <= cutoff:
                (folder / name).unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def partial_uploads(folder) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(folder)
                if entry.name.startswith(PARTIAL_UPLOAD_PREFIX) and entry.is_file(follow_symlinks=False)}
    except FileNotFoundError:
        return set()


class UploadRoomMiddleware:
    """Refuses an upload, before any of it is read, when it is larger than `max_request_bytes` (HTTP 413) or
    the disk cannot take it (HTTP 507), each with a sentence; an upload that still runs out of room midway gets
    the 507 answer and its partial files are removed."""

    def __init__(self, app, max_request_bytes: int | None = None, folder=None):
        self.app, self.max_request_bytes, self.folder = app, max_request_bytes, folder

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/upload"):
            return await self.app(scope, receive, send)
        folder = Path(get_upload_folder() if self.folder is None else self.folder)
        headers = dict(scope["headers"])
        try:
            incoming = int(headers.get(b"content-length", b"0"))
        except ValueError:
            incoming = 0
        if self.max_request_bytes is not None and incoming > self.max_request_bytes:
            return await refuse(send, f"Upload at most {self.max_request_bytes / MB:.0f} MB at a time; this upload "
                                      f"has {incoming / MB:.0f} MB.", status=413)
        try:
            check_room(incoming, [folder])
        except DiskFullError as error:
            return await refuse(send, str(error))
        before = partial_uploads(folder)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except OSError as error:
            if error.errno != errno.ENOSPC or started:
                raise
            remove_partial_uploads(folder, partial_uploads(folder) - before)
            await refuse(send, "The server's disk filled up during this upload, so it was not kept; "
                               "your notes are kept. Try again later.")


async def refuse(send, message: str, status: int = 507) -> None:
    body = message.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
