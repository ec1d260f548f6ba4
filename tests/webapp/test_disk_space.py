"""A nearly full disk: uploads and decodes are refused in words before anything is written, an upload that runs out
of room midway leaves nothing behind, and partial uploads left by an earlier run are removed at start-up."""

import asyncio
import errno
import os
import threading
import time

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from starlette.middleware import Middleware

from webapp import disk_space
from nsynth_core.exports import files as exports
from webapp.disk_space import DiskFullError, UploadRoomMiddleware, check_room, remove_partial_uploads
from tests.app_helpers import running_app, write_tiny_checkpoints

CORNERS = ["bass_electronic_fluidr3_gm033-036-100", "brass_acoustic_fluidr3_gm056-055-100"]


def test_room_is_refused_when_the_reserve_would_not_stay_free(tmp_path, monkeypatch):
    free_mb = disk_space.free_bytes(tmp_path) / disk_space.MB
    monkeypatch.setenv(disk_space.RESERVE_ENV, str(free_mb + 1))
    with pytest.raises(DiskFullError, match="disk is nearly full"):
        check_room(0, [tmp_path])
    monkeypatch.setenv(disk_space.RESERVE_ENV, str(free_mb / 2))
    check_room(0, [tmp_path / "not" / "made" / "yet"])  # a folder still to be made is on its parent's disk
    with pytest.raises(DiskFullError):
        check_room(round(free_mb * 0.75 * disk_space.MB), [tmp_path])  # what is coming in counts too


def left_an_hour_ago(path):
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    return path


def test_leftovers_are_removed_at_start_of_any_age_then_when_abandoned_or_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    (tmp_path / "tmpkilled").write_bytes(b"half a wav, from a run killed a moment ago")
    (tmp_path / "8e30037e").mkdir()
    (tmp_path / "8e30037e" / "tmpkept.wav").write_bytes(b"a finished upload")
    (tmp_path / "notes.wav").write_bytes(b"not Gradio's")
    stopped = threading.Event()
    stopped.set()
    disk_space.sweep_leftovers(stopped)  # the start-up pass only
    assert sorted(path.name for path in tmp_path.iterdir()) == ["8e30037e", "notes.wav"]
    (tmp_path / "tmpabandoned").write_bytes(b"half a wav, not written to for an hour")
    left_an_hour_ago(tmp_path / "tmpabandoned")
    (tmp_path / "tmpempty").touch()  # what an upload sent by gradio_client leaves
    os.utime(tmp_path / "tmpempty", (time.time() - disk_space.EMPTY_AGE - 1,) * 2)
    (tmp_path / "tmpinflight").write_bytes(b"an upload being received now")
    (tmp_path / "tmpjuststarted").touch()
    assert remove_partial_uploads(tmp_path, older_than=disk_space.ORPHAN_AGE,
                                  empty_older_than=disk_space.EMPTY_AGE) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["8e30037e", "notes.wav", "tmpinflight",
                                                                "tmpjuststarted"]


def gradio_upload_app(folder, max_file_mb=None, **limits):
    """Gradio's own upload route behind the middleware, in this process."""
    with gr.Blocks() as blocks:
        gr.File()
    blocks.max_file_size = max_file_mb and max_file_mb * disk_space.MB  # as launch() sets it
    return gr.routes.App.create_app(blocks, app_kwargs={"middleware": [
        Middleware(UploadRoomMiddleware, folder=folder, max_file_mb=max_file_mb, **limits)]})


async def chunked_file(megabytes: int):
    """A multipart upload of one file sent in chunks, with no Content-Length."""
    yield b'--edge\r\nContent-Disposition: form-data; name="files"; filename="a.wav"\r\n\r\n'
    for _ in range(megabytes * 16):
        yield b"x" * (64 * 1024)
    yield b"\r\n--edge--\r\n"


