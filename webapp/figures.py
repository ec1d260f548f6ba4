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


TITLE_SIZE = 17
SUBTITLE_SIZE = 14  # legible on a projector at the back of a class
TOOLBAR_HEIGHT = 32  # plotly's toolbar (zoom, pan, download) takes this band at the top right of a figure
TITLE_LINE = 1.3 * TITLE_SIZE  # plotly spaces a title's lines by its font size, whatever size a line is written in
LEGEND_ENTRY_WIDTH = 85  # px of an entry's name: the families' names in columns, three to a phone's row
BLEND_COLOURS = ("crimson", "darkorange", "royalblue", "seagreen")  # one per note blended into a played point


def pinned_title(title: str, *lines: str) -> dict:
    """A figure title over smaller lines that still read on a projector (plotly's <sub> is too small), pinned to
    the figure's top edge so that a top margin taller than it keeps it clear of the plot and its tick labels."""
    text = "<br>".join([title, *(f"<span style='font-size:{SUBTITLE_SIZE}px'>{line}</span>" for line in lines)])
    return dict(text=text, font=dict(size=TITLE_SIZE), x=0.02, xanchor="left", y=1, yref="container",
                yanchor="top", pad=dict(t=TOOLBAR_HEIGHT + len(lines) * TITLE_LINE / 2))  # plotly centres the
    # lines of a title on where a single line would be


def title_bottom(lines: int) -> float:
    """How far below a figure's top edge a pinned title with `lines` lines under its first one ends."""
    return TOOLBAR_HEIGHT + (1 + lines) * TITLE_LINE


class FigureError(ValueError):
    """A figure asked for with options it does not have."""


def family_colours(families) -> dict[str, str]:
    """One colour per instrument family, the same on every map (11 families need more than 10 colours)."""
    palette = plotly.colors.qualitative.Dark24
    return {family: palette[index % len(palette)] for index, family in enumerate(sorted(set(families)))}


def map_figure(embedding_map: EmbeddingMap, color_by: str = "family", user_points=(), cells=(),
               trajectory=None) -> go.Figure:
    """Plotly scatter of the map.

    user_points: [(Note, xy)] shown as stars in their guessed family's colour, each labelled with its name;
    cells: [(label, xy)] of a grid; trajectory: (name, [frames, 2]). Each bundled and user point carries its note
    id in customdata, which a click reports back to the page.
    """
    if color_by not in COLOR_BY:
        raise FigureError(f"Colour by one of {COLOR_BY}, not {color_by!r}.")
    figure = go.Figure()
    hover = "<b>%{customdata[0]}</b><br>family: %{customdata[1]}<br>MIDI pitch: %{customdata[2]}<extra></extra>"
    labels = np.stack([embedding_map.names, embedding_map.families, embedding_map.pitches.astype(str)], axis=-1)
    x, y = embedding_map.positions.T
    colours = family_colours([*embedding_map.families.tolist(), *(note.family for note, _ in user_points)])
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
                                        hovertemplate=hover,
                                        marker=dict(size=10, color=colours.get(group) if color_by == "family"
                                                    else None)))
    if trajectory is not None:
        _, path = trajectory  # the legend says "its path" rather than the note's name, too long for a phone
        figure.add_trace(go.Scatter(
            x=path[:, 0], y=path[:, 1], mode="lines+markers", name="its path over time",
            line=dict(color="rgba(60,60,60,0.5)"), hoverinfo="skip",
            marker=dict(size=5, color=np.arange(len(path)), colorscale="Plasma")))
        figure.add_trace(go.Scatter(
            x=path[[0, -1], 0], y=path[[0, -1], 1], mode="markers+text", text=["start", "end"],
            textposition="top center", showlegend=False, hoverinfo="skip",
            marker=dict(size=11, symbol=["circle-open", "x"], color="black")))
    if len(user_points):
        notes, xy = zip(*user_points)
        xy = np.asarray(xy)
        # Labels alternate above and below, so two notes placed side by side keep both names readable.
        figure.add_trace(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers+text", name="your notes", text=[n.name for n in notes],
            textposition=["top center" if i % 2 == 0 else "bottom center" for i in range(len(notes))],
            hovertemplate="<b>%{text}</b><br>family, guessed from the nearest "
            "examples: %{customdata[1]}<br>MIDI pitch: %{customdata[2]}<extra></extra>",
            customdata=[[n.id, n.family, "" if n.pitch is None else n.pitch] for n in notes],
            marker=dict(size=18, symbol="star", color=[colours[n.family] for n in notes],
                        line=dict(color="black", width=2))))
    if len(cells):
        cell_labels, xy = zip(*cells)
        xy = np.asarray(xy)
        figure.add_trace(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name="grid cells", text=list(cell_labels),
            hovertemplate="%{text}<extra></extra>",
            marker=dict(size=9, symbol="square", color="rgba(0,0,0,0)", line=dict(color="crimson", width=2))))
    # No fixed width: the map takes its box's width, and its legend sits below it, where a phone has room.
    figure.update_layout(autosize=True, height=620, margin=dict(l=30, r=20, t=title_bottom(3) + 8, b=30), font=dict(size=14),
                         legend=dict(itemsizing="constant", orientation="h", x=0, xanchor="left", y=-0.04,
                                     yanchor="top", font=dict(size=14), entrywidth=LEGEND_ENTRY_WIDTH,
                                     entrywidthmode="pixels"),
                         xaxis=dict(showticklabels=False, title=dict(text="map x", font=dict(size=14))),
                         yaxis=dict(showticklabels=False, title=dict(text="map y", font=dict(size=14))),
                         # Short lines: plotly does not wrap a title, and a phone's plot is 330 px wide.
                         title=pinned_title("Notes in the embedding space", "UMAP of Z averaged over time;",
                                            "each point is a 4 s note, near points",
                                            "have similar codes (no units)"),
                         clickmode="event")
    return figure


