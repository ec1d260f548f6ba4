"""The Gradio page over `nsynth_core.explorer`: its tabs and their handlers, figures, the walk-through, and the
server parts (the encoding queue, niced thread pools, disk checks). `app.py` wires it up; importing it starts
nothing."""
