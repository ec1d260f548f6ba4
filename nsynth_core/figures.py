"""The explorer's plotly figures: the map of notes in the embedding space, and an empty map with a message."""

import numpy as np
import plotly
import plotly.graph_objects as go

from .embedding_map import EmbeddingMap

COLOR_BY = ("family", "pitch", "source")


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
    if len(user_points):
        notes, xy = zip(*user_points)
        xy = np.asarray(xy)
        figure.add_trace(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers+text", name="your notes", text=[n.name for n in notes],
            textposition="top center", hovertemplate=hover,
            customdata=[[n.id, n.family, "" if n.pitch is None else n.pitch] for n in notes],
            marker=dict(size=16, symbol="star", color="black", line=dict(color="white", width=1))))
    if len(cells):
        cell_labels, xy = zip(*cells)
        xy = np.asarray(xy)
        figure.add_trace(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name="grid cells", text=list(cell_labels),
            hovertemplate="%{text}<extra></extra>",
            marker=dict(size=9, symbol="square", color="rgba(0,0,0,0)", line=dict(color="crimson", width=2))))
    figure.update_layout(margin=dict(l=10, r=10, t=30, b=10), height=480, legend=dict(itemsizing="constant"),
                         colorway=plotly.colors.qualitative.Dark24,  # 11 families need more than 10 colours
                         xaxis=dict(showticklabels=False, title=None), yaxis=dict(showticklabels=False, title=None),
                         title=dict(text="Notes in the embedding space (UMAP of Z averaged over time)",
                                    font=dict(size=14)), clickmode="event")
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