def test_chunked_uploads_are_counted_as_they_arrive_against_the_request_cap_and_the_senders_budget(
        tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    monkeypatch.setenv(disk_space.RESERVE_ENV, "0")
    app = gradio_upload_app(tmp_path, max_request_bytes=5 * disk_space.MB, budget_mb=12)
    one_file_app = gradio_upload_app(tmp_path, max_file_mb=2)

    async def send_uploads():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://page") as client:
            answers = [await client.post("/gradio_api/upload", content=chunked_file(megabytes),
                                         headers={"content-type": "multipart/form-data; boundary=edge"})
                       for megabytes in (8, 4, 4, 4)]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=one_file_app), base_url="http://page") as client:
            return *answers, await client.post("/gradio_api/upload", content=chunked_file(3),
                                               headers={"content-type": "multipart/form-data; boundary=edge"})

    over_cap, first, second, over_budget, over_file_size = asyncio.run(send_uploads())
    assert over_cap.status_code == 413
    assert over_cap.text == "Upload at most 5 MB at a time; this upload has 5 MB or more."
    assert first.status_code == second.status_code == 200
    assert over_budget.status_code == 413 and over_budget.text == (
        "Uploads are limited to 12 MB an hour from one address; 8 MB have come from yours. Try again later.")
    assert over_file_size.status_code == 413
    assert over_file_size.text == "Upload files of at most 2 MB each; this one is larger."
    stored = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert sum(path.stat().st_size for path in stored) == 4 * disk_space.MB  # the two 4 MB files are one copy
    assert not disk_space.partial_uploads(tmp_path)
    log = capfd.readouterr().err
    assert log.count("Refused (upload): ") == 3 and "Traceback" not in log


def upload_through(middleware_app, body=b"x" * 1000):
    """POST /gradio_api/upload through the middleware; returns (status, text) of the answer."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/gradio_api/upload",
             "headers": [(b"content-length", str(len(body)).encode())]}
    asyncio.run(middleware_app(scope, receive, send))
    return sent[0]["status"], sent[1]["body"].decode()


def test_an_upload_that_fills_the_disk_midway_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(disk_space.RESERVE_ENV, "0")
    (tmp_path / "tmpother").write_bytes(b"another visitor's upload in flight")

    async def gradio_upload(scope, receive, send):  # writes part of the file, then the disk is full
        (tmp_path / "tmpmine").write_bytes(b"part of the body")
        raise OSError(errno.ENOSPC, "No space left on device")

    status, text = upload_through(UploadRoomMiddleware(gradio_upload, folder=tmp_path))
    assert status == 507 and "disk filled up during this upload" in text
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tmpother"]


def test_an_upload_is_refused_before_it_is_read_when_the_disk_is_nearly_full(tmp_path, monkeypatch):
    monkeypatch.setenv(disk_space.RESERVE_ENV, str(disk_space.free_bytes(tmp_path) / disk_space.MB + 1))
    reached = []

    async def gradio_upload(scope, receive, send):
        reached.append(True)

    status, text = upload_through(UploadRoomMiddleware(gradio_upload, folder=tmp_path))
    assert status == 507 and "disk is nearly full" in text and not reached


def test_an_upload_over_the_request_budget_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv(disk_space.RESERVE_ENV, "0")
    reached = []

    async def gradio_upload(scope, receive, send):
        reached.append(True)

    status, text = upload_through(UploadRoomMiddleware(gradio_upload, max_request_bytes=500, folder=tmp_path))
    assert status == 413 and "Upload at most" in text and not reached


@pytest.fixture(scope="module")
def full_disk_app(tmp_path_factory):
    """(url, client, log, Gradio's folder) of `python app.py` that sees its disk as nearly full (the reserve is
    larger than the disk), started over a partial upload left by an earlier run."""
    checkpoints = tmp_path_factory.mktemp("checkpoints")
    gradio_folder = tmp_path_factory.mktemp("gradio")
    (gradio_folder / "tmp_left_by_a_crash").write_bytes(b"half a wav")  # of any age
    write_tiny_checkpoints(checkpoints)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(gradio_folder))
        patch.setenv(exports.OUTPUTS_ENV, str(tmp_path_factory.mktemp("outputs")))
        patch.setenv(disk_space.RESERVE_ENV, str(10 ** 9))
        with running_app(checkpoints, checkpoints / "app.log") as url:
            yield url, Client(url, verbose=False), checkpoints / "app.log", gradio_folder


def test_a_full_disk_refuses_uploads_and_decodes_in_words_and_the_page_still_serves(full_disk_app, write_tone):
    url, client, log, gradio_folder = full_disk_app
    assert "Removed 1 partly written upload(s)" in log.read_text()
    assert not (gradio_folder / "tmp_left_by_a_crash").exists()
    with open(write_tone(), "rb") as tone:
        answer = httpx.post(f"{url}gradio_api/upload", files=[("files", ("tone.wav", tone))], timeout=60)
    assert answer.status_code == 507 and "disk is nearly full" in answer.text
    with pytest.raises(Exception, match="disk is nearly full"):
        client.predict(*CORNERS, None, None, "line (A to B)", 2, "bilinear", "DDSP", 1.0, 0.1, api_name="/grid")
    assert "Refused (grid_for_scripts): The server's disk is nearly full" in log.read_text()
    assert "Traceback" not in log.read_text()
    assert httpx.get(url, timeout=30).status_code == 200
