"""Shared fixtures: the real Qwen2.5 tokenizer rebuilt offline, a cut-vocabulary variant, and a tiny random model."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def qwen_tokenizer():
    """The full Qwen2.5 tokenizer (151,643 BPE ranks + 22 added tokens), loaded through AutoTokenizer."""
    from offline_models import load_qwen25_tokenizer

    return load_qwen25_tokenizer()


@pytest.fixture(scope="session")
def small_tokenizer():
    """Qwen2.5's tokenizer cut to its first 8,192 ranks (added tokens right after): same rules, small vocabulary."""
    from offline_models import SMALL_VOCAB, load_qwen25_tokenizer

    return load_qwen25_tokenizer(SMALL_VOCAB)


@pytest.fixture(scope="session")
def tiny_model(small_tokenizer, tmp_path_factory):
    """A random 2-layer Qwen2ForCausalLM over the small tokenizer, saved and reloaded via AutoModelForCausalLM."""
    from offline_models import load_tiny_qwen2

    return load_tiny_qwen2(small_tokenizer, tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture
def restore_threads():
    """The smoke commands set torch to one thread (right for a tiny model on 2 cores); restore it afterwards."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
