"""The explorer's plotly figures: the map of notes in the embedding space, an empty map with a message, and
rainbowgrams with their axes."""

import librosa
import numpy as np
import plotly
import plotly.graph_objects as go
from PIL import Image

from nsynth_core.audio.core import SAMPLE_RATE
from nsynth_core.explorer.embedding_map import EmbeddingMap
from nsynth_core.audio.rainbowgram import HOP_LENGTH as RAINBOWGRAM_HOP
from nsynth_core.audio.rainbowgram import LOWEST_NOTE, OCTAVES, rainbowgram

COLOR_BY = ("family", "pitch", "source")
COLOR_BY_LABELS = {"family": "instrument family", "pitch": "pitch", "source": "sound bank (SoundFont)"}


class FigureError(ValueError):
    """A figure asked for with options it does not have."""


def map_figure(embedding_map: EmbeddingMap, color_by: str = "family", user_points=(), cells=(),
               trajectory=None) -> go.Figure:
    """Plotly scatter of the map.

    user_points: [(Note, xy)] shown as stars; cells: [(label, xy)] of a grid; trajectory: (name, [frames, 2]).
    Each bundled and user point carries its note id in customdata, which a click reports back to the page.
    """
    if color_by not in COLOR_BY:
        raise FigureError(f"Colour by one of {COLOR_BY}, not {color_by!r}.")
    figure = go.Figure()
    hover = "<b>%{customdata[0]}</b><br>family: %{customdata[1]}<br>MIDI pitch: %{customdata[2]}<extra></extra>"
    labels = np.stack([embedding_map.names, embedding_map.families, embedding_map.pitches.astype(str)], axis=-1)
    x, y = embedding_map.positions.T
    if color_by == "pitch":
        figure.add_trace(go.Scatter(
            x=x, y=y, mode="markers", name="examples", customdata=labels, hovertemplate=hover,
            marker=dict(size=10, color=embedding_map.pitches, colorscale="Viridis",
                        colorbar=dict(title="MIDI pitch", thickness=12))))
    else:
        groups = embedding_map.families if color_by == "family" else embedding_map.sources
        for group in sorted(set(groups.tolist())):
            keep = groups == group
            figure.add_trace(go.Scatter(x=x[keep], y=y[keep], mode="markers", name=group, customdata=labels[keep],
                                        hovertemplate=hover, marker=dict(size=10)))
    if trajectory is not None:
        name, path = trajectory
        figure.add_trace(go.Scatter(
            x=path[:, 0], y=path[:, 1], mode="lines+markers", name=f"{name} over time",
            line=dict(color="rgba(60,60,60,0.5)"), hoverinfo="skip",
            marker=dict(size=5, color=np.arange(len(path)), colorscale="Plasma")))
        figure.add_trace(go.Scatter(
            x=path[[0, -1], 0], y=path[[0, -1], 1], mode="markers+text", text=["start", "end"],
            textposition="top center", showlegend=False, hoverinfo="skip",
            marker=dict(size=11, symbol=["circle-open", "x"], color="black")))
    if len(user_points):
        notes, xy = zip(*user_points)
        xy = np.asarray(xy)
        # Named on hover only: names of notes placed close together would overlap. Ids stay in customdata for clicks.
        figure.add_trace(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name="your notes",
            text=[n.name for n in notes], hovertemplate="<b>%{text}</b><br>family, guessed from the nearest "
            "examples: %{customdata[1]}<br>MIDI pitch: %{customdata[2]}<extra></extra>",
            customdata=[[n.id, n.family, "" if n.pitch is None else n.pitch] for n in notes],
            marker=dict(size=16, symbol="star", color="black", line=dict(color="white", width=1))))
    if len(cells):
        cell_labels, xy = zip(*cells)
        xy = np.asarray(xy)
        figure.add_trace(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name="grid cells", text=list(cell_labels),
            hovertemplate="%{text}<extra></extra>",
            marker=dict(size=9, symbol="square", color="rgba(0,0,0,0)", line=dict(color="crimson", width=2))))
    figure.update_layout(margin=dict(l=30, r=10, t=105, b=30), height=520, legend=dict(itemsizing="constant"),
                         colorway=plotly.colors.qualitative.Dark24,  # 11 families need more than 10 colours
                         xaxis=dict(showticklabels=False, title="map x"),
                         yaxis=dict(showticklabels=False, title="map y"),
                         # Short lines: plotly does not wrap a title, and a phone's plot is 330 px wide.
                         title=dict(text="Notes in the embedding space<br><sub>UMAP of Z averaged over time;<br>"
                                         "each point is a 4 s note, near points<br>have similar codes (the axes "
                                         "have no units)</sub>", font=dict(size=14)), clickmode="event")
    return figure


