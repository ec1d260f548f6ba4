"""The page's DDSP synthesiser (assets/synth/) in Debian's chromium, for its tests and its benchmark: a static
server over the assets (modules, worklets and weights need a real origin), a blank page of that origin, and calls
into the synthesiser's modules. Float arrays cross as base64 of their bytes: JSON lists of 64 000 numbers a note
are slow."""

import base64
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, static_server

ASSETS = Path(__file__).resolve().parent.parent / "assets"
WEIGHTS = "/assets/ddsp_synth.bin"  # the shipped decoder's, as the page fetches them
PAGE = "synth.html"
WAIT_MS = 300_000  # a busy 2-core machine
# Float32Array <-> base64 in the page, and each weights file parsed once.
HELPERS = """
window.floats = (text) => new Float32Array(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer);
window.base64 = (array) => {
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
};
window.models = {};
window.model = async (url) => {
  const {loadModel} = await import("/assets/synth/model.js");
  return (window.models[url] ??= await loadModel(url));
};
"""
# Whole notes through the offline renderer: {weights, notes: [{z, pitch, seed}]} -> [{harmonic, noise, audio}].
RENDER_NOTES = """async ({weights, notes}) => {
  const {renderNoteParts} = await import("/assets/synth/offline.js");
  const model = await window.model(weights);
  return notes.map(({z, pitch, seed}) => {
    const parts = renderNoteParts(model, floats(z), pitch, seed);
    return {harmonic: base64(parts.harmonic), noise: base64(parts.noise), audio: base64(parts.audio)};
  });
}"""
# One key held on the worklet in an OfflineAudioContext, the pad at (x, y), released at `releaseAt` seconds (or
# never): -> {audio, stats}. The stats round trip before rendering makes sure the processor has read the messages.
PLAY_KEY = """async ({weights, rate, corners, frames, x, y, pitch, seed, seconds, attack, release, releaseAt}) => {
  const {createSynth} = await import("/assets/synth/synth_node.js");
  const context = new OfflineAudioContext(1, Math.round(seconds * rate), rate);
  const synth = await createSynth(context, {weightsUrl: weights, corners: floats(corners), cornerFrames: frames});
  synth.output.connect(context.destination);
  synth.setPad(x, y, 0);
  synth.setEnvelope(attack, release);
  synth.noteOn(pitch, {seed});
  await synth.stats();
  if (releaseAt !== null) {
    context.suspend(releaseAt).then(async () => {
      synth.noteOff(pitch);
      await synth.stats();
      context.resume();
    });
  }
  const rendered = await context.startRendering();
  return {audio: base64(rendered.getChannelData(0)), stats: await synth.stats(), errors: synth.errors};
}"""


def to_page(array) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode()


def from_page(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


@contextmanager
def synth_page(served: dict | None = None, chromium_args=()):
    """A chromium page on a static server of the assets (at /assets/) and of `served` (URL name -> path)."""
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        for name, path in {"assets": ASSETS, **(served or {})}.items():
            (root / name).symlink_to(Path(path).resolve())
        (root / PAGE).write_text("<!doctype html><title>DDSP synthesiser</title>\n")
        with static_server(root) as url, sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
                *CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required", *chromium_args])
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.add_init_script(HELPERS)
            page.goto(url + PAGE)
            yield page
            browser.close()


def render_notes(page, notes: list[dict], weights: str = WEIGHTS) -> list[dict]:
    """notes: [{z: [frames, channels], pitch, seed}] -> [{harmonic, noise, audio}] as float32 arrays."""
    rendered = page.evaluate(RENDER_NOTES, {"weights": weights, "notes": [
        {"z": to_page(note["z"]), "pitch": int(note["pitch"]), "seed": int(note["seed"])} for note in notes]})
    return [{part: from_page(text) for part, text in note.items()} for note in rendered]


def play_key(page, corners: np.ndarray, pitch: int, x: float, y: float, seconds: float, seed: int = 0,
             attack: float = 0.0, release: float = 0.25, release_at: float | None = None,
             weights: str = WEIGHTS, rate: int = 16000) -> tuple[np.ndarray, dict]:
    """One key on the worklet (corners [4, frames, channels]); (audio, the processor's stats at the end)."""
    result = page.evaluate(PLAY_KEY, {
        "weights": weights, "rate": rate, "corners": to_page(corners), "frames": corners.shape[1], "x": x, "y": y,
        "pitch": pitch, "seed": seed, "seconds": seconds, "attack": attack, "release": release,
        "releaseAt": release_at})
    assert result["errors"] == []
    return from_page(result["audio"]), result["stats"]
