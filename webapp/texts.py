"""What the page says about the explorer's state, in Markdown: which models are there, what a decode will cost, a
note without a pitch. nsynth_core hands over data (and error messages); the sentences for visitors are made here."""

from nsynth_core.audio.core import SAMPLE_RATE
from nsynth_core.explorer.decoding import describe_duration
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.loaded_models import SLOW_DECODE_SECONDS, LoadedModel, broken_checkpoints
from nsynth_core.explorer.notes import Note

WARM_UP_DONE = "Warm-up done: examples encoded, decoders timed"  # the app's log line once clicks only decode
MODEL_LABELS = (("wavenet", "WaveNet"), ("spectral", "spectral baseline"), ("ddsp", "DDSP"))


def checkpoint_status(explorer: Explorer) -> str:
    """Sentences for the page about which trained models are available and which files were skipped."""
    found = explorer.checkpoints()
    missing = [label for kind, label in MODEL_LABELS if not found[kind]]
    lines = [f"**Skipped checkpoint `{name}`:** {problem}"
             for name, problem in broken_checkpoints(explorer.checkpoints_dir).items()]
    if missing:
        lines.append(f"**No trained {' or '.join(missing)} checkpoint found in `{explorer.checkpoints_dir}/`.** "
                     "Encoding and decoding need one: train a model with the scripts in `train/` "
                     "(see the About tab) and put its `.safetensors` and `.json` files there.")
    return "  \n".join(lines)


def describe_model(loaded: LoadedModel) -> str:
    """One line for the page: what the checkpoint is and, for a WaveNet, how far back its decoder hears."""
    parameters = sum(p.numel() for p in loaded.model.parameters())
    line = f"`{loaded.name}`: {loaded.kind}, {parameters:,} parameters"
    samples = getattr(loaded.model.config, "receptive_field", None)  # an autoregressive decoder's
    if samples:
        line += f", receptive field {samples} samples ({1000 * samples / SAMPLE_RATE:.0f} ms)"
    if "step" in loaded.metadata:  # written by train/train.py; an imported checkpoint may not say
        line += f", trained for {loaded.metadata['step']:,} steps"
    return line


def decode_cost_message(seconds: float, cells: int, cell_seconds: float, decoder: str,
                        pitches: int | None = None) -> str:
    """What the page says before a decode of `cells` cells; a model this machine cannot run interactively gets a
    warning. With `pitches`, a multigrid: every cell at that many pitches, all decoded afresh (too many notes to
    cache) and refused beyond SLOW_DECODE_SECONDS."""
    takes = f"with the {decoder} decoder takes **{describe_duration(seconds)}** on this machine"
    if pitches is None:
        message = f"Decoding {cells} cells of {cell_seconds:g} s {takes} (less for cells decoded before)."
        if seconds > SLOW_DECODE_SECONDS:
            message = ("⚠️ **This model is too slow for this machine to use interactively** (the paper-size "
                       "WaveNet needs a GPU): shorten the length or use the small model. " + message)
        return message
    message = (f"Decoding {cells} cells at {pitches} pitch{'es' if pitches > 1 else ''} ({cells * pitches} sounds) "
               f"of {cell_seconds:g} s {takes}.")
    if seconds > SLOW_DECODE_SECONDS:
        message = (f"⚠️ **Too long to decode here** (the limit is {SLOW_DECODE_SECONDS // 60} min): choose the "
                   "DDSP decoder, fewer cells or fewer pitches. " + message)
    return message


def pitch_warning(note: Note) -> str | None:
    """What to tell the visitor about a note whose pitch was not found: decoders that need one will refuse it."""
    if note.pitch is not None:
        return None
    return (f"No pitch was found in '{note.name}' (too short, too noisy or unpitched): it can be mapped and used "
            "with the WaveNet, but decoders that need a pitch (DDSP) will refuse it.")
