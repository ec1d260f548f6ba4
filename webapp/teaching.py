"""The "How it works" walk-through: the figures and numbers that follow one note through the autoencoder.

1. sound as numbers (8-bit mu-law), 2. the encoder's code Z, 3. the decoder predicting one sample at a time,
4. mixing two notes' codes, 5. what each of the three decoders costs and keeps. Everything here takes at most a
few seconds on a 2-core CPU: the decoder's prediction runs on one receptive field of audio, not on the note.
"""

import re
from pathlib import Path

import librosa
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from nsynth_core.explorer.grids import Grid, grid_z
from nsynth_core.explorer.loaded_models import LoadedModel, encode_notes, pitch_tensor, stacked_z
from nsynth_core.explorer.lru_cache import LRUCache
from nsynth_core.explorer.notes import ExplorerError, Note, audio_digest
from nsynth_core.audio.core import MU, NOTE_LENGTH, SAMPLE_RATE, mu_law_decode, mu_law_encode
from webapp.figures import add_rainbowgram, pinned_title, title_bottom
from nsynth_core.engine.generate import sample_logits, sampling_uniforms
from nsynth_core.models.wavenet import fundamental_phase

EVALUATION_FILE = "evaluation.md"
CHECKPOINT_IN_ROW = re.compile(r"^\| [^|(]*\(([^,()|]+),")  # an evaluation row's checkpoint: "| DDSP ... (name, ..."
ZOOM_MS = 10.0  # the waveform opens on this much audio around its loudest sample: enough to see the 8-bit steps
LOGITS_CACHE_SIZE = 64  # teacher-forced predictions ([256] each) kept, so moving the temperature recomputes nothing
FIGURE_HEIGHT = 440  # fits under a step's paragraph on a 1280 x 720 screen
FONT = dict(size=15)
SUBPLOT_TITLE_ROOM = 46  # between the pinned title and the top subplots, for their own titles
Z_COLORS = dict(colorscale="RdBu_r", zmid=0)  # red above zero, blue below: the sign of a code reads at a glance

STEPS = (
    ("1. Sound as numbers",
     "A microphone turns sound into a list of numbers: here 16 000 per second. The WaveNet hears each number "
     "rounded to one of only 256 levels. The levels are packed close together near zero and spread apart for "
     "loud values (the mu-law curve, right), because our ears notice small errors in quiet sounds most. Zoom into "
     "the waveform to see the steps, and listen to the rounded note: that hiss is what 256 levels cost."),
    ("2. The encoder's code",
     "The encoder listens to the whole note and writes a short code, Z: 16 numbers for every 32 ms of sound "
     "(the coloured rows below the rainbowgram). Z is 32 times smaller than the audio, so it cannot keep every "
     "detail: it must keep what makes the note sound the way it does. Averaging Z over time (the column on the "
     "right) gives 16 numbers that place the note on the map; placing each frame alone draws its path (below)."),
    ("3. The decoder, one sample at a time",
     "The decoder rebuilds the sound one number at a time. To guess the next sample it looks back at the samples "
     "before it through layers whose gaps double (1, 2, 4, ...), so a few layers see far into the past: the shaded "
     "stretch is everything one guess can see. Its answer is a chance for each of the 256 levels. The temperature "
     "reshapes those chances: low picks the likeliest level, high gambles."),
    ("4. Mixing codes",
     "Because a note is now a code, two notes can be blended number by number: weight 0 is all of the first "
     "note's Z, weight 1 all of the second's, and between them a mixture. Decoding the mixed code makes a new "
     "sound that is neither note, not two notes played together. This is the idea behind the paper's "
     "interpolation figure and the NSynth Super instrument."),
    ("5. Three decoders side by side",
     "The same code can be turned back into sound in different ways. The WaveNet predicts every sample in turn: "
     "faithful but slow. The spectral baseline draws a picture of the sound's frequencies and guesses the phase. "
     "DDSP drives oscillators and filtered noise: fast, but only as rich as its synthesiser. The table shows what "
     "each costs on this machine and how well each kept pitch and instrument in the evaluation."),
)

_logits = LRUCache(LOGITS_CACHE_SIZE)