def message_figure(text: str) -> go.Figure:
    """An empty map that says why there is nothing to show."""
    figure = go.Figure()
    figure.add_annotation(text=text, showarrow=False, font=dict(size=14), x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_layout(height=480, xaxis=dict(visible=False), yaxis=dict(visible=False))
    return figure


def mark_blend(figure: go.Figure, point, neighbours_xy: np.ndarray) -> go.Figure:
    """Marks a played point of the map and a line to each neighbour blended into it, in BLEND_COLOURS' order (the
    nearest first). The shares are named where the current sound is described, in the same colours: beside the
    markers they overlapped, and as legend entries they crowded a phone's map."""
    x, y = point
    for index, (nx, ny) in enumerate(np.asarray(neighbours_xy)):
        colour = BLEND_COLOURS[index % len(BLEND_COLOURS)]
        figure.add_trace(go.Scatter(x=[x, nx], y=[y, ny], mode="lines+markers", showlegend=False,
                                    hoverinfo="skip", line=dict(color=colour, width=2,
                                                                                     dash="dot"),
                                    marker=dict(size=[0, 16], symbol="circle-open", color=colour,
                                                line=dict(width=2))))
    figure.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name="played point", hoverinfo="skip",
                                marker=dict(size=14, symbol="x", color="black")))
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
    """A rainbowgram with its axes: time in seconds, pitch by octave, and what brightness and colour mean.

    The title is pinned to the top of the figure with room below it, so it never runs into the top octave's name.
    """
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, len(audio) / SAMPLE_RATE], y=[0, 0], mode="markers", opacity=0,
                                hoverinfo="skip", showlegend=False))  # the time axis spans the whole sound
    add_rainbowgram(figure, audio, pitch_axis=True)
    figure.update_xaxes(title="time (s)", range=[0, len(audio) / SAMPLE_RATE], showgrid=False)
    figure.update_layout(title=pinned_title(title, "brightness: loudness", "colour: phase change",
                                            "(steady = a clean partial)"),
                         font=dict(size=14), height=400, margin=dict(l=50, r=20, t=title_bottom(3) + 18, b=50),
                         plot_bgcolor="black")
    return figure
