"""Sound as arrays: 16 kHz mono I/O, levels and mu-law (`core`), pitch and distance measures (`metrics`) and
rainbowgrams (`rainbowgram`).

Imports nothing else of the project; never gradio or plotly."""
