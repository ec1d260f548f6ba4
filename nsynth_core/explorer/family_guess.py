"""A family for a visitor's own note, which comes without one: the family most common among its nearest bundled
notes in the WaveNet's code (Z averaged over time, the map's input), said as a guess ("keyboard?")."""

from dataclasses import replace

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from nsynth_core.explorer.embedding_map import note_features
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.loaded_models import LoadedModel, encode_notes, stacked_z
from nsynth_core.explorer.notes import Note

UNKNOWN = "unknown"  # a note's family before any guess (Note's default)
NEIGHBOURS = 3  # an odd few: one odd example does not decide, a far-off family does not vote


def guess_families(features: np.ndarray, example_features: np.ndarray, example_families: list[str],
                   neighbours: int = NEIGHBOURS) -> list[str]:
    """The family most common among each note's nearest examples (ties: the nearer ones'), e.g. "keyboard?"."""
    vote = KNeighborsClassifier(n_neighbors=neighbours, weights="distance").fit(example_features, example_families)
    return [f"{family}?" for family in vote.predict(features)]


def with_guesses(explorer: Explorer, wavenet: LoadedModel | None, notes: list[Note]) -> list[Note]:
    """The notes, each one that has no family given a guessed one (and its Z: an EncodedNote); without a WaveNet
    there is nothing to go on."""
    unknown = [i for i, note in enumerate(notes) if note.family == UNKNOWN]
    if wavenet is None or not unknown:
        return notes
    own = encode_notes(wavenet, [notes[i] for i in unknown])
    examples = encode_notes(wavenet, list(explorer.bundled.values()))
    guesses = guess_families(note_features(stacked_z(own)), note_features(stacked_z(examples)),
                             [note.family for note in examples])
    guessed = {i: replace(note, family=guess) for i, note, guess in zip(unknown, own, guesses)}
    return [guessed.get(i, note) for i, note in enumerate(notes)]


def with_guessed_families(explorer: Explorer, wavenet: LoadedModel | None, session: dict[str, Note]) -> dict[str, Note]:
    """The session with a guessed family for each note that has none."""
    return dict(zip(session, with_guesses(explorer, wavenet, list(session.values()))))
