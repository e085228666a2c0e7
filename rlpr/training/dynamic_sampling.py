"""Dynamic sampling: which prompt groups train this step, which wait for a later step, which are dropped.

A step generates rounds of prompt groups until ``target`` groups (``data.train_batch_size``) have passed the std
filter, or until the round cap or the end of the data. Given the filter's decision for every group of the step so far,
in round order (within a round, in the order the groups were generated):

* the first ``target`` groups that passed train this step;
* groups that passed beyond those go to the overflow cache: their prompts are generated again in a later step (the
  reference implementation's behaviour);
* a step that ended short of ``target`` trains on whole mini-batches only (verl's actor update splits the batch into
  mini-batches of ``ppo_mini_batch_size`` prompts): the last ``len(passed) % mini_batch`` passed groups are trimmed.

The trainer calls ``select_groups`` after every round with all decisions so far: ``kept + trimmed`` are then the
groups taken so far, and the last call's ``trimmed`` is what the step drops.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GroupSelection:
    """The groups of one step, each list in round order."""

    kept: list[Hashable]  # train this step
    overflow: list[Hashable]  # passed the filter beyond the target: generated again in a later step
    trimmed: list[Hashable]  # passed the filter, dropped so that a short step trains on whole mini-batches

    @property
    def taken(self) -> int:
        """Groups that passed the filter within the target (kept and trimmed)."""
        return len(self.kept) + len(self.trimmed)


def select_groups(decisions: Sequence[tuple[Hashable, bool]], target: int, mini_batch: int) -> GroupSelection:
    """Split the step's groups into kept, overflow and trimmed (module doc).

    ``decisions``: (group id, passed the filter) for every group of the step so far, in round order; ``target``: the
    prompts per step; ``mini_batch``: the prompts per actor mini-batch.
    """
    if target < 1 or mini_batch < 1:
        raise ValueError(f"target and mini_batch must be >= 1, got {target} and {mini_batch}")
    uids = [uid for uid, _ in decisions]
    if len(set(uids)) != len(uids):
        raise ValueError(f"group ids repeat within a step: {[u for u in dict.fromkeys(uids) if uids.count(u) > 1]}")
    passed = [uid for uid, ok in decisions if ok]
    taken, overflow = passed[:target], passed[target:]
    if len(taken) == target:
        return GroupSelection(kept=taken, overflow=overflow, trimmed=[])
    usable = len(taken) // mini_batch * mini_batch
    return GroupSelection(kept=taken[:usable], overflow=[], trimmed=taken[usable:])
