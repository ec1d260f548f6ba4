"""What a visitor does with notes, free of any web page: notes and their Z (`notes`), checkpoints, loading,
encoding and decoding (`loaded_models`), the shared state over them (`explorer`), one decoding interface for the
three decoders (`decoding`), the UMAP map (`embedding_map`), any point of the map as a blend (`map_points`), grids
and their weights (`grids`, `interpolation`), grids at many pitches (`multigrid`) and family guesses
(`family_guess`).

May import `nsynth_core.audio`, `models` and `engine`; never gradio, plotly, page text or `exports`."""
