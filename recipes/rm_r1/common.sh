# Shared by the RM-R1 launchers in this folder (sourced, not run): RM-R1's settings for recipes/_launch.sh, plus
# VERDICT_RULE for GRPO. Each launcher sets LAUNCH_CONFIG and LAUNCH_ABOUT, sources this file and calls launch "$@";
# a stage-1 (SFT) config runs under torchrun, one launcher per node.
LAUNCH_ENTRY=rm_r1.main
LAUNCH_FOLDER=rm_r1
if [[ "$LAUNCH_CONFIG" == sft_* ]]; then
    LAUNCH_TORCHRUN=1
    LAUNCH_MODEL_KEY=model.path
    LAUNCH_EXTRA_HELP="  NODE_RANK        this node's rank (several nodes)             [0]
  MASTER_ADDR      node 0's address (several nodes)             [127.0.0.1]
  MASTER_PORT      rendezvous port                              [29500]
The launcher links the last checkpoint's HuggingFace copy to OUTPUT_DIR/final_hf (stage 2 starts from it)."
else
    LAUNCH_MODEL_KEY=actor_rollout_ref.model.path
    LAUNCH_EXTRA_HELP="  VERDICT_RULE     reward.custom_reward_function.reward_kwargs.verdict_rule: strict_tail | last_answer | anywhere"
    launch_extra_overrides() {
        [ -n "${VERDICT_RULE:-}" ] && LAUNCH_OVERRIDES+=("reward.custom_reward_function.reward_kwargs.verdict_rule=$VERDICT_RULE")
        return 0
    }
fi

# shellcheck source=recipes/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/../_launch.sh"
