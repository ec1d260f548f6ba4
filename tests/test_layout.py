"""The code's shape: importing the page starts and builds nothing, and modules and functions stay short enough to
read (app.py only wires webapp/ together)."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP_LINES = 100
MODULE_LINES = 500
FUNCTION_LINES = 80
LAYOUT_FUNCTION = "layout"  # a tab's layout, in webapp/: one long list of components is easier read whole

# Counts what importing the page makes: threads, thread pools, models (torch modules) and explorers. Gradio is
# imported first: it makes a thread pool of its own at import.
IMPORT_PROBE = """
import concurrent.futures, importlib, json, pkgutil, threading
import gradio, torch
from nsynth_core.explorer.explorer import Explorer

made = []
def counting(cls):
    original = cls.__init__
    def init(self, *args, **kwargs):
        made.append(type(self).__name__)
        original(self, *args, **kwargs)
    cls.__init__ = init
for cls in (torch.nn.Module, concurrent.futures.ThreadPoolExecutor, Explorer):
    counting(cls)
threads = threading.active_count()
import app
import webapp
for module in pkgutil.iter_modules(webapp.__path__):
    importlib.import_module(f"webapp.{module.name}")
print(json.dumps({"new_threads": threading.active_count() - threads, "made": made}))
"""


def test_importing_the_page_starts_no_thread_and_builds_nothing():
    run = subprocess.run([sys.executable, "-c", IMPORT_PROBE], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    imported = json.loads(run.stdout.splitlines()[-1])
    assert imported == {"new_threads": 0, "made": []}


def python_files() -> list[Path]:
    return [REPO / "app.py", *sorted((REPO / "webapp").glob("*.py")), *sorted((REPO / "nsynth_core").rglob("*.py"))]


def test_app_py_and_each_module_of_the_core_and_the_page_are_under_their_line_limits():
    too_long = [f"{path.relative_to(REPO)}: {lines} lines (limit {limit})"
                for path, limit in [(REPO / "app.py", APP_LINES),
                                    *((path, MODULE_LINES) for path in python_files()[1:])]
                if (lines := len(path.read_text().splitlines())) >= limit]
    assert not too_long, "Modules over their limit: " + "; ".join(too_long)


def test_no_function_is_over_80_lines_but_a_tabs_layout():
    too_long = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            lines = node.end_lineno - node.lineno + 1
            exempt = path.parent.name == "webapp" and node.name == LAYOUT_FUNCTION
            if lines > FUNCTION_LINES and not exempt:
                too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not too_long, f"Functions over {FUNCTION_LINES} lines: " + "; ".join(too_long)


def readme_tree() -> list[Path]:
    """The paths README.md's "Where things are" names: each line's first column, indented two spaces per folder
    under the folder line above it; "a.py, b/" names two paths."""
    section = (REPO / "README.md").read_text().split("## Where things are", 1)[1].split("```")[1]
    folders, named = [], []
    for line in section.strip("\n").splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        del folders[depth:]
        names = line.strip().split("  ")[0].split(", ")
        named += [REPO.joinpath(*folders, name) for name in names]
        if len(names) == 1 and names[0].endswith("/"):
            folders.append(names[0])
    return named


def test_the_readme_names_every_module_of_the_core_and_the_page_and_only_paths_that_exist():
    named = readme_tree()
    missing = [str(path.relative_to(REPO)) for path in named if not path.exists()]
    assert not missing, f"README names paths that do not exist: {missing}"
    unnamed = [str(path.relative_to(REPO)) for path in python_files()
               if path.name != "__init__.py" and path.resolve() not in {p.resolve() for p in named}]
    assert not unnamed, f"Modules missing from README's 'Where things are': {unnamed}"


def test_the_tests_mirror_the_packages():
    """Each package's tests in a folder of the same path under tests/ (tests/nsynth_core/models/ for
    nsynth_core/models/, ...); at the top only the tests of the whole tree (this one, the GPU check's)."""
    packages = {path.parent.relative_to(REPO) for path in REPO.glob("nsynth_core/**/__init__.py")}
    packages |= {Path("webapp"), Path("train")}
    test_folders = {path.parent.relative_to(REPO / "tests") for path in (REPO / "tests").rglob("test_*.py")}
    assert packages - test_folders == set(), "packages without a test folder"
    assert test_folders - packages == {Path(".")}, "test folders that mirror no package"
    assert {path.name for path in (REPO / "tests").glob("test_*.py")} == {"test_layout.py", "test_gpu_check.py"}


def test_the_readme_is_for_newcomers():
    """What it is, a picture of the page, the two commands, a line per tab; measurements live in docs/."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert pictures and all((REPO / picture).is_file() for picture in pictures)
    assert "pip install -r requirements.txt && python app.py" in readme and "bash scripts/test.sh" in readme
    tabs = re.findall(r'gr\.Tab\("([^"]+)"', "".join(path.read_text() for path in (REPO / "webapp").glob("*.py")))
    tour = readme.split("## A short tour", 1)[1].split("\n## ", 1)[0]
    assert len(tabs) == 6 and all(f"- **{tab}**" in tour for tab in tabs)
    for doc in ("performance", "evaluation", "reliability", "api", "training"):
        assert (REPO / "docs" / f"{doc}.md").is_file() and f"docs/{doc}.md" in readme, doc