def _layout(figure: go.Figure, title: str, *lines: str, height: int = FIGURE_HEIGHT) -> go.Figure:
    """Short titles (a phone's figure is about 350 px wide and plotly does not wrap them), the legend below."""
    figure.update_layout(title=pinned_title(title, *lines), font=FONT, height=height,
                         margin=dict(l=60, r=20, t=title_bottom(len(lines)) + SUBPLOT_TITLE_ROOM, b=50),
                         legend=dict(orientation="h", y=-0.15))
    return figure


# --- 1. sound as numbers -----------------------------------------------------------------------------------------

def mu_law_round_trip(audio: np.ndarray) -> np.ndarray:
    """The note as the WaveNet hears it: every sample rounded to the middle of its 8-bit mu-law level."""
    return mu_law_decode(mu_law_encode(audio))


def sound_figure(audio: np.ndarray) -> go.Figure:
    """The waveform with its 8-bit version (left, zoomable) and the companding curve with the note's range
    marked (right)."""
    quantised = mu_law_round_trip(audio)
    figure = make_subplots(2, 1, row_heights=[0.55, 0.45], vertical_spacing=0.2,
                           subplot_titles=("The waveform (drag to zoom)", "The mu-law curve: 256 levels"))
    ms_per_sample = 1000 / SAMPLE_RATE
    figure.add_trace(go.Scatter(y=audio, x0=0, dx=ms_per_sample, name="original", line=dict(width=2),
                                hovertemplate="%{x:.2f} ms: %{y:.4f}<extra>original</extra>"), 1, 1)
    figure.add_trace(go.Scatter(y=quantised, x0=0, dx=ms_per_sample, name="8-bit mu-law", line_shape="hv",
                                line=dict(width=2), hovertemplate="%{x:.2f} ms: %{y:.4f}<extra>8-bit</extra>"), 1, 1)
    loudest = int(np.argmax(np.abs(audio))) * ms_per_sample
    figure.update_xaxes(title="time (ms)", range=[loudest - ZOOM_MS / 2, loudest + ZOOM_MS / 2], row=1, col=1)
    figure.update_yaxes(title="amplitude", row=1, col=1)

    amplitude = np.linspace(-1, 1, 4001, dtype=np.float32)
    figure.add_trace(go.Scatter(x=amplitude, y=mu_law_encode(amplitude), name="mu-law level", line_shape="hv",
                                hovertemplate="amplitude %{x:.4f} → level %{y}<extra></extra>"), 2, 1)
    peak = float(np.max(np.abs(audio)))
    figure.add_vrect(x0=-peak, x1=peak, fillcolor="gold", opacity=0.25, line_width=0, row=2, col=1,
                     annotation_text="this note", annotation_position="bottom left")
    figure.update_xaxes(title="amplitude", row=2, col=1)
    figure.update_yaxes(title=f"level (mu = {MU})", row=2, col=1)
    return _layout(figure, "Sound as numbers", height=FIGURE_HEIGHT + 200)


# --- 2. the encoder's code ---------------------------------------------------------------------------------------

def _z_heatmap(z: np.ndarray, hop: int, name: str, limit: float, showscale: bool = False) -> go.Heatmap:
    """Z [frames, channels] as channels (rows) x time in s (columns), each frame of `hop` samples at its centre."""
    times = (np.arange(len(z)) + 0.5) * hop / SAMPLE_RATE
    return go.Heatmap(z=z.T, x=times, y=np.arange(1, z.shape[1] + 1), name=name, zmin=-limit, zmax=limit,
                      showscale=showscale, colorbar=dict(title="Z", thickness=12), **Z_COLORS,
                      hovertemplate="%{x:.3f} s, channel %{y}: %{z:.3f}<extra>" + name + "</extra>")


