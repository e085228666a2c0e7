"""``python -m rlpr.score`` on its embedded default and on a user's jsonl."""

import json

import pytest

from rlpr import score, smoke


@pytest.fixture
def smoke_dir(tmp_path, tiny_model, small_tokenizer):
    """A smoke output folder holding a model where the smoke run keeps its warm-started one (the tiny random model
    stands in: warm-starting takes a minute)."""
    folder = tmp_path / "smoke"
    tiny_model.save_pretrained(smoke.warm_model_dir(folder))
    small_tokenizer.save_pretrained(smoke.warm_model_dir(folder))
    return folder


def test_default_model_is_the_smoke_runs_warm_model(smoke_dir, tiny_model, small_tokenizer, capsys):
    from rlpr import score_response
    from rlpr.data.prompts import build_r1_messages

    assert score.main(["--smoke-dir", str(smoke_dir)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"model: {smoke.warm_model_dir(smoke_dir)}"
    # the printed r of the first response is that model's, computed independently through the public API
    row = score.load_rows(score.sample_path())[0]
    prompt = small_tokenizer.apply_chat_template(build_r1_messages(row["question"], "R1"), add_generation_prompt=True)
    response = small_tokenizer(row["responses"][0], add_special_tokens=False)["input_ids"] + [
        small_tokenizer.eos_token_id
    ]
    expected = score_response(tiny_model, small_tokenizer, prompt["input_ids"], response, row["reference"])
    first = next(line for line in out.splitlines() if line.startswith(row["id"]))
    assert float(first.split()[3]) == pytest.approx(expected, rel=1e-3)


def test_default_model_is_built_when_missing(tmp_path, monkeypatch, tiny_model, small_tokenizer, capsys):
    built = []

    def fake_prepare(out_dir, *args, **kwargs):  # the real one warm-starts for a minute
        built.append(out_dir)
        model_dir = smoke.warm_model_dir(out_dir)
        tiny_model.save_pretrained(model_dir)
        small_tokenizer.save_pretrained(model_dir)
        return None, model_dir, small_tokenizer

    monkeypatch.setattr(smoke, "prepare", fake_prepare)
    assert score.main(["--smoke-dir", str(tmp_path / "fresh")]) == 0
    assert built == [tmp_path / "fresh"]
    assert "building it once" in capsys.readouterr().out
    assert score.main(["--smoke-dir", str(tmp_path / "fresh")]) == 0  # built once: found the second time
    assert built == [tmp_path / "fresh"]


def test_embedded_default_prints_every_response(smoke_dir, capsys):
    assert score.main(["--smoke-dir", str(smoke_dir)]) == 0
    out = capsys.readouterr().out
    rows = score.load_rows(score.sample_path())
    assert len(rows) >= 20
    n_responses = sum(len(r["responses"]) for r in rows)
    table = [line for line in out.splitlines() if line.startswith("sample-")]
    assert len(table) == n_responses
    statuses = {line.split()[2] for line in table}
    assert statuses == {"ok", "no_answer"}  # the sample holds valid and malformed responses
    assert "rlpr/valid_frac" in out and "rlpr/no_answer" in out


def test_user_jsonl_with_chat_prompt(tmp_path, smoke_dir, capsys):
    path = tmp_path / "mine.jsonl"
    row = {"prompt": [{"role": "user", "content": "2+2?"}], "reference": "4",
           "responses": ["<answer>4</answer>", "four"], "id": "mine"}  # fmt: skip
    path.write_text(json.dumps(row) + "\n")
    args = ["--data", str(path), "--format", "R1_nothink", "--method", "geo_mean_prob", "--smoke-dir", str(smoke_dir)]
    assert score.main(args) == 0
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


def test_over_long_responses_are_a_counted_skip_by_default(tmp_path, smoke_dir, small_tokenizer, capsys):
    path = tmp_path / "long.jsonl"
    # a runaway response: far more tokens than the default cap (each " word" is one token of the small tokenizer)
    runaway = "<think>" + " word" * (score.DEFAULT_MAX_SCORING_LENGTH + 100) + "</think><answer>4</answer>"
    assert len(small_tokenizer(runaway, add_special_tokens=False)["input_ids"]) > score.DEFAULT_MAX_SCORING_LENGTH
    row = {"question": "2+2?", "reference": "4", "responses": ["<think>easy</think><answer>4</answer>", runaway],
           "id": "long"}  # fmt: skip
    path.write_text(json.dumps(row) + "\n")
    assert score.main(["--data", str(path), "--smoke-dir", str(smoke_dir)]) == 0
    out = capsys.readouterr().out
    table = [line.split() for line in out.splitlines() if line.startswith("long")]
    assert [(r[2], float(r[3])) for r in table][1] == ("overlength", 0.0) and table[0][2] == "ok"
    assert "rlpr/overlength" in out and "1 response(s) not scored" in out
    assert f"--max-scoring-length={score.DEFAULT_MAX_SCORING_LENGTH}" in out

    # the cap is an option: a small one skips the short response too
    assert score.main(["--data", str(path), "--smoke-dir", str(smoke_dir), "--max-scoring-length", "5"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[2] for line in out.splitlines() if line.startswith("long")] == ["overlength", "overlength"]
    assert "2 response(s) not scored" in out


def test_every_option_has_a_description():
    options = [a for a in score.build_parser()._actions if a.option_strings and a.dest != "help"]
    assert {"--max-scoring-length", "--smoke-dir", "--device"} <= {o for a in options for o in a.option_strings}
    assert [a.option_strings for a in options if not a.help] == []
