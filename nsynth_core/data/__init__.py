"""Data from outside: NSynth's json/wav and TFRecord readers and training crops (`nsynth`, used by `train/`), the
protobuf wire format (`protobuf`), TensorFlow checkpoint reading (`tf_checkpoint`) and the import of Magenta's
released WaveNet checkpoint (`convert_magenta`).

May import `nsynth_core.audio` and `nsynth_core.models`; never gradio or plotly."""
