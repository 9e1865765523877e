"""Hosting: the Hugging Face Space front matter in README.md, the Dockerfile and docs/hosting.md against the app.

A Space reads README.md's YAML header, installs requirements.txt and runs `python <app_file>` with
GRADIO_SERVER_NAME/GRADIO_SERVER_PORT set; the Dockerfile does the same in its own image. These tests check that
the header is what the Hub parses, that it names this app, a Gradio and a Python the project supports, and that
`python app.py` with no arguments serves on the port and mount point the environment gives.
"""
from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCKERFILE = ROOT / "Dockerfile"
HOSTING_DOC = ROOT / "docs" / "hosting.md"
SPACE_COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}   # the Hub's choices


def front_matter() -> dict:
    text = README.read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with the Space's YAML front matter between --- lines"
    return yaml.safe_load(match.group(1))


def requirement(name: str) -> Requirement:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and Requirement(line).name == name:
            return Requirement(line)
    raise AssertionError(f"requirements.txt does not list {name}")


def pyproject_requires_python() -> SpecifierSet:
    match = re.search(r'^requires-python\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert match
    return SpecifierSet(match.group(1))


def test_front_matter_is_a_gradio_space_config():
    meta = front_matter()
    for key in ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "python_version",
                "license", "short_description"):
        assert meta.get(key), f"front matter lacks {key}"
    assert meta["sdk"] == "gradio"
    assert meta["colorFrom"] in SPACE_COLORS and meta["colorTo"] in SPACE_COLORS
    assert len(meta["short_description"]) <= 60           # the Hub refuses longer ones
    assert len(meta["title"]) <= 30
    assert meta["license"] == re.search(r'^license\s*=\s*"([^"]+)"',
                                        (ROOT / "pyproject.toml").read_text(), re.M).group(1).lower()


def test_the_hub_parses_the_same_header():
    from huggingface_hub import SpaceCard

    card = SpaceCard(README.read_text(encoding="utf-8"))
    meta = front_matter()
    for key in ("title", "sdk", "sdk_version", "app_file", "python_version", "license"):
        assert getattr(card.data, key) == meta[key], key
    assert card.text.lstrip().startswith("# MCD-AVQA")        # the page body is the README as before


def test_sdk_version_is_the_gradio_the_project_pins_and_runs():
    import gradio

    sdk = Version(str(front_matter()["sdk_version"]))
    installed = Version(gradio.__version__)
    assert sdk.major == installed.major == 6
    assert sdk in requirement("gradio").specifier, "requirements.txt must allow the Space's Gradio"
    assert sdk <= installed, f"sdk_version {sdk} is newer than the tested gradio {installed}"


def test_python_version_is_supported_and_matches_the_image():
    version = str(front_matter()["python_version"])
    assert re.fullmatch(r"3\.\d+", version), "quote python_version in YAML (3.10 would read as 3.1)"
    assert Version(version) in pyproject_requires_python()
    assert f"ARG BASE_IMAGE=python:{version}-slim" in DOCKERFILE.read_text()


def test_app_file_defines_the_blocks_through_create_app():
    path = ROOT / front_matter()["app_file"]
    assert path.is_file()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert {"create_app", "main", "parse_args", "launch"} <= functions
    assert any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body), \
        "a Space runs `python app.py`: it needs a __main__ block"


def test_create_app_builds_blocks_with_the_api_events():
    import gradio as gr

    sys.path.insert(0, str(ROOT))
    import app

    if not (app.DEFAULT_CHECKPOINT / "config.json").is_file():
        pytest.skip(f"no shipped checkpoint at {app.DEFAULT_CHECKPOINT}")
    args = app.parse_args([])                 # what a Space and the image run: no arguments
    assert args.host is None and args.port is None, "host/port must come from GRADIO_SERVER_NAME/PORT"
    assert args.checkpoint == app.DEFAULT_CHECKPOINT and args.checkpoint.is_relative_to(ROOT)
    _, demo = app.create_app(args.checkpoint)
    assert isinstance(demo, gr.Blocks)
    names = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert names == {"answer", "predict"}


def test_dockerfile_runs_the_app_as_a_user_on_7860_with_a_health_check():
    text = DOCKERFILE.read_text()
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert re.search(r"^EXPOSE 7860$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*", text, re.M) and "GRADIO_SERVER_PORT" in text.split("HEALTHCHECK", 1)[1]
    assert f'CMD ["python", "{front_matter()["app_file"]}"]' in text
    assert re.search(r"^STOPSIGNAL SIGINT$", text, re.M), "python as PID 1 ignores SIGTERM"
    assert "pip install -r /tmp/requirements.txt" in text and "COPY . /app" in text
    assert "GRADIO_SERVER_NAME=0.0.0.0" in text
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", "data", "runs", "cache", ".git"} <= ignored
    assert not ignored & {"checkpoints", "assets", "mcd", "app.py", "requirements.txt"}, "the image needs these"


def test_hosting_doc_names_every_setting_app_reads():
    source = (ROOT / "app.py").read_text()
    doc = HOSTING_DOC.read_text()
    env = set(re.findall(r'env\.get\("([A-Z_]+)"', source)) | {"GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT",
                                                                "GRADIO_ROOT_PATH"}
    options = set(re.findall(r'add_argument\("(--[a-z-]+)"', source))
    assert len(env) >= 7 and len(options) >= 6
    missing = sorted(name for name in env | options if f"`{name}" not in doc)
    assert not missing, f"docs/hosting.md does not describe {missing}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_python_app_py_serves_where_the_environment_says(tmp_path):
    """`python app.py` as a Space and the image start it: port and mount point from the environment."""
    sys.path.insert(0, str(ROOT))
    import app

    if not (app.DEFAULT_CHECKPOINT / "config.json").is_file():
        pytest.skip(f"no shipped checkpoint at {app.DEFAULT_CHECKPOINT}")
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ROOT_PATH": "/mcd", "GRADIO_ANALYTICS_ENABLED": "False", "MCD_MAX_FILE_MB": "7",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline, info = time.time() + 180, None
        while time.time() < deadline and proc.poll() is None:
            try:   # the image's HEALTHCHECK asks the same URL
                info = httpx.get(f"http://127.0.0.1:{port}/gradio_api/info", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(1)
        assert info is not None and info.status_code == 200, log.read_text()[-3000:]
        assert {"/answer", "/predict"} <= set(info.json()["named_endpoints"])
        config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=10).json()
        assert config["root"].endswith("/mcd"), config["root"]          # links point behind the proxy's prefix
        assert config["max_file_size"] == 7 * 1024 * 1024                # MCD_MAX_FILE_MB reached the server
    finally:
        proc.terminate()
        proc.wait(timeout=30)
