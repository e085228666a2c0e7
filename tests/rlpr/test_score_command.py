"""``python -m rlpr.score`` on its embedded default and on a user's jsonl."""

import json

import pytest

from rlpr import score


def test_embedded_default_prints_every_response(capsys):
    assert score.main([]) == 0
    out = capsys.readouterr().out
    rows = score.load_rows(score.sample_path())
    assert len(rows) >= 20
    n_responses = sum(len(r["responses"]) for r in rows)
    table = [line for line in out.splitlines() if line.startswith("sample-")]
    assert len(table) == n_responses
    statuses = {line.split()[2] for line in table}
    assert statuses == {"ok", "no_answer"}  # the sample holds valid and malformed responses
    assert "rlpr/valid_frac" in out and "rlpr/no_answer" in out


def test_user_jsonl_with_chat_prompt(tmp_path, capsys):
    path = tmp_path / "mine.jsonl"
    row = {"prompt": [{"role": "user", "content": "2+2?"}], "reference": "4",
           "responses": ["<answer>4</answer>", "four"], "id": "mine"}  # fmt: skip
    path.write_text(json.dumps(row) + "\n")
    assert score.main(["--data", str(path), "--format", "R1_nothink", "--method", "geo_mean_prob"]) == 0
    out = capsys.readouterr().out
    statuses = [line.split()[2] for line in out.splitlines() if line.startswith("mine")]
    assert statuses == ["ok", "no_answer"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", ":1: not valid JSON"),
        (json.dumps({"question": "q", "reference": 4, "responses": ["a"]}), "'reference' must be a str"),
        (json.dumps({"question": "q", "reference": "4", "responses": []}), "'responses'"),
        (json.dumps({"reference": "4", "responses": ["a"]}), "'question'"),
    ],
)
def test_bad_rows_are_named(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        score.load_rows(path)
