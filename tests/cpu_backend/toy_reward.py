"""A toy rule reward loaded through ``reward.custom_reward_function`` (verl's compute_score signature)."""


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """1 when the response text contains the reference answer; also reports the response length."""
    return {"score": float(ground_truth in solution_str), "length": float(len(solution_str))}


async def where_am_i(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """An async reward that reports whether verl called it on the main thread and inside a running event loop."""
    import asyncio
    import threading

    asyncio.get_running_loop()  # raises outside a loop
    return {"score": 0.0, "main_thread": float(threading.current_thread() is threading.main_thread())}
