"""The Grid tab: a grid (or a line) of sounds mixed between corner notes, decoded, placed on the map and handed
out as one zip; it opens on the ready example grid."""

from dataclasses import dataclass
from itertools import islice

import gradio as gr
import numpy as np

from nsynth_core.audio.core import SAMPLE_RATE, playback_pcm16
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.grids import Grid, grid_size, make_grid
from nsynth_core.explorer.loaded_models import load_model
from nsynth_core.explorer.notes import ExplorerError
from nsynth_core.explorer.interpolation import GRID_SIZES
from nsynth_core.exports import example_grid
from nsynth_core.exports import files as exports
from webapp import lanes
from webapp.shared import (CORNERS, DECODERS, DEFAULT_DECODER, MAX_SIZE, OWN_PITCH, Tab, checkpoint_paths,
                           chosen_pitch, decode_estimate, default_checkpoint, friendly, note_picker, writes_files)


# The map is redrawn while the Grid tab hides it, and plotly then draws it at a default 700 px (it resizes on
# window resizes only), which widens its column past a phone's screen: when a plot's box next changes size, as on
# being shown, the drawing lets go of its width so that the box takes the column's, and plotly fits it to that.
FIT_PLOTS_WHEN_SHOWN = """() => {
  if (window.plotsFitWhenShown) return;
  window.plotsFitWhenShown = new ResizeObserver((boxes) => {
    for (const box of boxes) {
      const plot = box.target.querySelector('.js-plotly-plot');
      const drawing = plot && plot.querySelector('.svg-container');
      if (!drawing || box.contentRect.width === 0 || !window.Plotly) continue;
      drawing.style.width = '0px';
      window.Plotly.Plots.resize(plot);
    }
  });
  for (const plot of document.querySelectorAll('.js-plotly-plot')) window.plotsFitWhenShown.observe(plot.parentElement);
}"""


@dataclass
class MadeGrid:
    grid: Grid
    size: int
    cell_files: list[str]  # each cell's sound, row by row
    play_all: dict  # the play-all track: its file and label
    archive: str  # every cell with its Z, zipped
    places: list  # (label, xy) of each cell on the map; empty without a WaveNet
    decoder: str  # which decoder made the sounds, and its checkpoint
    checkpoint: str


def grid_settings(shape, size):
    notes = 2 if shape.startswith("line") else 4
    cells = size if notes == 2 else size * size
    return notes, cells


