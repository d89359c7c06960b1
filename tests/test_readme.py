"""The README's "Using it" commands and its Python block run as shown (slow: they train).

The commands run through the installed console script in a scratch folder that holds what a
user would have: a table of their own (`posts.csv` with `caption`, `photo` and `sentiment`
columns, its photos beside it), `photo.jpg`, Flickr getInfo XML in ANP folders, and the MVSO
ANP score table. For speed, the shared MVSA-Single folder is replaced by the embedded sample
(the same layout, 600 posts).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sentimodal.sample import sample_path

README = Path(__file__).resolve().parents[1] / "README.md"
SCRIPT = Path(sys.executable).with_name("sentimodal")
#: real ANPs of the MVSO table, so that their scores label the generated posts
ANPS = [
    "nice_smile",
    "happy_family",
    "beautiful_sunset",
    "infinite_sadness",
    "dead_tree",
    "sad_face",
]


def section(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {name}")
    end = text.find("\n## ", start + 4)
    return text[start : end if end > 0 else None]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def commands(block: str) -> list[str]:
    """Shell lines joined over backslash continuations, comments and blanks dropped."""
    joined = block.replace("\\\n", " ")
    lines = [line.split(" #", 1)[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def user_files(root: Path, shared_data: Path) -> dict[str, str]:
    """What the README's placeholders stand for, made in ``root``."""
    examples = pd.read_csv(sample_path() / "labelResultAll.txt", sep="\t")
    examples.columns = ["id", "labels"]
    labels = examples["labels"].str.split(",").str[0]
    rows = []
    (root / "photos").mkdir()
    data = sample_path() / "data"
    for post_id, label in list(zip(examples["id"], labels, strict=True))[:90]:
        shutil.copy(data / f"{post_id}.jpg", root / "photos" / f"{post_id}.jpg")
        text = (data / f"{post_id}.txt").read_text(encoding="utf-8", errors="replace").strip()
        rows.append({"caption": text, "photo": f"photos/{post_id}.jpg", "sentiment": label})
    pd.DataFrame(rows).to_csv(root / "posts.csv", index=False)
    shutil.copy(root / rows[0]["photo"], root / "photo.jpg")
    flickr = root / "flickr"
    serial = 0
    for anp in ANPS:
        (flickr / anp).mkdir(parents=True)
        for n in range(4):
            serial += 1
            words = anp.replace("_", " ")
            (flickr / anp / f"{serial}.xml").write_text(
                f'<rsp stat="ok"><photo id="{1000 + serial}" secret="ab12" server="7" farm="1">'
                f"<title>{words} {n}</title><description>a photo of my {words} today</description>"
                f'<tags><tag raw="{words}">{anp}</tag></tags></photo></rsp>\n',
                encoding="utf-8",
            )
    return {
        "../shared/data/mvsa_single": str(sample_path()),
        "FLICKR_XML_ROOT": str(flickr),
        "mvso_english_anp_sentiment.csv": str(
            shared_data / "ontologies" / "mvso_english_anp_sentiment.csv"
        ),
    }


def substitute(text: str, places: dict[str, str]) -> str:
    for placeholder, value in places.items():
        text = text.replace(placeholder, value)
    return text


@pytest.mark.slow
def test_readme_commands_and_python_run_as_shown(tmp_path: Path, shared_data: Path) -> None:
    places = user_files(tmp_path, shared_data)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    using = section("Using it")
    (bash,) = blocks(using, "bash")
    for command in commands(bash):
        args = shlex.split(substitute(command, places))
        assert args[0] == "sentimodal", command
        done = subprocess.run(
            [str(SCRIPT), *args[1:], *(["-q"] if "--quiet" in _help(args, env) else [])],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    (python,) = blocks(using, "python")
    script = tmp_path / "readme_example.py"
    script.write_text(substitute(python, places), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _help(args: list[str], env: dict[str, str]) -> str:
    """The command's help, to quieten its progress bars in the test log when it can."""
    command = [a for a in args[1:2] if not a.startswith("-")]
    done = subprocess.run(
        [str(SCRIPT), *command, "--help"], env=env, capture_output=True, text=True, timeout=120
    )
    return done.stdout
