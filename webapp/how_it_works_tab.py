"""The "How it works" tab: one note followed through the autoencoder step by step (webapp/teaching.py), each
step with a figure or a sound of that note."""

import gradio as gr

from nsynth_core.audio.core import NOTE_LENGTH, SAMPLE_RATE
from nsynth_core.explorer.loaded_models import load_model
from nsynth_core.explorer.notes import ExplorerError, Note
from webapp import figures, lanes, teaching
from webapp.shared import DECODERS, Tab, checkpoint_paths, friendly, note_picker, writes_files

# Switches to the Reconstruct tab in the page itself; the inputs pass through to the Python handler unchanged.
OPEN_RECONSTRUCT_TAB = """
(...inputs) => {
  const tab = [...document.querySelectorAll("button[role=tab]")].find((b) => b.textContent.trim() === "Reconstruct");
  if (tab) tab.click();
  return inputs;
}
"""


def step_heading(index: int):
    title, text = teaching.STEPS[index]
    return gr.Markdown(f"## {title}\n{text}")


def no_wavenet_figure():
    return figures.message_figure("This step needs a trained WaveNet checkpoint.")


class HowItWorksTab(Tab):
    def layout(self) -> None:
        with gr.Tab("How it works", elem_id="how-it-works") as self.tab:
            self.walked_id = gr.State(None)  # the note the walk-through shows, for the link to its reconstructions
            self.shown_note = gr.Markdown(label="Note followed")
            step_heading(0)
            self.sound_plot = gr.Plot(show_label=False)
            with gr.Row():
                self.original_player = gr.Audio(label="The note", interactive=False)
                self.quantised_player = gr.Audio(label="The same note rounded to 256 levels (8-bit mu-law)",
                                                 interactive=False)
            step_heading(1)
            self.code_plot = gr.Plot(show_label=False)
            self.path_plot = gr.Plot(show_label=False)
            step_heading(2)
            with gr.Row():
                self.time_step = gr.Slider(0, NOTE_LENGTH - 1, value=SAMPLE_RATE // 2, step=1,
                                           label="Time step: the sample to predict (16 000 per second)")
                self.temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Temperature")
                self.draw_seed = gr.Number(0, precision=0, minimum=0, label="Seed of the draw")
            self.field_plot = gr.Plot(show_label=False)
            self.distribution_plot = gr.Plot(show_label=False)
            step_heading(3)
            with gr.Row():
                self.partner = note_picker("Mix with", self.another_family_note())
                self.weight = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Weight of the second note")
            self.mix_plot = gr.Plot(show_label=False)
            with gr.Row():
                self.blend_player = gr.Audio(label="The decoded blend", interactive=False)
                self.mixed_by = gr.Markdown(label="Mixed by")
            step_heading(4)
            self.decoders_table = gr.Markdown()
            self.to_reconstruct = gr.Button("Hear this note's three reconstructions (Reconstruct tab)",
                                            variant="primary")

    def wire(self, header, explore, reconstruct) -> None:
        """The steps follow the Explore tab's selected note; the last button opens its reconstructions."""
        model_paths = header.model_paths
        walk_note = [explore.selected, header.session]
        step_inputs = [*walk_note, header.wavenet_path, self.time_step, self.temperature, self.draw_seed]
        mix_inputs = [explore.selected, self.partner, self.weight, header.session, *model_paths]
        mix_outputs = [self.mix_plot, self.blend_player, self.mixed_by]
        # In order, so the first steps appear while the later ones compute.
        self.tab.select(self.show_sound, walk_note, [self.shown_note, self.sound_plot, self.original_player,
                                                     self.quantised_player, self.walked_id, self.time_step]).then(
            self.show_code, [*walk_note, header.wavenet_path], [self.code_plot, self.path_plot]).then(
            self.show_decoder, step_inputs, [self.field_plot, self.distribution_plot]).then(
            self.show_mix, mix_inputs, mix_outputs).then(
            self.show_decoders, model_paths, self.decoders_table)
        # On the visitor's moves only: the walk-through itself sets the step for each note and draws it in order.
        self.time_step.input(self.show_decoder, step_inputs, [self.field_plot, self.distribution_plot],
                             trigger_mode="always_last")
        gr.on([self.temperature.change, self.draw_seed.change], self.show_distribution, step_inputs,
              self.distribution_plot, trigger_mode="always_last")
        gr.on([self.partner.change, self.weight.change], self.show_mix, mix_inputs, mix_outputs,
              trigger_mode="always_last")
        self.to_reconstruct.click(lambda note_id: note_id, self.walked_id, reconstruct.source_note,
                                  js=OPEN_RECONSTRUCT_TAB).then(
            reconstruct.reconstruct, reconstruct.inputs, reconstruct.outputs, show_progress_on=reconstruct.outputs[0],
            **lanes.DECODE_EVENT)

    def walked_note(self, selected, session) -> Note:
        """The note chosen in the Explore tab, else the first example, so the walk-through always has one."""
        return self.explorer.note(session, selected) if selected else next(iter(self.explorer.bundled.values()))

    def another_family_note(self) -> str | None:
        """A default partner to mix the first example with: the first example of another family."""
        first, *others = self.explorer.bundled.values()
        return next((note.id for note in others if note.family != first.family), None)

    @friendly
    @writes_files
    def show_sound(self, selected, session):
        note = self.walked_note(selected, session)
        shown = (f"Following **{note.label}** through the model (choose another note in the Explore tab, "
                 "then come back).")
        return [shown, teaching.sound_figure(note.audio), self.playable(note.audio),
                self.playable(teaching.mu_law_round_trip(note.audio)), note.id, teaching.sounding_step(note.audio)]

    @friendly
    def show_code(self, selected, session, wavenet_path):
        """The note's Z under its rainbowgram, and its path over the map frame by frame."""
        if not wavenet_path:
            return no_wavenet_figure(), no_wavenet_figure()
        wavenet, note = load_model(wavenet_path), self.walked_note(selected, session)
        own = [] if note.id in self.explorer.bundled else [(note, self.explorer.place_notes(wavenet, [note])[0])]
        path = figures.map_figure(self.explorer.map_for(wavenet), "family", own,
                                  trajectory=(note.name, self.explorer.trajectory(wavenet, note)))
        return teaching.code_figure(wavenet, note), path

    @friendly
    def show_distribution(self, selected, session, wavenet_path, step, temperature, seed):
        if not wavenet_path:
            return no_wavenet_figure()
        return teaching.distribution_figure(load_model(wavenet_path), self.walked_note(selected, session),
                                            int(step), temperature, int(seed))

    @friendly
    def show_decoder(self, selected, session, wavenet_path, step, temperature, seed):
        if not wavenet_path:
            return [no_wavenet_figure(), no_wavenet_figure()]
        figure = teaching.receptive_field_figure(load_model(wavenet_path), self.walked_note(selected, session),
                                                 int(step))
        return [figure, self.show_distribution(selected, session, wavenet_path, step, temperature, seed)]

    @friendly
    @writes_files
    def show_mix(self, selected, partner, weight, session, wavenet_path, spectral_path, ddsp_path):
        if not wavenet_path:
            return [no_wavenet_figure(), None, ""]
        if not partner:
            raise ExplorerError("Choose a second note to mix with.")
        paths = checkpoint_paths(wavenet_path, spectral_path, ddsp_path)
        # DDSP decodes a 4 s note in milliseconds; without it the spectral baseline mixes its own codes.
        label, kind = ("DDSP", "ddsp") if ddsp_path else ("Spectral baseline", "spectral")
        loaded, encoder = self.decoder_and_encoder(kind, label, paths)
        grid = teaching.blend_grid(self.walked_note(selected, session), self.explorer.note(session, partner), weight)
        audio, _ = self.explorer.decode_grid(loaded, encoder, grid, temperature=0.0, length=NOTE_LENGTH)
        said = f"Decoded by the **{label}** decoder (`{loaded.name}`)"
        if kind == "spectral":
            said += ", which mixes its own encoder's codes with the same weight (no DDSP checkpoint is available)"
        figure = teaching.mixing_figure(load_model(wavenet_path), grid, audio[0], label)
        return [figure, self.playable(audio[0]), said + "."]

    @friendly
    def show_decoders(self, *paths):
        labels = {kind: label for label, kind in DECODERS.items()}
        decoders = [(labels[kind], load_model(path)) for kind, path in checkpoint_paths(*paths).items() if path]
        return (f"**What each costs here** (measured on this machine):\n\n{teaching.cost_table(decoders)}\n\n"
                f"**What each keeps** (`{teaching.EVALUATION_FILE}` next to the checkpoints):\n\n"
                f"{teaching.evaluation_table(self.explorer.checkpoints_dir, self.offered_checkpoints())}")

    def offered_checkpoints(self) -> set[str]:
        """The checkpoint names the model pickers offer now."""
        return {name for found in self.explorer.checkpoints().values() for name, _ in found}
