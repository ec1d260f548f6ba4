"""Where a plotly figure's titles land, in pixels, at a given width: what the figure tests measure for overlaps.

Plotly lays text out in the browser; here a line of text is taken as 0.6 em per character (a little wider than
the page's sans-serif) and 1.3 em tall, so a box found clear here is clear on the page too.
"""

import re

PHONE_PLOT_WIDTH = 358  # a figure's width on a 390 px wide phone
CHAR_WIDTH_EM, LINE_HEIGHT_EM = 0.6, 1.3
PLOTLY_DEFAULT_FONT = 12


def font_size(font, layout) -> float:
    return (font.size if font is not None and font.size else None) or layout.font.size or PLOTLY_DEFAULT_FONT


def title_lines(figure) -> list[tuple[str, float]]:
    """(text, font size) of each line of the figure's title."""
    size = font_size(figure.layout.title.font, figure.layout)
    lines = []
    for line in (figure.layout.title.text or "").split("<br>"):
        styled = re.search(r"font-size:\s*(\d+)px", line)
        lines.append((re.sub(r"<[^>]+>", "", line), float(styled.group(1)) if styled else size))
    return lines


def title_span(figure) -> tuple[float, float]:
    """How far below the figure's top edge its top-anchored title begins and ends: plotly spaces its lines by the
    title's font size and centres them on where the first line would sit, pad.t below the top edge."""
    line = font_size(figure.layout.title.font, figure.layout) * LINE_HEIGHT_EM
    count = len(title_lines(figure))
    top = (figure.layout.title.pad.t or 0) - (count - 1) * line / 2
    return top, top + count * line


def text_width(text: str, size: float) -> float:
    return len(text) * CHAR_WIDTH_EM * size


def annotation_boxes(figure, width: float = PHONE_PLOT_WIDTH) -> list[tuple[str, float, float, float, float]]:
    """(text, left, top, right, bottom) in px of each paper-placed annotation (subplot titles), at `width`."""
    layout, margin = figure.layout, figure.layout.margin
    height = layout.height
    plot_width, plot_height = width - margin.l - margin.r, height - margin.t - margin.b
    boxes = []
    for note in layout.annotations:
        if note.xref != "paper" or note.yref != "paper":
            continue
        size = font_size(note.font, layout)
        centre, bottom = margin.l + note.x * plot_width, margin.t + (1 - note.y) * plot_height
        half = text_width(note.text, size) / 2
        boxes.append((note.text, centre - half, bottom - size * LINE_HEIGHT_EM, centre + half, bottom))
    return boxes


def overlapping(boxes) -> list[tuple[str, str]]:
    return [(a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]]
