"""A visitor's note gets a family guessed from its nearest examples in the WaveNet's code."""

import numpy as np

from tests.app_helpers import write_tiny_checkpoints
from nsynth_core.exports import example_grid
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.loaded_models import encode_notes, load_model, stacked_z
from nsynth_core.explorer.notes import EncodedNote, add_notes, bundled_notes, note_from_file
from nsynth_core.explorer.embedding_map import note_features
from nsynth_core.explorer.family_guess import guess_families, with_guessed_families


def test_the_shipped_wavenet_guesses_a_left_out_examples_family_far_above_chance():
    _, wavenet = example_grid.shipped_models()
    examples = bundled_notes()
    features = note_features(stacked_z(encode_notes(wavenet, examples)))
    families = [note.family for note in examples]
    right = 0
    for left_out in range(len(examples)):
        others = [i for i in range(len(examples)) if i != left_out]
        guess, = guess_families(features[[left_out]], features[others], [families[i] for i in others])
        right += guess == f"{families[left_out]}?"
    chance = 1 / len(set(families))
    assert right / len(examples) >= 5 * chance  # 64 % of 66 with the shipped WaveNet; chance is 9 %


def test_only_notes_without_a_family_get_a_guess_said_as_one(tmp_path, write_tone):
    wavenet, _, _ = write_tiny_checkpoints(tmp_path)
    app = Explorer(tmp_path)
    upload = note_from_file(write_tone(frequency=262.0, seconds=1.0), name="my tone")
    known = next(iter(app.bundled.values()))
    session = add_notes({}, [upload, known])
    guessed = with_guessed_families(app, load_model(wavenet), session)
    family = guessed[upload.id].family
    assert family.endswith("?") and family[:-1] in {note.family for note in app.bundled.values()}
    assert guessed[upload.id].label == f"my tone ({family}, C4)"
    assert guessed[known.id].family == known.family  # a known family is kept
    assert with_guessed_families(app, None, session) == session  # without a WaveNet there is nothing to go on
    assert np.array_equal(guessed[upload.id].audio, upload.audio)
    assert isinstance(guessed[upload.id], EncodedNote)  # the guess came from its Z, which it now carries
