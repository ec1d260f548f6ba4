"""The models: the paper's WaveNet autoencoder (`wavenet`), the paper's spectral baseline (`spectral`), the DDSP
decoder that renders the WaveNet's Z (`ddsp`), and their files on disk (`checkpoint`: safetensors + JSON).

May import `nsynth_core.audio` only; never gradio, plotly, the engine or anything above it."""
