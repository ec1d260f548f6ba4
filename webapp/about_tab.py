"""The About tab: assets/about.md, the project's models and their evaluation in words."""

import gradio as gr

from nsynth_core.explorer.notes import ASSETS_DIR


def layout() -> None:
    with gr.Tab("About"):
        gr.Markdown((ASSETS_DIR / "about.md").read_text(), elem_id="about")
