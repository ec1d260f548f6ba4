"""The layers of nsynth_core import only what lies below them: the models, the engine, audio and data never pull
in the web page's libraries (gradio, plotly), and the explorer neither those nor the files it is exported to
(nsynth_core.exports) nor the page (webapp)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

IMPORT_EVERY_MODULE = """
import importlib, json, pkgutil, sys
packages = [importlib.import_module(name) for name in sys.argv[1:]]
modules = [info.name for package in packages
           for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in modules:
    importlib.import_module(name)
print(json.dumps({"modules": modules, "loaded": sorted(sys.modules)}))
"""


def every_module_imported(packages: tuple[str, ...]) -> tuple[list[str], set[str]]:
    """(the modules `packages` hold, found by pkgutil; every module loaded once all are imported) in a fresh
    Python."""
    done = subprocess.run([sys.executable, "-c", IMPORT_EVERY_MODULE, *packages], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    return found["modules"], set(found["loaded"])


@pytest.mark.parametrize("packages, one_of_them, never", [
    (("nsynth_core.models", "nsynth_core.engine", "nsynth_core.audio", "nsynth_core.data"),
     "nsynth_core.engine.fastgen", ("gradio", "plotly")),
    (("nsynth_core.explorer",), "nsynth_core.explorer.explorer", ("gradio", "plotly", "nsynth_core.exports", "webapp")),
], ids=["models-engine-audio-data", "explorer"])
def test_a_layer_never_imports_the_layers_above_it(packages, one_of_them, never):
    modules, loaded = every_module_imported(packages)
    assert one_of_them in modules and set(modules) <= loaded
    assert [name for name in loaded if any(name == top or name.startswith(top + ".") for top in never)] == []
