"""The Play tab: an instrument of four corner notes (the Grid tab's, or the example's) played in the page by the
DDSP decoder itself (assets/synth/, driven by assets/play.js): the pad's point is the bilinear mix of the corners'
Z, keys play their exact pitch. Beside it, any point of the map heard as a blend of its nearest notes (also a click
on the Explore tab's map), and the grid at many pitches as a SoundFont. Browsers without AudioWorklet play the
grid decoded on the server instead (decode_for_playing)."""

import functools
import json

import gradio as gr
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from nsynth_core.audio.core import SAMPLE_RATE
from nsynth_core.explorer.explorer import ASSETS_DIR, Explorer
from nsynth_core.explorer.grids import grid_size, played_pitches
from nsynth_core.explorer.loaded_models import SLOW_DECODE_SECONDS, load_model
from nsynth_core.explorer.notes import ExplorerError, Note
from nsynth_core.explorer.decoding import describe_duration
from nsynth_core.explorer.interpolation import GRID_SIZES
from nsynth_core.explorer.multigrid import ONS_PITCHES
from nsynth_core.exports import example_grid
from nsynth_core.exports import files as exports
from nsynth_core.exports.browser_pack import write_browser_pack
from nsynth_core.exports.soundfont import write_soundfont
from webapp import figures, lanes
from webapp.explore_tab import clicked_place, heard_in_page
from webapp.shared import (DECODERS, DEFAULT_DECODER, MAX_SIZE, OWN_PITCH, Tab, checkpoint_paths, chosen_pitch,
                           decode_estimate, default_checkpoint, friendly, writes_files)

MULTIGRID_SIZE = 9  # Open NSynth Super's
SOUNDFONT_SECONDS = 1.0
PLAY_PITCHES = (48, 56, 64, 72)  # spread over the on-screen keyboard's two octaves: every key at most 4 away
PLAY_SIZE, PLAY_SECONDS = 3, 2.0  # 36 notes: a few seconds with DDSP, 2.3 MB for the page to fetch
PLACE_DECIMALS = 1  # a clicked place is shown as "x 3.2, y -1.0": the map's units are a few wide
# The synthesiser's code and weights, served on their own route: Gradio's file route refuses the whole repository.
SYNTH_ROUTE = "/play-synth"
SYNTH_WEIGHTS = ("ddsp_synth.bin", "ddsp_synth.json")
# Hands the server's settings for the map's in-page sound to assets/map_sound.js (kept for it if it starts later).
CONFIGURE_MAP_SOUND = "(settings) => { window.nsynthMapSettings = settings; window.nsynthMap?.configure(settings); }"


@functools.cache
def page_models() -> dict[str, str]:
    """Fingerprints of the weights the page's own synthesiser holds: the DDSP decoder (ddsp_synth.json) and the
    WaveNet whose Z it blends on a map click (synth/map_notes.json)."""
    synth = json.loads((ASSETS_DIR / SYNTH_WEIGHTS[1]).read_text())["source"]["fingerprint"]
    map_notes = json.loads((ASSETS_DIR / example_grid.MAP_NOTES_FILE).read_text())["encoder"]
    return {"ddsp": synth, "wavenet": map_notes}


PLAY_SURFACE = """
<div id="play-surface">
  <div id="play-pad" title="Touch or drag: the sound is the corners' mix at your finger">
    <div class="corner" data-corner="0"></div><div class="corner" data-corner="1"></div>
    <div class="corner" data-corner="2"></div><div class="corner" data-corner="3"></div>
  </div>
  <div id="play-side">
    <div id="play-keys-scroll"><div id="play-keys"></div></div>
    <div id="play-envelope">
      <label>Attack <input id="play-attack" type="range" min="0" max="1" step="0.01" value="0.01"></label>
      <label>Release <input id="play-release" type="range" min="0.05" max="3" step="0.05" value="0.5"></label>
    </div>
    <p id="play-status">Loading the synthesiser…</p>
  </div>
</div>
"""


