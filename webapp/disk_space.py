"""Room on disk for what visitors upload and are handed, checked before the work starts.

With the disk full, Gradio's upload route answers HTTP 500 and leaves its partly written temporary files behind,
and a handler whose players or files cannot be copied into Gradio's cache ends in a bare "Error". Checking the
free space first turns both into a sentence and writes nothing: uploads are refused by an ASGI middleware before
Gradio reads the body, and handlers that hand out audio or files call `check_room` before decoding anything.
"""

import errno
import os
import shutil
import sys
import threading
import time
from collections import defaultdict, deque
from pathlib import Path

from gradio.utils import get_upload_folder
from python_multipart.exceptions import MultipartParseError

from nsynth_core.explorer.notes import session_upload_mb
from nsynth_core.exports.files import OUTPUT_MAX_AGE, outputs_dir

RESERVE_ENV = "NSYNTH_DISK_RESERVE_MB"
DEFAULT_RESERVE_MB = 200  # more than any one answer writes (a 9 x 9 grid of 4 s notes: ~30 MB of wav, zip, copies)
PARTIAL_UPLOAD_PREFIX = "tmp"  # Gradio streams an upload into <upload folder>/tmpXXXX, then moves it to a subfolder
ORPHAN_AGE = 600  # s without a write after which a partial upload is abandoned (an upload writes as bytes arrive)
EMPTY_AGE = 60  # s after which an empty partial upload is a leftover (a live one has bytes by then)
SWEEP_EVERY = 300  # s between sweeps for abandoned partial uploads
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


def remove_partial_uploads(folder=None, names=None, older_than: float = 0.0, empty_older_than: float | None = None
                           ) -> int:
    """Deletes Gradio's partly written upload files (top-level tmp* files) in `folder`, all of them or only
    `names`, last written more than `older_than` seconds ago (empty ones, which an upload sent by gradio_client
    leaves behind, already after `empty_older_than`); returns how many."""
    folder = Path(get_upload_folder() if folder is None else folder)
    now = time.time()
    removed = 0
    for name in partial_uploads(folder) if names is None else names:
        try:
            stat = (folder / name).stat()
            age = older_than if stat.st_size or empty_older_than is None else empty_older_than
            if stat.st_mtime <= now - age:
                (folder / name).unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def sweep_leftovers(stop: threading.Event, every: float = SWEEP_EVERY) -> None:
    """Removes every partial upload an earlier run left (this run has received none yet), then, every `every`
    seconds until `stop` is set, those no upload has written to for ORPHAN_AGE and empty ones after EMPTY_AGE."""
    if removed := remove_partial_uploads():
        print(f"Removed {removed} partly written upload(s) left by an earlier run.", file=sys.stderr, flush=True)
    while not stop.wait(every):
        if removed := remove_partial_uploads(older_than=ORPHAN_AGE, empty_older_than=EMPTY_AGE):
            print(f"Removed {removed} abandoned partial upload(s).", file=sys.stderr, flush=True)


def partial_uploads(folder) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(folder)
                if entry.name.startswith(PARTIAL_UPLOAD_PREFIX) and entry.is_file(follow_symlinks=False)}
    except FileNotFoundError:
        return set()


class UploadBudgets:
    """Bytes each address has uploaded over the last hour (as long as Gradio keeps an upload), so raw uploads
    that never become notes cannot fill the disk either."""

    def __init__(self, megabytes: float, window: float = OUTPUT_MAX_AGE):
        self.limit, self.window = round(megabytes * MB), window
        self.taken: dict[str, deque] = defaultdict(deque)  # address -> (time, bytes) of its accepted uploads

    def used(self, address: str) -> int:
        taken = self.taken[address]
        while taken and taken[0][0] < time.monotonic() - self.window:
            taken.popleft()
        return sum(size for _, size in taken)

    def record(self, address: str, size: int) -> None:
        self.taken[address].append((time.monotonic(), size))


def sender(scope) -> str:
    """The address an upload came from: the nearest proxy's word for it (the last X-Forwarded-For entry) where
    there is one, else the connection's."""
    forwarded = dict(scope["headers"]).get(b"x-forwarded-for", b"").decode("latin-1").split(",")[-1].strip()
    return forwarded or (scope.get("client") or ("unknown",))[0]


# A class behind one school router shares one address: the address's hourly budget is a class's, and each visitor's
# own budget is kept by the page (notes.check_upload).
ADDRESS_VISITORS = 40


class UploadRoomMiddleware:
    """Refuses an upload when it is larger than `max_request_bytes` (HTTP 413), takes its sender past
    `budget_mb` an hour (413) or the disk cannot take it (HTTP 507), each with a sentence: before any of it is
    read when its Content-Length says so, else as soon as the bytes that arrive do (a chunked upload has no
    length), its partial files then removed by Gradio's parser."""

    def __init__(self, app, max_request_bytes: int | None = None, folder=None, budget_mb: float | None = None,
                 max_file_mb: float | None = None):
        self.app, self.max_request_bytes, self.folder = app, max_request_bytes, folder
        self.file_refusal = max_file_mb and f"Upload files of at most {max_file_mb:g} MB each; this one is larger."
        self.budgets = UploadBudgets(budget_mb if budget_mb is not None else ADDRESS_VISITORS * session_upload_mb())

    def refusal(self, address: str, incoming: int) -> str | None:
        """Why `incoming` bytes from `address` are too many, or None."""
        if self.max_request_bytes is not None and incoming > self.max_request_bytes:
            return (f"Upload at most {self.max_request_bytes / MB:.0f} MB at a time; this upload has "
                    f"{incoming / MB:.0f} MB or more.")
        used = self.budgets.used(address)
        if used + incoming > self.budgets.limit:
            return (f"Uploads are limited to {self.budgets.limit / MB:.0f} MB an hour from one address; "
                    f"{used / MB:.0f} MB have come from yours. Try again later.")
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/upload"):
            return await self.app(scope, receive, send)
        folder = Path(get_upload_folder() if self.folder is None else self.folder)
        address = sender(scope)
        try:
            declared = int(dict(scope["headers"]).get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if problem := self.refusal(address, declared):
            return await refuse(send, problem, status=413)
        try:
            check_room(declared, [folder])
        except DiskFullError as error:
            return await refuse(send, str(error))
        before = partial_uploads(folder)
        received, problem, started, status = 0, None, False, None

        async def counting_receive():
            nonlocal received, problem
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if problem := self.refusal(address, received):
                    # Gradio's parser removes the files it was writing on a parse error, and answers 400.
                    raise MultipartParseError(problem)
            return message

        async def tracking_send(message):
            nonlocal started, status, problem
            if message["type"] == "http.response.start" and message["status"] == 413 and not problem:
                problem = self.file_refusal  # Gradio's own answer to a file over max_file_size names bytes
            if problem:  # Gradio's answer to the aborted parse is replaced by the sentence
                return
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except OSError as error:
            if error.errno != errno.ENOSPC or started:
                raise
            remove_partial_uploads(folder, partial_uploads(folder) - before)
            return await refuse(send, "The server's disk filled up during this upload, so it was not kept; "
                                      "your notes are kept. Try again later.")
        if problem:
            return await refuse(send, problem, status=413)
        if status == 200:
            self.budgets.record(address, received)


async def refuse(send, message: str, status: int = 507) -> None:
    print(f"Refused (upload): {message}", file=sys.stderr, flush=True)
    body = message.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
