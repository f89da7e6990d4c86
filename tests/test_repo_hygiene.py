"""Checks on committed files: clean notebooks, Binder config, README and CI agree."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED_NOTEBOOKS = {
    "quickstart.ipynb",
    "widget_form.ipynb",
    "analyze_video_sets.ipynb",
}

# Strings that look like credentials: a bearer header with a literal token, a key
# variable assigned a literal, or a long run of letters and digits. Percent-encoded
# URL keys and UUIDs break into short runs at their '%' and '-' characters.
KEY_PATTERNS = [
    re.compile(r"Bearer\s+[A-Za-z0-9_\-\.]{8,}"),
    re.compile(r"OPENNOTE_API_KEY['\"]?\s*[\]=:]\s*['\"][^'\"]+['\"]"),
    re.compile(r"api_key\s*=\s*['\"][^'\"]+['\"]"),
    re.compile(
        r"(?<![A-Za-z0-9])(?=[A-Za-z0-9_]*\d)(?=[A-Za-z0-9_]*[A-Za-z])[A-Za-z0-9_]{32,}"
    ),
]


def load_pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


def requirement_lines(path: Path) -> list[Requirement]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        Requirement(line.split("#", 1)[0].strip())
        for line in lines
        if line.split("#", 1)[0].strip()
    ]


def test_expected_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    missing = EXPECTED_NOTEBOOKS - names
    assert not missing, f"notebooks/ lacks {sorted(missing)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name} cell {index} has outputs"
        assert cell.get("execution_count") is None, (
            f"{path.name} cell {index} has an execution count"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_widget_state(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert "widgets" not in notebook.get("metadata", {}), (
        f"{path.name} stores widget state: clear it before committing"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_key(path):
    text = path.read_text(encoding="utf-8")
    for pattern in KEY_PATTERNS:
        match = pattern.search(text)
        assert match is None, f"{path.name} has a key-like string near {match.start()}"


def test_key_patterns_catch_keys():
    samples = [
        'OPENNOTE_API_KEY = "abc"',
        "headers = {'Authorization': 'Bearer sk_live_0123456789'}",
        'client = OpennoteClient(api_key="secret")',
        "token q8Xk2mP9vL4nR7tY1wZ3bC6dF0gH5jK8",
    ]
    for sample in samples:
        assert any(p.search(sample) for p in KEY_PATTERNS), sample


def test_key_patterns_pass_video_urls():
    url = (
        "https://videofs-opennote-us-east-1.s3.us-east-1.amazonaws.com/"
        "2025-07-26T04%3A01%3A21.161753-8159b304-0462-4273-a89d-8bc9bdde926b"
        "--%2522Multi-Modal%2520AI%2520for%2520Enhanced%2520Wildfire%2522.mp4"
    )
    assert not any(p.search(url) for p in KEY_PATTERNS)


def test_binder_lists_core_and_local_dependencies():
    project = load_pyproject()["project"]
    wanted = [
        Requirement(spec)
        for spec in [
            *project["dependencies"],
            *project["optional-dependencies"]["local"],
        ]
    ]
    listed = {
        req.name.lower(): req
        for req in requirement_lines(ROOT / "binder" / "requirements.txt")
    }
    for req in wanted:
        assert req.name.lower() in listed, f"binder/requirements.txt lacks {req.name}"
        assert listed[req.name.lower()].specifier == req.specifier, (
            f"binder/requirements.txt pins {listed[req.name.lower()]}, "
            f"pyproject.toml says {req}"
        )


def test_binder_specifiers_match_notebook_extra():
    extra = load_pyproject()["project"]["optional-dependencies"]["notebook"]
    by_name = {Requirement(spec).name.lower(): Requirement(spec) for spec in extra}
    listed = requirement_lines(ROOT / "binder" / "requirements.txt")
    names = {req.name.lower() for req in listed}
    assert "jupyter-server-proxy" in names, (
        "binder/requirements.txt lacks jupyter-server-proxy, so loopback videos "
        "cannot reach the browser"
    )
    for req in listed:
        if req.name.lower() in by_name:
            assert req.specifier == by_name[req.name.lower()].specifier, str(req)


def test_binder_post_build_installs_local_extra():
    post_build = ROOT / "binder" / "postBuild"
    text = post_build.read_text(encoding="utf-8")
    assert text.startswith("#!"), "binder/postBuild needs a shebang line"
    commands = [
        shlex.split(line)
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    installs = [c for c in commands if "pip" in c and "install" in c]
    assert installs, "binder/postBuild runs no pip install"
    assert any(".[local]" in c for c in installs), (
        "binder/postBuild must install the package with the local extra: .[local]"
    )


def test_binder_post_build_is_executable():
    mode = subprocess.run(
        ["git", "ls-files", "-s", "binder/postBuild"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if not mode:
        assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111
    else:
        assert mode[0] == "100755", "binder/postBuild must be committed executable"


def test_binder_runtime_meets_requires_python():
    runtime = (ROOT / "binder" / "runtime.txt").read_text(encoding="utf-8").strip()
    match = re.fullmatch(r"python-(\d+)\.(\d+)", runtime)
    assert match, f"binder/runtime.txt should read python-X.Y, got {runtime!r}"
    requires = load_pyproject()["project"]["requires-python"]
    version = f"{match.group(1)}.{match.group(2)}"
    assert Requirement(f"python{requires}").specifier.contains(version)


def readme_shell_lines() -> list[str]:
    """Return the lines of the README's fenced ``bash`` blocks, in order."""
    lines = []
    language = None
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            language = None if language is not None else (line[3:].strip() or "")
            continue
        if language == "bash":
            lines.append(line.strip())
    return lines


def readme_test_command() -> str:
    tests = [line for line in readme_shell_lines() if "pytest" in line]
    assert tests, "README.md shows no pytest command"
    return tests[0]


def test_ci_runs_readme_test_command():
    command = readme_test_command()
    # .ci/run may append "|| status=$?" to keep the exit code under set -e.
    ci_lines = [
        line.split(" || ")[0].strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    ]
    assert command in ci_lines, f".ci/run does not run the README's command {command!r}"


def test_readme_quickstart_command_runs_the_runner():
    first = readme_shell_lines()[0]
    assert first.startswith("python3 -m venv .venv && "), first
    assert "pip install -e '.[local,notebook]'" in first
    assert first.endswith(".venv/bin/python -m opennote_jupyter.quickstart"), first


def test_readme_screenshot_is_committed():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", readme)
    assert images, "README.md shows no screenshot"
    for image in images:
        assert (ROOT / image).is_file(), f"README.md shows {image}, which is missing"


def test_readme_lists_every_magic_option():
    from opennote_jupyter.notebook.magics import OpennoteMagics

    parser = OpennoteMagics.opennote_video.parser
    options = [
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    ]
    assert options, "the magic's parser has no options"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table_rows = [line for line in readme.splitlines() if line.startswith("| `--")]
    for option in options:
        assert any(f"`{option}" in row for row in table_rows), (
            f"README.md's option table of %%opennote_video lacks {option}"
        )