def code_figure(wavenet: LoadedModel, note: Note) -> go.Figure:
    """The note's rainbowgram over its Z heat map (16 channels x frames of 32 ms), and Z's time average."""
    z = encode_notes(wavenet, [note])[0].z
    limit = float(np.abs(z).max()) or 1.0
    figure = make_subplots(2, 2, column_widths=[0.92, 0.08], row_heights=[0.45, 0.55], shared_xaxes="columns",
                           horizontal_spacing=0.03, vertical_spacing=0.1,
                           specs=[[{}, None], [{}, {}]],
                           subplot_titles=("Rainbowgram", "Z: 16 channels", "mean"))
    add_rainbowgram(figure, note.audio, 1, 1)
    figure.add_trace(_z_heatmap(z, wavenet.model.config.hop_length, "Z", limit, showscale=True), 2, 1)
    average = z.mean(axis=0)
    figure.add_trace(go.Heatmap(z=average[:, None], x=["mean"], y=np.arange(1, len(average) + 1), zmin=-limit,
                                zmax=limit, showscale=False, **Z_COLORS,
                                hovertemplate="channel %{y}: %{z:.3f}<extra>time average</extra>"), 2, 2)
    figure.update_yaxes(title="channel", row=2, col=1)
    figure.update_yaxes(showticklabels=False, row=2, col=2)
    figure.update_xaxes(showticklabels=False, row=2, col=2)
    figure.update_xaxes(title="time (s)", row=2, col=1)
    return _layout(figure, "The encoder's code", note.name, "one frame of Z per 32 ms",
                   height=FIGURE_HEIGHT + 120)


# --- 3. the decoder, one sample at a time ------------------------------------------------------------------------

def sounding_step(audio: np.ndarray, frame: int = 512) -> int:
    """A sample to predict where the note sounds: the middle of its loudest frame. A fixed time would land in the
    silence after a short pluck, where the decoder is sure of silence and there is nothing to see."""
    loudness = librosa.feature.rms(y=audio, frame_length=frame, hop_length=frame, center=False)[0]
    return int(np.argmax(loudness)) * frame + frame // 2


def decoder_stack(model) -> list[tuple[str, int, int]]:
    """(layer, dilation, how many samples back its output reaches) of each causal convolution, bottom up, read
    from the model's own layers."""
    convolutions = [("input", model.decoder.start)] + [
        (f"layer {i + 1}", layer.dilated) for i, layer in enumerate(model.decoder.layers)]
    stack, reach = [], 0
    for name, convolution in convolutions:
        reach += convolution.left_padding
        stack.append((name, convolution.dilation[0], reach))
    return stack


def drawn_receptive_field(model) -> int:
    """Samples one prediction sees: the top layer's reach plus the newest sample (the input is shifted by one)."""
    return decoder_stack(model)[-1][2] + 1


def receptive_field_figure(wavenet: LoadedModel, note: Note, step: int) -> go.Figure:
    """The dilated causal stack to scale above the waveform, with the stretch that the prediction of sample
    `step` sees shaded on both."""
    stack = decoder_stack(wavenet.model)
    field = drawn_receptive_field(wavenet.model)
    newest, oldest = step - 1, step - field  # the prediction of `step` sees samples oldest..newest
    figure = make_subplots(2, 1, shared_xaxes=True, row_heights=[0.55, 0.45], vertical_spacing=0.16,
                           subplot_titles=("What each layer sees", f"The note up to sample {step}"))
    names = [name for name, _, _ in stack]
    figure.add_trace(go.Bar(y=names, x=[reach for _, _, reach in stack], base=[newest - reach for *_, reach in stack],
                            orientation="h", marker_color="steelblue", name="reach",
                            customdata=[[dilation, reach] for _, dilation, reach in stack],
                            hovertemplate="%{y}: gap %{customdata[0]}, sees %{customdata[1]} samples back"
                                          "<extra></extra>"), 1, 1)
    start = max(0, oldest)
    shown = np.arange(start, min(step + 1, len(note.audio)))
    figure.add_trace(go.Scatter(x=shown, y=note.audio[shown], name="the note", line=dict(color="gray"),
                                hovertemplate="sample %{x}: %{y:.4f}<extra></extra>"), 2, 1)
    figure.add_trace(go.Scatter(x=[step], y=[note.audio[step]], mode="markers", name="sample being predicted",
                                marker=dict(size=12, color="crimson")), 2, 1)
    for row in (1, 2):
        figure.add_vrect(x0=oldest, x1=newest, fillcolor="gold", opacity=0.25, line_width=0, row=row, col=1,
                         name="receptive field")
    figure.update_yaxes(autorange="reversed", row=1, col=1)  # the output layer at the top
    figure.update_xaxes(title="sample", row=2, col=1)
    seconds = field / SAMPLE_RATE
    return _layout(figure, "Receptive field", f"{field} samples ({1000 * seconds:.0f} ms) before sample {step}",
                   height=FIGURE_HEIGHT + 20 + 12 * len(stack))


