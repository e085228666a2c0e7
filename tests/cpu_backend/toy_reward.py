"""A toy rule reward loaded through ``reward.custom_reward_function`` (verl's compute_score signature)."""


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """1 when the response text contains the reference answer; also reports the response length."""
    return {"score": float(ground_truth in solution_str), "length": float(len(solution_str))}
