"""The top of the page, above the tabs: the title, one line saying what plays, and a closed settings panel (the
checkpoint pickers and the pitch of every decoded sound); and the visitor's own state (notes, upload budget, last
grid), which every tab reads."""

import gradio as gr

from nsynth_core.explorer.loaded_models import load_model
from webapp.texts import checkpoint_status, describe_model
from nsynth_core.exports import example_grid
from webapp.shared import (DEFAULT_DECODER, OWN_PITCH, PITCH_CHOICES, Tab, checkpoint_paths, chosen_pitch,
                           default_checkpoint)

SESSION_TTL = 3 * 3600  # s without a new note before a visitor's notes are dropped from server memory


def playing_line(ddsp_path, pitch, octaves) -> str:
    """The one line above the settings that says what a click on the map plays: which decoder, at which pitch."""
    if not ddsp_path:
        return f"No {DEFAULT_DECODER} decoder yet: open the settings to see which models are there."
    if chosen_pitch(pitch) is not None:
        at = f"every sound at MIDI {chosen_pitch(pitch)}"
    elif octaves:
        at = f"each note's own pitch {abs(octaves)} octave{'s' if abs(octaves) > 1 else ''} " + (
            "up" if octaves > 0 else "down")
    else:
        at = "each note's own pitch"
    return f"**Playing:** {DEFAULT_DECODER} decoder, {at}."


class Header(Tab):
    def layout(self, example: example_grid.ExampleGrid) -> None:
        self.session = gr.State({}, time_to_live=SESSION_TTL)  # note id -> Note: this visitor's own notes
        self.uploaded = gr.State(0, time_to_live=SESSION_TTL)  # bytes of this visitor's uploads so far (their budget)
        self.grid_cells = gr.State([], time_to_live=SESSION_TTL)  # [(label, [x, y])] of the last grid, on the map
        gr.Markdown("# NSynth timbre explorer\nTouch the map to hear the notes and the blends between them; bring "
                    "your own notes and mix them into new sounds.", elem_id="intro")
        self.example_track = self.play_all_player(example.labels, example.cells, line=False)
        self.playing = gr.Markdown(playing_line(default_checkpoint(self.explorer, "ddsp"), OWN_PITCH, 0),
                                   elem_id="playing")
        # Model internals wait behind one closed panel: the first screen is the map and the sound.
        with gr.Accordion("Settings: models, pitch, octave", open=False, elem_id="settings"):
            self.status = gr.Markdown(checkpoint_status(self.explorer))
            found = self.explorer.checkpoints()
            with gr.Row():
                self.wavenet_path = gr.Dropdown([(name, path) for name, path in found["wavenet"]],
                                                value=default_checkpoint(self.explorer, "wavenet"),
                                                label="WaveNet checkpoint")
                self.spectral_path = gr.Dropdown([(name, path) for name, path in found["spectral"]],
                                                 value=default_checkpoint(self.explorer, "spectral"),
                                                 label="Spectral baseline checkpoint")
                self.ddsp_path = gr.Dropdown([(name, path) for name, path in found["ddsp"]],
                                             value=default_checkpoint(self.explorer, "ddsp"),
                                             label="DDSP checkpoint (reads the WaveNet's Z)")
                self.model_info = gr.Markdown()
            with gr.Row():  # the pitch-conditioned decoders play any timbre at any pitch
                self.pitch_choice = gr.Dropdown(PITCH_CHOICES, value=OWN_PITCH,
                                                label="Pitch (MIDI) of every decoded sound")
                self.octaves = gr.Slider(-3, 3, value=0, step=1,
                                         label="Octave shift of each note's own pitch (grid, reconstruction, "
                                               "map point)")
        self.model_paths = [self.wavenet_path, self.spectral_path, self.ddsp_path]

    def wire(self) -> None:
        for trigger in (self.wavenet_path.change, self.spectral_path.change, self.ddsp_path.change):
            trigger(self.describe_models, self.model_paths, self.model_info)
        gr.on([self.ddsp_path.change, self.pitch_choice.change, self.octaves.change], playing_line,
              [self.ddsp_path, self.pitch_choice, self.octaves], self.playing, trigger_mode="always_last")

    @staticmethod
    def describe_models(*paths):
        return "  \n".join(describe_model(load_model(path)) for path in paths if path)

    def refresh_checkpoints(self, *current_paths):
        """Each page load lists the checkpoints on disk now, so a newly trained model shows up without a
        restart."""
        found = self.explorer.checkpoints()
        pickers = []
        for kind, current in checkpoint_paths(*current_paths).items():
            paths = [path for _, path in found[kind]]
            pickers.append(gr.update(choices=found[kind],
                                     value=current if current in paths else default_checkpoint(self.explorer, kind)))
        return [checkpoint_status(self.explorer), *pickers]

    def note_pickers(self, session, *values):
        choices = self.note_choices(session)
        return [gr.update(choices=choices, value=value) for value in values]
