"""The Reconstruct tab: one note decoded from its own code by each decoder, heard and seen (rainbowgrams) beside
the original."""

import gradio as gr

from nsynth_core.audio.core import SAMPLE_RATE
from webapp import figures, lanes
from webapp.how_it_works_tab import OPEN_RECONSTRUCT_TAB
from webapp.shared import (DECODERS, OWN_PITCH, Tab, checkpoint_paths, chosen_pitch, friendly, note_picker,
                           writes_files)


class ReconstructTab(Tab):
    def layout(self, header) -> None:
        with gr.Tab("Reconstruct", elem_id="reconstruct-tab"):
            with gr.Row():
                self.source_note = note_picker("Note")  # set as the page opens: the API schema lists no note
                self.seconds = gr.Slider(0.1, 4.0, value=2.0, step=0.1, label="Length (s)")
                self.temperature = gr.Slider(0.0, 1.5, value=0.25, step=0.05, label="WaveNet temperature")
                self.button = gr.Button("Reconstruct", variant="primary")
            self.outputs = []
            with gr.Row():
                for title in ("Original", *DECODERS):
                    with gr.Column(min_width=260):  # four side by side on a laptop, one per row on a phone
                        self.outputs += [gr.Audio(label=title, interactive=False),
                                         gr.Plot(label=f"{title} rainbowgram")]
        self.inputs = [self.source_note, header.session, self.temperature, self.seconds, *header.model_paths,
                       header.pitch_choice, header.octaves]

    def wire(self, explore) -> None:
        """The tab's own button, and the Explore tab's "Reconstruct it", which opens this tab on the current
        note."""
        decode = {**lanes.DECODE_EVENT, "show_progress_on": self.outputs[0]}
        self.button.click(self.reconstruct, self.inputs, self.outputs, api_name="reconstruct", **decode)
        explore.reconstruct_button.click(lambda note_id: note_id or gr.skip(), explore.current, self.source_note,
                                         js=OPEN_RECONSTRUCT_TAB).then(
            self.reconstruct, self.inputs, self.outputs, **decode)

    def opening_note(self, note_id) -> str | None:
        """The note the tab shows as the page opens: the current one, else the first bundled one."""
        return note_id or self.first_note()

    def first_note(self) -> str | None:
        """What the tab reconstructs before any note is chosen: the first bundled one."""
        return next(iter(self.explorer.bundled), None)

    @friendly
    @writes_files
    @lanes.in_lane(heavy_when=lanes.always)
    def reconstruct(self, note_id, session, temperature, seconds, wavenet_path, spectral_path, ddsp_path,
                    pitch=OWN_PITCH, octaves=0, progress=gr.Progress()):
        note = self.explorer.note(session, note_id or self.first_note())
        length = int(seconds * SAMPLE_RATE)
        outputs = [self.playable(note.audio[:length]), figures.rainbowgram_figure(note.audio[:length], "Original")]
        paths = checkpoint_paths(wavenet_path, spectral_path, ddsp_path)
        for label, kind in DECODERS.items():
            if not paths[kind]:
                gr.Warning(f"No {label} checkpoint: that reconstruction is skipped.")
                outputs += [None, None]
                continue
            loaded, encoder = self.decoder_and_encoder(kind, label, paths)
            audio = self.explorer.reconstruct(
                loaded, encoder, note, temperature, length,
                progress=lambda done, total: progress((done, total), desc=label, unit="samples"),
                pitch=chosen_pitch(pitch), octaves=octaves)
            outputs += [self.playable(audio), figures.rainbowgram_figure(audio, label)]
        return outputs
