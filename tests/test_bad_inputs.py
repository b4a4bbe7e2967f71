"""The bad-input corpus (tests/corpus, made by build_corpus.py): every case gets our own error
with its documented exit code and a message that says what is wrong, never a traceback, and
leaves no file behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from snnc.cli import main

CORPUS = Path(__file__).resolve().parent / "corpus"
CASES = json.loads((CORPUS / "manifest.json").read_text())


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({c["case"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_bad_input_gets_a_clear_error(case: dict, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture) -> None:
    work = tmp_path / "corpus"
    shutil.copytree(CORPUS, work)
    monkeypatch.chdir(work)
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    code = main(case["args"])
    expected = case["exit"] if isinstance(case["exit"], list) else [case["exit"]]
    err = capsys.readouterr().err
    assert code in expected, err
    assert err.startswith("snnc: error: ")
    assert case["says"] in err
    assert "Traceback" not in err
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before
