"""NSynth timbre explorer: a web page over nsynth_core.explorer.explorer.

    python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)

Checkpoints are read from checkpoints/ (or the folder named by NSYNTH_CHECKPOINTS); files handed to visitors are
written to a temporary folder (NSYNTH_OUTPUTS) and deleted after an hour. The page's parts live in webapp/: this
file only puts them together; importing it starts nothing.
"""

import functools

import gradio as gr

from nsynth_core.explorer.explorer import ASSETS_DIR, Explorer
from nsynth_core.exports import example_grid
from nsynth_core.exports import files as exports
from webapp import about_tab, server
from webapp.encoding_queue import FairBatchQueue, prepared_notes
from webapp.explore_tab import AFTER_THE_FIRST_SOUND, ExploreTab
from webapp.grid_tab import GridTab
from webapp.header import Header
from webapp.how_it_works_tab import HowItWorksTab
from webapp.play_tab import CONFIGURE_MAP_SOUND, PlayTab, synth_routes
from webapp.reconstruct_tab import ReconstructTab


def notes_queue_for(explorer: Explorer) -> FairBatchQueue:
    """The one queue every visitor's new notes wait in, to be pitched, encoded and placed on the map."""
    return FairBatchQueue(functools.partial(prepared_notes, explorer))


def build(explorer: Explorer, notes_queue: FairBatchQueue) -> gr.Blocks:
    """The page over `explorer`, its visitors' new notes handed to `notes_queue`. It starts no thread: main()
    serves it."""
    example = example_grid.load_example(explorer.assets_dir)  # heard on the page before anything is chosen
    header, explore = Header(explorer), ExploreTab(explorer, notes_queue)
    grid, reconstruct = GridTab(explorer, example), ReconstructTab(explorer)
    how, play = HowItWorksTab(explorer), PlayTab(explorer, example)
    # Gradio keeps a copy of every file it serves (uploads, players' wavs, zips): drop those older than an hour.
    with gr.Blocks(title="NSynth timbre explorer", delete_cache=(600, exports.OUTPUT_MAX_AGE)) as page:
        header.layout(example)
        explore.layout(header)
        grid.layout(header)
        reconstruct.layout(header)
        how.layout()
        play.layout()
        about_tab.layout()
        explore.wire(header, grid.corners, reconstruct.source_note)
        grid.wire(header, explore)
        reconstruct.wire(explore)
        header.wire()
        how.wire(header, explore, reconstruct)
        play.wire(header, explore, grid)

        page.load(None, js=(ASSETS_DIR / "map_click.js").read_text())  # reports clicks on notes and empty space
        page.load(None, js=(ASSETS_DIR / "play.js").read_text())  # the Play tab's synthesiser, pad and keys
        page.load(None, js=(ASSETS_DIR / "map_sound.js").read_text())  # a click between notes heard from the page
        page.load(None, play.map_sound, None, js=CONFIGURE_MAP_SOUND)
        page.load(header.refresh_checkpoints, header.model_paths, [header.status, *header.model_paths])
        note_pickers = [explore.selected, *grid.corners, reconstruct.source_note, how.partner]
        page.load(header.note_pickers, [header.session, *note_pickers], note_pickers).then(
            reconstruct.opening_note, reconstruct.source_note, reconstruct.source_note)
        page.load(explore.opening_map, explore.map_args, explore.map_plot, js=AFTER_THE_FIRST_SOUND)
        page.load(header.describe_models, header.model_paths, header.model_info).then(
            grid.estimate, grid.estimate_inputs, grid.expected)
    server.guard_api(page)
    return page


def main():
    server.tune_process()  # before the server's threads start
    explorer = Explorer()
    notes_queue = notes_queue_for(explorer)
    page = build(explorer, notes_queue)
    server.start_background_work(explorer, notes_queue)
    server.launch(page, explorer, routes=synth_routes())


if __name__ == "__main__":
    main()
