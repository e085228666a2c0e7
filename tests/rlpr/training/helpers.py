"""Building rollouts from strings with a real tokenizer, for the RLPR scoring tests."""

from rlpr.training.rollout import make_rollout


def chat_prompt_ids(tokenizer, question: str) -> list[int]:
    return tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)[
        "input_ids"
    ]


def rollout_from_texts(tokenizer, question, responses, references, uids=None, eos=True):
    """Prompt ids from the chat template; each response tokenized on its own (plus eos, as a policy ends it)."""
    prompt = chat_prompt_ids(tokenizer, question)
    if isinstance(references, str):
        references = [references] * len(responses)
    response_ids = [
        tokenizer(r, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if eos else [])
        for r in responses
    ]
    uids = uids or ["q0"] * len(responses)
    return make_rollout([prompt] * len(responses), response_ids, references, uids, tokenizer.pad_token_id)