def synth_routes() -> list:
    """The routes that serve assets/synth/ and the decoder's weights beside it, as the page's modules expect."""
    weights = [Route(f"{SYNTH_ROUTE}/{name}", lambda request, path=ASSETS_DIR / name: FileResponse(path))
               for name in SYNTH_WEIGHTS]
    return [*weights, Mount(f"{SYNTH_ROUTE}/synth", StaticFiles(directory=ASSETS_DIR / "synth"))]


def describe_blend(blend, notes, decoder, played: int) -> str:
    """The blend's notes and shares, each after a ring in the colour the map marks that note with (mark_blend)."""
    # No-break spaces keep each ring by its note's name and each % by its number where the line wraps.
    shares = (f"<span style='color:{colour}'>◯</span>\u00a0**{note.name}** {100 * w:.0f}\u00a0%"
              for note, w, colour in zip(notes, blend.weights, figures.BLEND_COLOURS))
    return "Blend of " + ", ".join(shares) + f", decoded by the {decoder} decoder at MIDI {played}."


def multigrid_estimate(size, pitches, decoder, seconds, *paths):
    if not pitches:
        return "Choose at least one pitch to decode."
    return decode_estimate(decoder, paths, int(size) ** 2, seconds, len(pitches))


class PlayTab(Tab):
    def __init__(self, explorer: Explorer, example: example_grid.ExampleGrid):
        super().__init__(explorer)
        self.example = example

    def layout(self) -> None:
        with gr.Tab("Play", elem_id="play-tab") as self.tab:
            gr.Markdown("Touch the pad or play the keys (a MIDI keyboard, the computer's keys or the ones below): "
                        "each corner is a note, and the sound is their mix at your finger, made by the DDSP "
                        "decoder in your browser. Choose other corners in the Grid tab.")
            gr.HTML(PLAY_SURFACE)
            self.synth_corners = gr.JSON(visible="hidden", label="The corners' Z for the page's synthesiser")
            self.map_sound = gr.JSON(self.map_sound_settings(
                DEFAULT_DECODER, OWN_PITCH, example_grid.SECONDS, default_checkpoint(self.explorer, "wavenet"),
                default_checkpoint(self.explorer, "ddsp")), visible="hidden", label="The map's in-page sound")
            gr.Markdown("**A point of the map:** click empty space on the Explore tab's map, or give a place here, "
                        "to hear the blend of its three nearest notes.")
            with gr.Row():
                self.point_decoder = gr.Radio(list(DECODERS), value=DEFAULT_DECODER, label="Decoder")
                self.point_x = gr.Number(0.0, step=0.1, label="Map x")
                self.point_y = gr.Number(0.0, step=0.1, label="Map y")
                self.play_button = gr.Button("Play this point", variant="primary")
            self.point_player = gr.Audio(label="Map point", interactive=False, autoplay=True)
            self.point_blend = gr.Markdown(label="Blend heard")
            gr.Markdown(f"**SoundFont:** every cell of the Grid tab's four corners (or the example's) at Open NSynth "
                        f"Super's {len(ONS_PITCHES)} pitches, for any sampler.")
            with gr.Row():
                self.multigrid_size = gr.Slider(min(GRID_SIZES), MAX_SIZE, value=MULTIGRID_SIZE, step=1,
                                                label="Cells per side")
                self.soundfont_seconds = gr.Slider(0.5, 4.0, value=SOUNDFONT_SECONDS, step=0.5,
                                                   label="Note length (s)")
                self.soundfont_button = gr.Button("Download as SoundFont (.sf2)")
            self.soundfont_expected = gr.Markdown()
            self.soundfont_file = gr.File(label="SoundFont")
            with gr.Accordion("Play without the in-page synthesiser", open=False):
                gr.Markdown("For browsers that cannot run the synthesiser (no AudioWorklet): the grid's cells "
                            "decoded on the server at a few pitches; keys between them play the nearest pitch sped "
                            "up or slowed down.")
                with gr.Row():
                    self.play_size = gr.Slider(min(GRID_SIZES), MAX_SIZE, value=PLAY_SIZE, step=1,
                                               label="Cells per side to play")
                    self.play_pitches = gr.Dropdown(list(ONS_PITCHES), value=list(PLAY_PITCHES), multiselect=True,
                                                    label="Pitches to decode (MIDI)")
                    self.play_seconds = gr.Slider(0.5, 4.0, value=PLAY_SECONDS, step=0.5,
                                                  label="Note length to play (s)")
                    self.play_decode_button = gr.Button("Decode for playing")
                self.play_expected = gr.Markdown()
            self.play_file = gr.File(label="Decoded notes (16-bit PCM, index below)", visible="hidden")
            self.play_index = gr.JSON(visible="hidden", label="Index of the decoded notes")

    def wire(self, header, explore, grid) -> None:
        """A point or a click on the Explore tab's map is played with the Grid tab's length and temperature; the
        instrument, the SoundFont and the server-decoded grid are made of the Grid tab's corners."""
        model_paths, decode = header.model_paths, lanes.DECODE_EVENT
        point_settings = [self.point_decoder, header.pitch_choice, grid.seconds, grid.temperature, *model_paths,
                          header.octaves]
        self.play_button.click(self.play_point, [self.point_x, self.point_y, *point_settings],
                               [self.point_player, self.point_blend], api_name="play_point",
                               show_progress_on=self.point_player, **decode)
        explore.click.change(self.play_clicked_point, [explore.click, explore.heard_in_page_shown, *point_settings],
                             [explore.player, explore.heard_in_page, explore.heard_in_page_shown, self.point_x,
                              self.point_y, explore.heard],
                             show_progress_on=explore.player, **decode).then(
            explore.mark_clicked_point, [explore.click, *explore.map_args], explore.map_plot, show_progress="hidden")
        gr.on([self.point_decoder.change, header.pitch_choice.change, grid.seconds.change, header.wavenet_path.change,
               header.ddsp_path.change, header.octaves.change], self.map_sound_settings,
              [self.point_decoder, header.pitch_choice, grid.seconds, header.wavenet_path, header.ddsp_path,
               header.octaves], self.map_sound, trigger_mode="always_last", show_progress="hidden").then(
            None, self.map_sound, None, js=CONFIGURE_MAP_SOUND)
        gr.on([corner.change for corner in grid.corners], self.corners_for_synth, [*grid.corners, header.session],
              self.synth_corners, trigger_mode="always_last", show_progress="hidden", **decode).success(
            None, self.synth_corners, None, js="(corners) => window.nsynthPlay.setCorners(corners)")
        soundfont_estimate_inputs = [self.multigrid_size, gr.State(list(ONS_PITCHES)), self.point_decoder,
                                     self.soundfont_seconds, *model_paths]
        play_estimate_inputs = [self.play_size, self.play_pitches, self.point_decoder, self.play_seconds,
                                *model_paths]
        gr.on([self.tab.select, self.multigrid_size.change, self.point_decoder.change, self.soundfont_seconds.change],
              multigrid_estimate, soundfont_estimate_inputs, self.soundfont_expected, trigger_mode="always_last")
        gr.on([self.tab.select, self.play_size.change, self.play_pitches.change, self.point_decoder.change,
               self.play_seconds.change], multigrid_estimate, play_estimate_inputs, self.play_expected,
              trigger_mode="always_last")
        self.soundfont_button.click(self.export_soundfont, [*grid.corners, self.multigrid_size, grid.rule,
                                                            self.point_decoder, self.soundfont_seconds,
                                                            header.session, *model_paths], self.soundfont_file,
                                    api_name="soundfont", **decode)
        self.play_decode_button.click(
            self.decode_for_playing, [*grid.corners, self.play_size, self.play_pitches, grid.rule,
                                      self.point_decoder, self.play_seconds, header.session, *model_paths],
            [self.play_file, self.play_index], api_name="decode_for_playing", show_progress_on=self.play_expected,
            **decode).success(None, [self.play_file, self.play_index], None,
                              js="(file, index) => window.nsynthPlay.load(file.url, index)")

    @staticmethod
    def map_sound_settings(decoder, pitch, seconds, wavenet_path, ddsp_path, octaves=0) -> dict:
        """What the page needs to play a click between notes itself (assets/map_sound.js): whether the chosen
        decoder and WaveNet are the ones whose weights and Z it holds, and the pitch and length the server decodes
        that click at."""
        held = page_models()
        in_page = (decoder == "DDSP" and bool(wavenet_path) and bool(ddsp_path)
                   and load_model(ddsp_path).fingerprint == held["ddsp"]
                   and load_model(wavenet_path).fingerprint == held["wavenet"])
        return {"in_page": in_page, "pitch": chosen_pitch(pitch), "octaves": int(octaves), "seconds": float(seconds)}

    def point_sound(self, x, y, decoder, pitch, seconds, temperature, wavenet_path, spectral_path, ddsp_path,
                    octaves=0):
        """(audio, what is heard: the blend and its pitch) of the map point (x, y) decoded by `decoder`."""
        paths = checkpoint_paths(wavenet_path, spectral_path, ddsp_path)
        wavenet = self.model(paths["wavenet"], "WaveNet")
        loaded = self.model(paths[DECODERS[decoder]], decoder)
        audio, blend, notes = self.explorer.play_point(loaded, wavenet, (x, y), temperature,
                                                       int(seconds * SAMPLE_RATE), chosen_pitch(pitch),
                                                       octaves=octaves)
        played = played_pitches([notes[0].pitch], chosen_pitch(pitch), octaves)[0]
        return audio, describe_blend(blend, notes, decoder, played)

    @friendly
    @writes_files
    @lanes.in_lane()
    def play_point(self, x, y, decoder, pitch, seconds, temperature, wavenet_path, spectral_path, ddsp_path,
                   octaves=0):
        audio, description = self.point_sound(x, y, decoder, pitch, seconds, temperature, wavenet_path,
                                              spectral_path, ddsp_path, octaves)
        return self.playable(audio), description

    @friendly
    @writes_files
    @lanes.in_lane()
    def play_clicked_point(self, payload, heard_in_page_shown, decoder, pitch, seconds, temperature, wavenet_path,
                           spectral_path, ddsp_path, octaves=0):
        """A click on empty map space: the blend there, played at once (the Explore tab's mark_clicked_point
        then draws it), in the strip's playing player, or in the one that does not play when the page has played
        it already."""
        place = clicked_place(payload)
        if place is None:
            return [gr.skip()] * 6
        audio, description = self.point_sound(*place, decoder, pitch, seconds, temperature, wavenet_path,
                                              spectral_path, ddsp_path, octaves)
        shown = (round(coordinate, PLACE_DECIMALS) for coordinate in place)
        sound = self.playable(audio)
        if heard_in_page(payload):
            players = gr.update(visible=False), gr.update(value=sound, visible=True), True
        elif heard_in_page_shown:
            players = gr.update(value=sound, visible=True), gr.update(visible=False), False
        else:  # the playing player is in view already
            players = sound, gr.skip(), gr.skip()
        return *players, *shown, description

    def corner_notes(self, a, b, c, d, session) -> list[Note]:
        """The Grid tab's four corners; with none chosen, the example grid's, so the instrument can be played
        straight away."""
        if not any((a, b, c, d)):
            a, b, c, d = self.example.corners
        if not all((a, b, c, d)):
            raise ExplorerError("Choose all four corner notes in the Grid tab first (or none, for four "
                                   "examples).")
        return [self.explorer.note(session, note_id) for note_id in (a, b, c, d)]

    @friendly
    @lanes.in_lane()
    def corners_for_synth(self, a, b, c, d, session) -> dict:
        """The Grid tab's corners for the page's synthesiser, their Z from the shipped WaveNet (whose Z the shipped
        DDSP decoder reads, whichever models the page's pickers hold); {"example": true} for the example's, which
        the page has already (assets/synth/example_corners.json)."""
        corners = self.corner_notes(a, b, c, d, session)
        if [note.id for note in corners] == list(self.example.corners):
            return {"example": True}
        encoder = example_grid.SHIPPED_CHECKPOINTS / example_grid.ENCODER
        if not encoder.with_suffix(".safetensors").exists():
            raise ExplorerError("The page's synthesiser needs the shipped WaveNet (checkpoints/wavenet) to play "
                                "corners other than the example's.")
        return example_grid.corners_for_synth(corners, load_model(encoder))

    def decode_every_cell(self, corners, size, pitches, rule, decoder, seconds, paths, progress):
        """Every cell of the grid between the four corner notes at every pitch (multigrid.py), refused up front
        when the decoder would take too long."""
        size = grid_size(size)
        loaded, encoder = self.decoder_and_encoder(DECODERS[decoder], decoder, checkpoint_paths(*paths))
        length, notes = int(seconds * SAMPLE_RATE), int(size) ** 2 * len(pitches)
        needed = loaded.decoding.estimate_seconds(notes, length)
        if needed > SLOW_DECODE_SECONDS:
            raise ExplorerError(f"{notes} notes with the {decoder} decoder would take "
                                   f"{describe_duration(needed)} here: choose the DDSP decoder, fewer cells or "
                                   "fewer pitches.")
        return self.explorer.multigrid(loaded, encoder, corners, int(size), pitches, length, rule,
                                       progress=lambda done, total: progress(
                                           (done, total), desc=f"Decoding every cell at {len(pitches)} pitches",
                                           unit="notes"))

    @friendly
    @writes_files
    @lanes.in_lane(heavy_when=lanes.decodes_with_wavenet)
    def export_soundfont(self, a, b, c, d, cells_per_side, mixing, decoder, seconds, session, wavenet_path,
                         spectral_path, ddsp_path, progress=gr.Progress()):
        """Every cell of the grid between the four corners at Open NSynth Super's 16 pitches, as a SoundFont."""
        size = grid_size(cells_per_side)
        grid = self.decode_every_cell(self.corner_notes(a, b, c, d, session), size, ONS_PITCHES, mixing, decoder,
                                      seconds, (wavenet_path, spectral_path, ddsp_path), progress)
        path = exports.output_path(self.outputs_dir, "nsynth_multigrid.sf2")
        return str(write_soundfont(path, grid, title=f"NSynth {size}x{size} grid ({decoder})"))

    @friendly
    @writes_files
    @lanes.in_lane(heavy_when=lanes.decodes_with_wavenet)
    def decode_for_playing(self, a, b, c, d, cells_per_side, pitches, mixing, decoder, seconds, session,
                           wavenet_path, spectral_path, ddsp_path, progress=gr.Progress()):
        """The grid's cells at the chosen pitches packed for assets/play.js: (the PCM file, its index, which also
        names the decoder and the corner notes, for the page to say what it plays)."""
        if not pitches:
            raise ExplorerError("Choose at least one pitch to decode.")
        corners = self.corner_notes(a, b, c, d, session)
        grid = self.decode_every_cell(corners, cells_per_side, [int(p) for p in pitches], mixing, decoder, seconds,
                                      (wavenet_path, spectral_path, ddsp_path), progress)
        path = exports.output_path(self.outputs_dir, "nsynth_play.pcm")
        return str(path), {**write_browser_pack(path, grid), "decoder": decoder,
                           "corners": [note.label for note in corners]}
