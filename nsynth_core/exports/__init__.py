"""Files made from the explorer's sounds: wavs, zips and play-all tracks (`files`), SoundFont 2 (`soundfont`),
the Play tab's browser pack (`browser_pack`), a visitor's saved notes (`session_archive`) and the page's example
grid (`example_grid`).

May import everything in `nsynth_core` below it; never gradio or plotly."""