@torch.no_grad()
def output_logits(wavenet: LoadedModel, note: Note, step: int) -> torch.Tensor:
    """The decoder's logits [256] for sample `step`, teacher-forced on the note's true past.

    Only the receptive field before `step` matters, so only that much audio is run, from a Z frame boundary so
    that each sample keeps its own frame of Z; an excitation keeps the phase measured on the whole note.
    """
    model, config = wavenet.model, wavenet.model.config
    if not 0 <= step < len(note.audio):
        raise ExplorerError(f"Choose a time step from 0 to {len(note.audio) - 1}.")
    key = (wavenet.fingerprint, audio_digest(note.audio), note.pitch, step)
    cached = _logits.get(key)
    if cached is not None:
        return cached
    hop = config.hop_length
    first_frame = max(0, step - drawn_receptive_field(model)) // hop
    audio = torch.tensor(note.audio)[None]  # a copy: the note's own array is read-only
    z = torch.from_numpy(stacked_z(encode_notes(wavenet, [note])))[:, first_frame: step // hop + 1]
    pitch = pitch_tensor(wavenet, [note.pitch], [note.name])
    window = slice(first_frame * hop, step + 1)
    phase = (fundamental_phase(audio, pitch, config.sample_rate)[:, window] if config.excitation_harmonics
             else None)
    logits = model.eval().decode_logits(audio[:, window], z, pitch, phase)[0, :, -1]
    _logits.put(key, logits)
    return logits


def distribution(logits: torch.Tensor, temperature: float) -> np.ndarray:
    """softmax(logits / temperature) [256]; temperature 0 puts all the chance on the likeliest level."""
    if temperature <= 0:
        return np.eye(len(logits))[int(logits.argmax())]
    return torch.softmax(logits.double() / temperature, dim=-1).numpy()


def entropy_bits(probabilities: np.ndarray) -> float:
    """How uncertain a distribution is: 0 bits for a sure level, 8 bits for all 256 alike."""
    p = probabilities[probabilities > 0]
    return float(-(p * np.log2(p)).sum())


def drawn_level(logits: torch.Tensor, temperature: float, seed: int) -> int:
    """The mu-law level (-128..127) that generation would draw from these logits with this seed."""
    uniform = sampling_uniforms(1, 1, temperature, seed)
    return int(sample_logits(logits[None], temperature, None if uniform is None else uniform[0])[0]) - 128


def distribution_figure(wavenet: LoadedModel, note: Note, step: int, temperature: float,
                        seed: int) -> go.Figure:
    """The 256-way output distribution for sample `step` at `temperature`, the drawn level and the true one."""
    logits = output_logits(wavenet, note, step)
    probabilities = distribution(logits, temperature)
    drawn = drawn_level(logits, temperature, seed)
    true_level = int(mu_law_encode(note.audio[step:step + 1])[0])
    levels = np.arange(-128, 128)
    colours = np.where(levels == drawn, "crimson", "steelblue")
    figure = go.Figure(go.Bar(x=levels, y=probabilities, marker_color=colours, name="chance",
                              hovertemplate="level %{x}: %{y:.3f}<extra></extra>"))
    # Open on the levels that have a real chance (double-click shows all 256).
    likely = levels[probabilities > 1e-3]
    shown = [min(likely.min(), true_level, drawn) - 8, max(likely.max(), true_level, drawn) + 8]
    middle = sum(shown) / 2  # each label reads towards the middle, so neither runs off the figure's edge
    figure.add_vline(x=true_level, line_dash="dash", line_color="black", annotation_text=f"true level {true_level}",
                     annotation_position="top left" if true_level > middle else "top right")
    figure.add_annotation(x=drawn, y=float(probabilities[drawn + 128]), text=f"drawn: {drawn}", showarrow=True,
                          arrowhead=2, ax=-60 if drawn > middle else 60, ay=-25, font=dict(color="crimson"))
    figure.update_xaxes(range=shown)
    figure.update_xaxes(title="mu-law level of sample " + str(step))
    figure.update_yaxes(title="chance", rangemode="tozero")
    return _layout(figure, "The decoder's guess", f"temperature {temperature:g}, seed {seed}",
                   f"uncertainty {entropy_bits(probabilities):.2f} bits of 8")


# --- 4. mixing codes ---------------------------------------------------------------------------------------------

def blend_grid(first: Note, second: Note, weight: float) -> Grid:
    """A one-cell line: (1 - weight) of the first note's code and `weight` of the second's."""
    if not 0 <= weight <= 1:
        raise ExplorerError("The mixing weight goes from 0 (the first note) to 1 (the second).")
    return Grid(corners=[first, second], weights=np.array([[1 - weight, weight]]), labels=["blend"],
                   rule="line")


def blend_code(wavenet: LoadedModel, grid: Grid) -> np.ndarray:
    """The blended WaveNet Z [frames, 16] of a one-cell grid."""
    return grid_z(wavenet, grid)[0]


def mixing_figure(wavenet: LoadedModel, grid: Grid, blend_audio: np.ndarray, decoder_label: str) -> go.Figure:
    """Both notes' Z, their blend, and the rainbowgram of the decoded blend, one above the other."""
    first, second = grid.corners
    weight = float(grid.weights[0, 1])
    codes = stacked_z(encode_notes(wavenet, grid.corners))
    blend = blend_code(wavenet, grid)
    limit = float(np.abs(codes).max()) or 1.0
    rows = [("Z of the first note", codes[0]), (f"blend at weight {weight:g}", blend),
            ("Z of the second note", codes[1])]
    figure = make_subplots(4, 1, shared_xaxes=True, vertical_spacing=0.06,
                           subplot_titles=[title for title, _ in rows] + [f"the blend decoded ({decoder_label})"])
    for row, (title, z) in enumerate(rows, start=1):
        figure.add_trace(_z_heatmap(z, wavenet.model.config.hop_length, title, limit, showscale=row == 1), row, 1)
        figure.update_yaxes(title="channel", row=row, col=1)
    add_rainbowgram(figure, blend_audio, 4, 1)
    figure.update_xaxes(title="time (s)", row=4, col=1)
    return _layout(figure, "Mixing codes", f"1: {first.name}", f"2: {second.name}", height=FIGURE_HEIGHT + 300)


# --- 5. three decoders side by side ------------------------------------------------------------------------------

def cost_table(decoders: list[tuple[str, LoadedModel]]) -> str:
    """A markdown table of each decoder's expected time for one 4 s note here, from its own measured speed."""
    lines = ["| decoder | checkpoint | one 4 s note takes | samples/s | × real time |", "|---|---|---:|---:|---:|"]
    for label, loaded in decoders:
        seconds = loaded.decoding.estimate_seconds(1, NOTE_LENGTH)
        lines.append(f"| {label} | `{loaded.name}` | {seconds:.2f} s | {NOTE_LENGTH / seconds:,.0f} | "
                     f"{NOTE_LENGTH / SAMPLE_RATE / seconds:.2f} |")
    return "\n".join(lines)


def evaluation_table(checkpoints_dir, offered: set[str]) -> str:
    """The table of the evaluation written next to the checkpoints, or a sentence saying there is none. A row that
    names a checkpoint, "DDSP reconstruction (name, ...)", is kept only if the model pickers offer that name."""
    path = Path(checkpoints_dir) / EVALUATION_FILE
    if not path.is_file():
        return f"No evaluation has been written next to these checkpoints (`{EVALUATION_FILE}`)."
    rows = [line for line in path.read_text().splitlines() if line.startswith("|")]
    return "\n".join(row for row in rows if (named := CHECKPOINT_IN_ROW.search(row)) is None
                     or named.group(1) in offered)
