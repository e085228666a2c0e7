"""What verl 0.9.1 adds to a custom reward function's call besides the sample, for both recipes' reward functions.

verl's reward-loop managers call ``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)``
plus these keywords when a reward router runs (verl/experimental/reward_loop/reward_manager/naive.py:58-73; the dapo,
gdpo, limited and remote managers take the same two). A reward function accepts them and ignores them; any other
unknown keyword is a configuration mistake it should name.
"""

VERL_CALL_KWARGS = frozenset({"reward_router_address", "reward_model_tokenizer"})
