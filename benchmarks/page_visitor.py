"""A visitor as the page's own script is one, for the benchmarks that put a class on one server.

The page uploads a dropped file once (`/gradio_api/upload`), joins the queue with an event that names the
uploaded path (`/gradio_api/queue/join`) and reads the answers on one event stream per session
(`/gradio_api/queue/data`). gradio_client does the same with threads that look for news every 50 ms, and sends a
file again with the event that uses it; thirty of those in one process took about a third of what the server's
two cores had to give, where a class's browsers run on devices of their own. Here every visitor is a coroutine
of one event loop that sleeps until the server says something.
"""

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx


class EventFailed(RuntimeError):
    pass


@dataclass
class QueueView:
    """What a visitor's event was told while it waited, and when (seconds after it was sent)."""
    rank: int | None = None  # its first place in the queue (0: next)
    eta: float | None = None  # the queue's first ETA, in seconds
    started: float | None = None  # when the server began it
    said: str | None = None  # the app's own first word on its wait (its progress text) that gives seconds
    said_at: float | None = None
    done: float | None = None

    def app_estimate(self) -> float | None:
        """The seconds the app's first estimate said were left ("..., about 3 s")."""
        found = re.search(r"about (\d+) s", self.said or "")
        return float(found.group(1)) if found else None


class Page:
    """The page's config, fetched once: which event an API name is, and which of its inputs are the session's
    own state (sent as null, as the page does)."""

    def __init__(self, url: str):
        self.url = url
        config = httpx.get(f"{url}config", timeout=60).raise_for_status().json()
        components = {component["id"]: component for component in config["components"]}
        self.events = {}
        for index, dependency in enumerate(config["dependencies"]):
            if name := dependency.get("api_name"):
                inputs = [components[i] for i in dependency["inputs"]]
                self.events[name] = (dependency.get("id", index), inputs,
                                     [components[i].get("type") for i in dependency["outputs"]])

    def data(self, api_name: str, values: list) -> tuple[int, list]:
        """(the event's index, its inputs): `values` in order for the inputs that are not state, the page's own
        values for those left out at the end (as the page sends what it shows), null for state."""
        index, inputs, _ = self.events[api_name]
        shown = [component for component in inputs if component.get("type") != "state"]
        if len(values) > len(shown):
            raise ValueError(f"/{api_name} takes {len(shown)} values, not {len(values)}")
        given = dict(zip((component["id"] for component in shown), values))
        return index, [None if component.get("type") == "state" else
                       given.get(component["id"], component.get("props", {}).get("value")) for component in inputs]

    def output(self, api_name: str, data: list, component_type: str):
        """The first of an event's outputs made by a component of this type."""
        return data[self.events[api_name][2].index(component_type)]


class Visitor:
    """One browser session: `open` starts it the way the page's first events do; `upload` and `call` are what
    a dropped file and an event are."""

    def __init__(self, page: Page, http: httpx.AsyncClient):
        self.page, self.http, self.session = page, http, uuid.uuid4().hex[:11]

    async def upload(self, path: Path) -> dict:
        """The file as the page sends it, once; returns what later events name it by."""
        with open(path, "rb") as file:
            answer = await self.http.post(f"{self.page.url}gradio_api/upload", files=[("files", (path.name, file))])
        answer.raise_for_status()
        server_path, = answer.json()
        return {"path": server_path, "orig_name": path.name, "size": path.stat().st_size,
                "meta": {"_type": "gradio.FileData"}}

    async def call(self, api_name: str, *values) -> tuple[list, QueueView]:
        """The event's outputs once it completes, and what the queue and the app told it on the way."""
        index, data = self.page.data(api_name, list(values))
        sent, view = time.perf_counter(), QueueView()
        joined = await self.http.post(f"{self.page.url}gradio_api/queue/join", json={
            "data": data, "event_data": None, "fn_index": index, "trigger_id": None, "session_hash": self.session})
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        async with self.http.stream("GET", f"{self.page.url}gradio_api/queue/data",
                                    params={"session_hash": self.session}) as stream:
            async for line in stream.aiter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") not in (None, event_id):
                    continue
                kind, now = message.get("msg"), time.perf_counter() - sent
                if kind == "estimation" and view.rank is None:
                    view.rank, view.eta = message.get("rank"), message.get("rank_eta")
                elif kind == "process_starts" and view.started is None:
                    view.started = now
                elif kind == "progress" and view.said is None:
                    said = [unit.get("desc") for unit in message.get("progress_data") or []
                            if unit.get("desc") and "about" in unit["desc"]]
                    if said:
                        view.said, view.said_at = said[0], now
                elif kind == "process_completed":
                    view.done = now
                    view.started = now if view.started is None else view.started
                    if not message.get("success"):
                        raise EventFailed(f"/{api_name}: {message.get('output', {}).get('error')}")
                    return message["output"]["data"], view
        raise EventFailed(f"/{api_name}: the event stream closed before the event completed")


def http_client(timeout: float) -> httpx.AsyncClient:
    """One connection pool for a whole class (a browser keeps a few connections per page; a class has many)."""
    return httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=None,
                                                                  max_keepalive_connections=None))
