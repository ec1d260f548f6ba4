"""The Play tab: any point of the map heard as a blend of its nearest notes (also a click on the Explore tab's
map), the Grid tab's grid at many pitches as a SoundFont, and the same grid decoded for the instrument in the page
(assets/play.js)."""

import gradio as gr

from nsynth_core.audio.core import SAMPLE_RATE
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.grids import grid_size, played_pitches
from nsynth_core.explorer.loaded_models import SLOW_DECODE_SECONDS
from nsynth_core.explorer.notes import ExplorerError, Note
from nsynth_core.explorer.decoding import describe_duration
from nsynth_core.explorer.interpolation import GRID_SIZES
from nsynth_core.explorer.multigrid import ONS_PITCHES
from nsynth_core.exports import example_grid
from nsynth_core.exports import files as exports
from nsynth_core.exports.browser_pack import write_browser_pack
from nsynth_core.exports.soundfont import write_soundfont
from webapp import lanes
from webapp.explore_tab import clicked_place
from webapp.shared import (DECODERS, DEFAULT_DECODER, MAX_SIZE, Tab, checkpoint_paths, chosen_pitch,
                           decode_estimate, friendly, writes_files)

MULTIGRID_SIZE = 9  # Open NSynth Super's
PLAY_PITCHES = (48, 56, 64, 72)  # spread over the on-screen keyboard's two octaves: every key at most 4 away
PLAY_SIZE, PLAY_SECONDS = 3, 2.0  # 36 notes: a few seconds with DDSP, 2.3 MB for the page to fetch
PLAY_SURFACE = """
<div id="play-surface">
  <div id="play-pad" title="Click or drag: the nearest cell plays"></div>
  <div id="play-keys"></div>
  <p id="play-status">Decode the grid first; then a MIDI keyboard, the computer's keys or these keys play it.</p>
</div>
"""


def describe_blend(blend, notes, decoder, played: int) -> str:
    return ("Blend of " + ", ".join(f"**{note.name}** {100 * w:.0f} %" for note, w in zip(notes, blend.weights))
            + f", decoded by the {decoder} decoder at MIDI {played}.")


def multigrid_estimate(size, pitches, decoder, seconds, *paths):
    if not pitches:
        return "Choose at least one pitch to decode."
    return decode_estimate(decoder, paths, int(size) ** 2, seconds, len(pitches))


