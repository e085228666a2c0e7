"""Avg@k through the real trainer loop on the CPU backend: verl's own _validate over a `_Avg2` file generates two
samples per question and reports mean@2 / avg@2 (issue 19, item 3); a repeated `_Avg2` file stops the trainer."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from rlpr import smoke


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("rlpr-val-avg")
    smoke.prepare(path)
    return path


def _val_file(path, rows):
    pd.DataFrame(rows).to_parquet(path)
    return path


@pytest.mark.slow
def test_validation_samples_two_per_question_of_an_avg2_file(work_dir, tmp_path):
    rows = [{**row, "data_source": "MATH-500"} for row in smoke.sample_training_rows()[:3]]
    val = _val_file(tmp_path / "math_avg2.parquet", rows)
    trainer = smoke.build_trainer(
        work_dir,
        [f"data.val_files={val}", f"trainer.default_local_dir={tmp_path / 'ckpt'}", "trainer.total_training_steps=1",
         "trainer.val_before_train=true", "trainer.test_freq=-1", "trainer.save_freq=-1"],
    )  # fmt: skip
    assert len(trainer.val_dataset) == 6
    logged = []
    import verl.utils.tracking as tracking

    original = tracking.Tracking.log

    def capture(self, data, step, *args, **kwargs):
        logged.append((step, dict(data)))
        return original(self, data, step, *args, **kwargs)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tracking.Tracking.log = capture
    try:
        trainer.fit()
    finally:
        tracking.Tracking.log = original
        torch.set_num_threads(threads)
    first = next(data for step, data in logged if any(k.startswith("val/") for k in data))
    assert "val/MATH-500/avg@2" in first and "val-core/MATH-500/acc/mean@2" in first
    assert first["val/MATH-500/avg@2"] == pytest.approx(first["val-core/MATH-500/acc/mean@2"], abs=1e-12)


@pytest.mark.slow
def test_a_repeated_avg2_file_stops_the_trainer(work_dir, tmp_path):
    row = smoke.sample_training_rows()[0]
    val = _val_file(tmp_path / "MATH-500_Avg2.parquet", [row, row])
    with pytest.raises(ValueError, match="look repeated already"):
        smoke.build_trainer(work_dir, [f"data.val_files={val}", f"trainer.default_local_dir={tmp_path / 'c'}"])
