"""Sample-by-sample WaveNet generation: the reference loop with cached dilated-convolution queues (`generate`),
the compiled C++ engine that repeats it fast (`fastgen`, source in `csrc/`), and the numeric precision the CPU
offers (`precision`), and stopping a decode between chunks when its caller gives up (`stopping`).

May import `nsynth_core.audio` and `nsynth_core.models`; never gradio or plotly."""