class PlayTab(Tab):
    def __init__(self, explorer: Explorer, example: example_grid.ExampleGrid):
        super().__init__(explorer)
        self.example = example

    def layout(self) -> None:
        with gr.Tab("Play") as self.tab:
            gr.Markdown("Click anywhere on the map (Explore tab) to hear the blend of the three nearest notes, "
                        "or give a point here. The SoundFont holds every cell of the Grid tab's four corners (or "
                        f"four examples when none are chosen) at Open NSynth Super's {len(ONS_PITCHES)} pitches, "
                        "for any sampler.")
            with gr.Row():
                self.point_decoder = gr.Radio(list(DECODERS), value=DEFAULT_DECODER, label="Decoder")
                self.point_x, self.point_y = gr.Number(0.0, label="Map x"), gr.Number(0.0, label="Map y")
                self.play_button = gr.Button("Play this point", variant="primary")
            self.point_player = gr.Audio(label="Map point", interactive=False, autoplay=True)
            self.point_blend = gr.Markdown(label="Blend heard")
            with gr.Row():
                self.multigrid_size = gr.Slider(min(GRID_SIZES), MAX_SIZE, value=MULTIGRID_SIZE, step=1,
                                                label="Cells per side")
                self.soundfont_button = gr.Button("Download as SoundFont (.sf2)")
            self.soundfont_expected = gr.Markdown()
            self.soundfont_file = gr.File(label="SoundFont")
            gr.Markdown("**Play in the page:** the same grid's cells decoded at a few pitches; keys between them "
                        "play the nearest pitch sped up or slowed down.")
            with gr.Row():
                self.play_size = gr.Slider(min(GRID_SIZES), MAX_SIZE, value=PLAY_SIZE, step=1,
                                           label="Cells per side to play")
                self.play_pitches = gr.Dropdown(list(ONS_PITCHES), value=list(PLAY_PITCHES), multiselect=True,
                                                label="Pitches to decode (MIDI)")
                self.play_seconds = gr.Slider(0.5, 4.0, value=PLAY_SECONDS, step=0.5, label="Note length (s)")
                self.play_decode_button = gr.Button("Decode for playing", variant="primary")
            self.play_expected = gr.Markdown()
            gr.HTML(PLAY_SURFACE)
            self.play_file = gr.File(label="Decoded notes (16-bit PCM, index below)", visible="hidden")
            self.play_index = gr.JSON(visible="hidden", label="Index of the decoded notes")

    def wire(self, header, explore, grid) -> None:
        """A point or a click on the Explore tab's map is played with the Grid tab's length and temperature; the
        SoundFont and the instrument are made of the Grid tab's corners."""
        model_paths, decode = header.model_paths, lanes.DECODE_EVENT
        point_settings = [self.point_decoder, header.pitch_choice, grid.seconds, grid.temperature, *model_paths,
                          header.octaves]
        self.play_button.click(self.play_point, [self.point_x, self.point_y, *point_settings],
                               [self.point_player, self.point_blend], api_name="play_point",
                               show_progress_on=self.point_player, **decode)
        explore.click.change(self.play_clicked_point, [explore.click, *point_settings],
                             [explore.player, self.point_x, self.point_y, self.point_blend, explore.heard],
                             show_progress_on=explore.player, **decode).then(
            explore.mark_clicked_point, [explore.click, *explore.map_args], explore.map_plot)
        soundfont_estimate_inputs = [self.multigrid_size, gr.State(list(ONS_PITCHES)), self.point_decoder,
                                     grid.seconds, *model_paths]
        play_estimate_inputs = [self.play_size, self.play_pitches, self.point_decoder, self.play_seconds,
                                *model_paths]
        gr.on([self.tab.select, self.multigrid_size.change, self.point_decoder.change, grid.seconds.change],
              multigrid_estimate, soundfont_estimate_inputs, self.soundfont_expected, trigger_mode="always_last")
        gr.on([self.tab.select, self.play_size.change, self.play_pitches.change, self.point_decoder.change,
               self.play_seconds.change], multigrid_estimate, play_estimate_inputs, self.play_expected,
              trigger_mode="always_last")
        self.soundfont_button.click(self.export_soundfont, [*grid.corners, self.multigrid_size, grid.rule,
                                                            self.point_decoder, grid.seconds, header.session,
                                                            *model_paths], self.soundfont_file,
                                    api_name="soundfont", **decode)
        self.play_decode_button.click(
            self.decode_for_playing, [*grid.corners, self.play_size, self.play_pitches, grid.rule,
                                      self.point_decoder, self.play_seconds, header.session, *model_paths],
            [self.play_file, self.play_index], api_name="decode_for_playing", show_progress_on=self.play_expected,
            **decode).success(None, [self.play_file, self.play_index], None,
                              js="(file, index) => window.nsynthPlay.load(file.url, index)")

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
    def play_clicked_point(self, payload, decoder, pitch, seconds, temperature, wavenet_path, spectral_path,
                           ddsp_path, octaves=0):
        """A click on empty map space: the blend there, played at once (the Explore tab's mark_clicked_point
        then draws it)."""
        place = clicked_place(payload)
        if place is None:
            return [gr.skip()] * 5
        audio, description = self.point_sound(*place, decoder, pitch, seconds, temperature, wavenet_path,
                                              spectral_path, ddsp_path, octaves)
        return self.playable(audio), *place, description, description

    def corner_notes(self, a, b, c, d, session) -> list[Note]:
        """The Grid tab's four corners; with none chosen, the example grid's, so the instrument can be played
        straight away."""
        if not any((a, b, c, d)):
            a, b, c, d = self.example.corners
        if not all((a, b, c, d)):
            raise ExplorerError("Choose all four corner notes in the Grid tab first (or none, for four "
                                   "examples).")
        return [self.explorer.note(session, note_id) for note_id in (a, b, c, d)]

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
    def export_soundfont(self, a, b, c, d, size, rule, decoder, seconds, session, *paths, progress=gr.Progress()):
        """Every cell of the grid between the four corners at Open NSynth Super's 16 pitches, as a SoundFont."""
        grid = self.decode_every_cell(self.corner_notes(a, b, c, d, session), size, ONS_PITCHES, rule, decoder,
                                      seconds, paths, progress)
        path = exports.output_path(self.outputs_dir, "nsynth_multigrid.sf2")
        return str(write_soundfont(path, grid, title=f"NSynth {size}x{size} grid ({decoder})"))

    @friendly
    @writes_files
    @lanes.in_lane(heavy_when=lanes.decodes_with_wavenet)
    def decode_for_playing(self, a, b, c, d, size, pitches, rule, decoder, seconds, session, *paths,
                           progress=gr.Progress()):
        """The grid's cells at the chosen pitches packed for assets/play.js: (the PCM file, its index, which also
        names the decoder and the corner notes, for the page to say what it plays)."""
        if not pitches:
            raise ExplorerError("Choose at least one pitch to decode.")
        corners = self.corner_notes(a, b, c, d, session)
        grid = self.decode_every_cell(corners, size, [int(p) for p in pitches], rule, decoder, seconds, paths,
                                      progress)
        path = exports.output_path(self.outputs_dir, "nsynth_play.pcm")
        return str(path), {**write_browser_pack(path, grid), "decoder": decoder,
                           "corners": [note.label for note in corners]}
