"""rlpr.smoke's command line: the shared smoke command with RLPR's recipe, table and validation-judge keys."""

from cpu_backend import smoke as smoke_module
from rlpr import smoke
from rlpr.main import validation_judge_secrets


def test_the_rlpr_smoke_hands_its_validation_judge_keys_to_the_shared_command(monkeypatch):
    calls = []
    monkeypatch.setattr(smoke_module, "smoke_command", lambda argv, **kw: calls.append((argv, kw)) or 0)
    assert smoke.main(["--backend", "inprocess"]) == 0
    argv, kw = calls[0]
    assert argv == ["--backend", "inprocess"] and kw["secrets"] is validation_judge_secrets
    assert kw["recipe"] == "configs/rlpr/smoke_cpu.yaml" and kw["columns"] is smoke.TABLE