def message_figure(text: str) -> go.Figure:
    """An empty map that says why there is nothing to show."""
    figure = go.Figure()
    figure.add_annotation(text=text, showarrow=False, font=dict(size=14), x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_layout(height=480, xaxis=dict(visible=False), yaxis=dict(visible=False))
    return figure


def mark_blend(figure: go.Figure, point, neighbours_xy: np.ndarray, labels: list[str]) -> go.Figure:
    """Marks a played point of the map and a line to each neighbour blended into it, labelled with its share."""
    x, y = point
    for (nx, ny), label in zip(np.asarray(neighbours_xy), labels):
        figure.add_trace(go.Scatter(x=[x, nx], y=[y, ny], mode="lines+text", text=["", label],
                                    textposition="top center", hoverinfo="skip", showlegend=False,
                                    line=dict(color="crimson", width=1, dash="dot")))
    figure.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name="played point", hoverinfo="skip",
                                marker=dict(size=14, symbol="x", color="crimson")))
    return figure


def add_rainbowgram(figure: go.Figure, audio: np.ndarray, row: int | None = None, col: int | None = None,
                    pitch_axis: bool = False) -> None:
    """The rainbowgram stretched over its (sub)plot's time axis in seconds (an Image trace would force square
    pixels on a shared axis). With `pitch_axis`, the y axis names the C of each octave; else it is hidden."""
    picture = rainbowgram(audio)
    axes = {} if row is not None else {"xref": "x", "yref": "y"}  # a subplot's row and col name its axes
    figure.add_layout_image(source=Image.fromarray(picture), x=0, y=OCTAVES, sizex=picture.shape[1]
                            * RAINBOWGRAM_HOP / SAMPLE_RATE, sizey=OCTAVES, xanchor="left", yanchor="top",
                            sizing="stretch", layer="above", row=row, col=col, **axes)
    lowest = librosa.note_to_midi(LOWEST_NOTE)
    figure.update_yaxes(range=[0, OCTAVES], visible=pitch_axis, tickvals=list(range(OCTAVES + 1)),
                        ticktext=[librosa.midi_to_note(lowest + 12 * octave, unicode=False)
                                  for octave in range(OCTAVES + 1)], showgrid=False, row=row, col=col)


def rainbowgram_figure(audio: np.ndarray, title: str) -> go.Figure:
    """A rainbowgram with its axes: time in seconds, pitch by octave, and what brightness and colour mean."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, len(audio) / SAMPLE_RATE], y=[0, 0], mode="markers", opacity=0,
                                hoverinfo="skip", showlegend=False))  # the time axis spans the whole sound
    add_rainbowgram(figure, audio, pitch_axis=True)
    figure.update_xaxes(title="time (s)", range=[0, len(audio) / SAMPLE_RATE], showgrid=False)
    figure.update_layout(title=dict(text=f"{title}<br><sub>brightness: loudness<br>colour: phase change "
                                         "(steady = a clean partial)</sub>", x=0.02),
                         height=340, margin=dict(l=45, r=10, t=80, b=45), plot_bgcolor="black")
    return figure