class GridTab(Tab):
    def __init__(self, explorer: Explorer, example: example_grid.ExampleGrid):
        super().__init__(explorer)
        self.example = example

    def layout(self, header) -> None:
        example = self.example
        with gr.Tab("Grid"):
            self.corners = []
            for row in (CORNERS[:2], CORNERS[2:]):  # laid out as they sit on the grid
                with gr.Row(elem_classes="corner-pickers"):
                    self.corners += [note_picker(f"Corner {corner}", example.corners[CORNERS.index(corner)])
                                     for corner in row]
            with gr.Row():
                self.shape = gr.Radio(["grid (4 notes)", "line (A to B)"], value="grid (4 notes)", label="Shape")
                self.size = gr.Slider(min(GRID_SIZES), MAX_SIZE, value=example_grid.SIZE, step=1,
                                      label="Cells per side")
                self.rule = gr.Radio([("bilinear", "bilinear"), ("Open NSynth Super distance", "distance")],
                                     value="bilinear", label="Mixing")
            with gr.Row():
                self.decoder = gr.Radio(list(DECODERS), value=DEFAULT_DECODER, label="Decoder")
                # 0.25: the shipped WaveNet keeps the pitch of 84 % of test notes there, 78 % at 0.5 and 49 % at 1,
                # and its spectral distance is lowest there (checkpoints/README.md).
                self.temperature = gr.Slider(0.0, 1.5, value=0.25, step=0.05,
                                             label="WaveNet temperature (0 = most likely sample, 1 = the model's "
                                                   "own distribution)")
                self.seconds = gr.Slider(0.1, 4.0, value=example_grid.SECONDS, step=0.1, label="Length (s)")
            self.expected = gr.Markdown()
            self.generate_button = gr.Button("Generate grid", variant="primary")
            self.made_by = gr.Markdown(example_grid.DESCRIPTION, label="Decoded by")
            self.all_cells = gr.Audio(**header.example_track, interactive=False, elem_id="play-all")
            example_cells = iter(self.grid_players(example.labels, example.mixes,
                                                   self.player_files(list(example.cells)), example_grid.SIZE))
            self.players = []
            for _ in range(MAX_SIZE):
                with gr.Row(elem_classes="grid-cells"):  # a square grid of players at any width (phone.css)
                    self.players += [gr.Audio(**(shown or {"label": "Grid cell"}), visible=shown is not None,
                                              interactive=False, min_width=120)
                                     for shown in islice(example_cells, MAX_SIZE)]
            self.archive = gr.File(label="Download every cell (wav + Z as .npy)")
            self.script_button = gr.Button(visible=False)
            self.script_cells = gr.Files(label="cells", visible=False)
            self.script_play_all = gr.File(label="play_all", visible=False)
            self.script_archive = gr.File(label="zip", visible=False)
            self.script_decoded_by = gr.Textbox(label="decoded_by", visible=False)
        self.estimate_inputs = [self.shape, self.size, self.decoder, self.seconds, *header.model_paths]

    def wire(self, header, explore) -> None:
        """The grid's estimate and decode; a new grid is drawn on the Explore tab's map."""
        gr.on([self.shape.change, self.size.change, self.decoder.change, self.seconds.change], self.estimate,
              self.estimate_inputs, self.expected, trigger_mode="always_last")
        self.generate_button.click(
            self.run_grid, [*self.corners, self.shape, self.size, self.rule, self.decoder, self.temperature,
                            self.seconds, header.session, *header.model_paths, header.pitch_choice, header.octaves],
            [*self.players, self.all_cells, self.archive, header.grid_cells, self.made_by], api_name="show_grid",
            show_progress_on=self.made_by, **lanes.DECODE_EVENT).then(
            explore.draw_map, explore.map_args, explore.map_plot).then(None, js=FIT_PLOTS_WHEN_SHOWN)
        # For scripts: named settings in, the grid's sounds out as one list (never pressed on the page).
        self.script_button.click(
            self.grid_for_scripts, [*self.corners, self.shape, self.size, self.rule, self.decoder, self.temperature,
                                    self.seconds, header.session],
            [self.script_cells, self.script_play_all, self.script_archive, self.script_decoded_by,
             header.grid_cells], api_name="grid", **lanes.DECODE_EVENT)

    @staticmethod
    def estimate(shape, size, decoder, seconds, *paths):
        return decode_estimate(decoder, paths, grid_settings(shape, size)[1], seconds)

    @friendly
    @writes_files
    @lanes.in_lane(heavy_when=lanes.decodes_with_wavenet)
    def run_grid(self, a, b, c, d, shape, size, rule, decoder, temperature, seconds, session, wavenet_path,
                 spectral_path, ddsp_path, pitch=OWN_PITCH, octaves=0, progress=gr.Progress()):
        """The page's grid: every cell player updated, the play-all track, the zip, the cells' places for the
        map and who decoded it."""
        made = self.make_grid([a, b, c, d], shape, size, rule, decoder, temperature, seconds, session,
                              checkpoint_paths(wavenet_path, spectral_path, ddsp_path), pitch, octaves, progress)
        players = [gr.update(**shown, visible=True) if shown else gr.update(value=None, visible=False)
                   for shown in self.grid_players(made.grid.labels, made.grid.mixes(), made.cell_files, made.size)]
        return [*players, gr.update(**made.play_all), made.archive, made.places,
                f"Decoded by the **{made.decoder}** decoder (`{made.checkpoint}`)."]

    @friendly
    @writes_files
    @lanes.in_lane(heavy_when=lanes.decodes_with_wavenet)
    def grid_for_scripts(self, a: str, b: str, c: str | None, d: str | None, shape: str, cells_per_side: int,
                         mixing: str, decoder: str, wavenet_temperature: float, seconds: float, session,
                         progress=gr.Progress()):
        """The API's grid, with the offered checkpoints and each note's own pitch: (the cells' sounds row by row,
        the play-all track, a zip of every cell with its Z, which decoder made them), and the cells' places for
        the session's map."""
        paths = {kind: default_checkpoint(self.explorer, kind) for kind in ("wavenet", "spectral", "ddsp")}
        made = self.make_grid([a, b, c, d], shape, cells_per_side, mixing, decoder, wavenet_temperature, seconds,
                              session, paths, OWN_PITCH, 0, progress)
        return (made.cell_files, made.play_all["value"], made.archive, f"{made.decoder} ({made.checkpoint})",
                made.places)

    def make_grid(self, corners, shape, size, rule, decoder, temperature, seconds, session, paths, pitch, octaves,
                  progress) -> MadeGrid:
        size = grid_size(size)
        loaded, encoder = self.decoder_and_encoder(DECODERS[decoder], decoder, paths)
        count, _ = grid_settings(shape, size)
        chosen = corners[:count]
        if not all(chosen):
            raise ExplorerError(f"Choose {'notes A and B' if count == 2 else 'all four corner notes'} first.")
        grid = make_grid([self.explorer.note(session, note_id) for note_id in chosen], size, rule)
        audio, z = self.explorer.decode_grid(
            loaded, encoder, grid, temperature, int(seconds * SAMPLE_RATE),
            progress=lambda done, total: progress((done, total), desc="Decoding", unit="samples"),
            pitch=chosen_pitch(pitch), octaves=octaves)
        # The map lies in a WaveNet's space: without one the grid is heard, not placed. The zip comes last, so a
        # failure before it leaves no file behind.
        places = (list(zip(grid.labels, self.explorer.place_grid(load_model(paths["wavenet"]), grid).tolist()))
                  if paths["wavenet"] else [])
        archive = exports.export_zip(exports.output_path(self.outputs_dir, "nsynth_grid.zip"), grid, audio, z)
        pcm = np.stack([playback_pcm16(cell) for cell in audio])
        return MadeGrid(grid, size, self.player_files(list(pcm)),
                        self.play_all_player(grid.labels, pcm, grid.rule == "line"), str(archive), places, decoder,
                        loaded.name)

    @staticmethod
    def grid_players(labels, mixes, files, per_row: int) -> list[dict | None]:
        """What each of the MAX_SIZE x MAX_SIZE cell players shows, row by row: a cell's sound file and what it
        is made of; None for a player left hidden. A line (as many cells as per_row) fills the first row."""
        shown = [None] * (MAX_SIZE * MAX_SIZE)
        for index, (label, made_of, cell) in enumerate(zip(labels, mixes, files)):
            row, column = divmod(index, per_row)
            shown[row * MAX_SIZE + column] = {"value": cell, "label": f"{label}: {made_of}"}
        return shown
