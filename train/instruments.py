"""General-MIDI melodic programs mapped to NSynth instrument families and sources.

NSynth labels every instrument with one of 11 families and one of 3 sources (how the sound is made:
acoustic = a physical instrument, electronic = an electric one with pickups or tonewheels, synthetic = a
synthesizer). A General-MIDI SoundFont has 128 melodic programs in 16 groups of 8; this table says which
family and source each program stands for, and the range of MIDI pitches it really sounds in, so a rendered
dataset never asks a tuba for pitch 108. Programs that fit no NSynth family (synth and sound effects, drums,
hits, unpitched percussion) or have no single pitch per key are left out of the table.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class GMInstrument:
    program: int  # 0-based General-MIDI program number
    name: str
    family: str
    source: str
    lowest_pitch: int  # sounding MIDI range, inclusive
    highest_pitch: int


_TABLE = (
    # Piano
    (0, "Acoustic Grand Piano", "keyboard", "acoustic", 21, 108),
    (1, "Bright Acoustic Piano", "keyboard", "acoustic", 21, 108),
    (2, "Electric Grand Piano", "keyboard", "electronic", 21, 108),
    (3, "Honky-tonk Piano", "keyboard", "acoustic", 21, 108),
    (4, "Electric Piano 1", "keyboard", "electronic", 28, 103),
    (5, "Electric Piano 2", "keyboard", "electronic", 28, 103),
    (6, "Harpsichord", "keyboard", "acoustic", 29, 89),
    (7, "Clavinet", "keyboard", "electronic", 29, 89),
    # Chromatic percussion
    (8, "Celesta", "keyboard", "acoustic", 60, 108),
    (9, "Glockenspiel", "mallet", "acoustic", 79, 108),
    (10, "Music Box", "mallet", "acoustic", 60, 108),
    (11, "Vibraphone", "mallet", "acoustic", 53, 89),
    (12, "Marimba", "mallet", "acoustic", 45, 96),
    (13, "Xylophone", "mallet", "acoustic", 65, 108),
    (14, "Tubular Bells", "mallet", "acoustic", 60, 77),
    (15, "Dulcimer", "mallet", "acoustic", 50, 88),
    # Organ
    (16, "Drawbar Organ", "organ", "electronic", 36, 96),
    (17, "Percussive Organ", "organ", "electronic", 36, 96),
    (18, "Rock Organ", "organ", "electronic", 36, 96),
    (19, "Church Organ", "organ", "acoustic", 24, 96),
    (20, "Reed Organ", "organ", "acoustic", 41, 89),
    (21, "Accordion", "reed", "acoustic", 41, 89),
    (22, "Harmonica", "reed", "acoustic", 60, 96),
    (23, "Tango Accordion", "reed", "acoustic", 41, 89),
    # Guitar
    (24, "Acoustic Guitar (nylon)", "guitar", "acoustic", 40, 84),
    (25, "Acoustic Guitar (steel)", "guitar", "acoustic", 40, 84),
    (26, "Electric Guitar (jazz)", "guitar", "electronic", 40, 86),
    (27, "Electric Guitar (clean)", "guitar", "electronic", 40, 86),
    (28, "Electric Guitar (muted)", "guitar", "electronic", 40, 86),
    (29, "Overdriven Guitar", "guitar", "electronic", 40, 86),
    (30, "Distortion Guitar", "guitar", "electronic", 40, 86),
    # Guitar harmonics (31) sound one or two octaves above the key depending on the key: no single pitch label.
    # Bass
    (32, "Acoustic Bass", "bass", "acoustic", 28, 67),
    (33, "Electric Bass (finger)", "bass", "electronic", 28, 67),
    (34, "Electric Bass (pick)", "bass", "electronic", 28, 67),
    (35, "Fretless Bass", "bass", "electronic", 28, 67),
    (36, "Slap Bass 1", "bass", "electronic", 28, 67),
    (37, "Slap Bass 2", "bass", "electronic", 28, 67),
    (38, "Synth Bass 1", "bass", "synthetic", 24, 72),
    (39, "Synth Bass 2", "bass", "synthetic", 24, 72),
    # Strings (timpani, program 47, is unpitched enough to fit no family)
    (40, "Violin", "string", "acoustic", 55, 103),
    (41, "Viola", "string", "acoustic", 48, 91),
    (42, "Cello", "string", "acoustic", 36, 84),
    (43, "Contrabass", "string", "acoustic", 28, 67),
    (44, "Tremolo Strings", "string", "acoustic", 28, 103),
    (45, "Pizzicato Strings", "string", "acoustic", 28, 96),
    (46, "Orchestral Harp", "string", "acoustic", 23, 103),
    # Ensemble (orchestra hit, program 55, is a sound effect)
    (48, "String Ensemble 1", "string", "acoustic", 28, 103),
    (49, "String Ensemble 2", "string", "acoustic", 28, 103),
    (50, "Synth Strings 1", "string", "synthetic", 28, 103),
    (51, "Synth Strings 2", "string", "synthetic", 28, 103),
    (52, "Choir Aahs", "vocal", "acoustic", 40, 84),
    (53, "Voice Oohs", "vocal", "acoustic", 40, 84),
    (54, "Synth Voice", "vocal", "synthetic", 40, 84),
    # Brass
    (56, "Trumpet", "brass", "acoustic", 54, 86),
    (57, "Trombone", "brass", "acoustic", 40, 72),
    (58, "Tuba", "brass", "acoustic", 28, 58),
    (59, "Muted Trumpet", "brass", "acoustic", 54, 84),
    (60, "French Horn", "brass", "acoustic", 34, 77),
    (61, "Brass Section", "brass", "acoustic", 34, 86),
    (62, "Synth Brass 1", "brass", "synthetic", 28, 96),
    (63, "Synth Brass 2", "brass", "synthetic", 28, 96),
    # Reed
    (64, "Soprano Sax", "reed", "acoustic", 56, 88),
    (65, "Alto Sax", "reed", "acoustic", 49, 81),
    (66, "Tenor Sax", "reed", "acoustic", 44, 76),
    (67, "Baritone Sax", "reed", "acoustic", 36, 69),
    (68, "Oboe", "reed", "acoustic", 58, 91),
    (69, "English Horn", "reed", "acoustic", 52, 81),
    (70, "Bassoon", "reed", "acoustic", 34, 75),
    (71, "Clarinet", "reed", "acoustic", 50, 91),
    # Pipe
    (72, "Piccolo", "flute", "acoustic", 74, 108),
    (73, "Flute", "flute", "acoustic", 60, 96),
    (74, "Recorder", "flute", "acoustic", 60, 96),
    (75, "Pan Flute", "flute", "acoustic", 60, 96),
    (76, "Blown Bottle", "flute", "acoustic", 60, 84),
    (77, "Shakuhachi", "flute", "acoustic", 55, 86),
    (78, "Whistle", "flute", "acoustic", 72, 108),
    (79, "Ocarina", "flute", "acoustic", 60, 86),
    # Synth lead
    (80, "Lead 1 (square)", "synth_lead", "synthetic", 36, 96),
    (81, "Lead 2 (sawtooth)", "synth_lead", "synthetic", 36, 96),
    (82, "Lead 3 (calliope)", "synth_lead", "synthetic", 36, 96),
    (83, "Lead 4 (chiff)", "synth_lead", "synthetic", 36, 96),
    (84, "Lead 5 (charang)", "synth_lead", "synthetic", 36, 96),
    (85, "Lead 6 (voice)", "synth_lead", "synthetic", 36, 96),
    # Lead 7 (fifths, 86) sounds two pitches at once; pitch trackers hear their common root an octave below.
    (87, "Lead 8 (bass + lead)", "synth_lead", "synthetic", 36, 96),
    # Synth pad: NSynth has no pad family; pads are sustained synthesizer tones, closest to synth_lead,
    # except the choir and halo pads, which are voice-like.
    (88, "Pad 1 (new age)", "synth_lead", "synthetic", 36, 96),
    (89, "Pad 2 (warm)", "synth_lead", "synthetic", 36, 96),
    (90, "Pad 3 (polysynth)", "synth_lead", "synthetic", 36, 96),
    (91, "Pad 4 (choir)", "vocal", "synthetic", 36, 96),
    (92, "Pad 5 (bowed)", "synth_lead", "synthetic", 36, 96),
    (93, "Pad 6 (metallic)", "synth_lead", "synthetic", 36, 96),
    (94, "Pad 7 (halo)", "vocal", "synthetic", 36, 96),
    (95, "Pad 8 (sweep)", "synth_lead", "synthetic", 36, 96),
    # Synth effects (96-103) are sound effects: left out.
    # Ethnic
    (104, "Sitar", "guitar", "acoustic", 48, 84),
    (105, "Banjo", "guitar", "acoustic", 48, 84),
    (106, "Shamisen", "guitar", "acoustic", 50, 84),
    (107, "Koto", "guitar", "acoustic", 55, 91),
    (108, "Kalimba", "mallet", "acoustic", 60, 96),
    (109, "Bagpipe", "reed", "acoustic", 55, 77),
    (110, "Fiddle", "string", "acoustic", 55, 96),
    (111, "Shanai", "reed", "acoustic", 60, 88),
    # Percussive: only the pitched ones (agogo, woodblock, taiko, toms, synth drum, reverse cymbal left out)
    (112, "Tinkle Bell", "mallet", "acoustic", 72, 108),
    (114, "Steel Drums", "mallet", "acoustic", 52, 88),
    # Sound effects (120-127): left out.
)

GM_INSTRUMENTS = {row[0]: GMInstrument(*row) for row in _TABLE}
