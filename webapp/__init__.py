"""The Gradio page over `nsynth_core.explorer`: its header and one module per tab (each the tab's layout and
handlers), what the tabs share (shared.py), figures, the walk-through, and the server parts (server.py: process
settings, warm-up, public API, launch; the encoding queue, niced thread pools, the decoding lanes, disk checks).
`app.py` puts it together; importing any of it starts nothing."""
