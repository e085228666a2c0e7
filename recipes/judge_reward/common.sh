# Shared by the judge-as-reward launchers in this folder (sourced, not run): their settings for recipes/_launch.sh,
# plus JUDGE_URL / JUDGE_MODEL (the external judge server) and JUDGE_PATH (the judge verl serves). Each launcher sets
# LAUNCH_CONFIG and LAUNCH_ABOUT, sources this file and calls launch "$@".
LAUNCH_ENTRY=rm_r1.judge_main
LAUNCH_FOLDER=judge_reward
LAUNCH_MODEL_KEY=actor_rollout_ref.model.path
LAUNCH_EXTRA_HELP="  JUDGE_PATH       reward.reward_model.model_path (the judge verl serves)
  JUDGE_URL        reward.custom_reward_function.reward_kwargs.base_url (an external judge server, .../v1)
  JUDGE_MODEL      reward.custom_reward_function.reward_kwargs.model (the name the server serves the judge under)
  JUDGE_MODE       reward.custom_reward_function.reward_kwargs.mode: pairwise | pointwise"
launch_extra_overrides() {
    local kwargs=reward.custom_reward_function.reward_kwargs
    [ -n "${JUDGE_PATH:-}" ] && LAUNCH_OVERRIDES+=("reward.reward_model.model_path=$JUDGE_PATH")
    [ -n "${JUDGE_URL:-}" ] && LAUNCH_OVERRIDES+=("$kwargs.base_url=$JUDGE_URL")
    [ -n "${JUDGE_MODEL:-}" ] && LAUNCH_OVERRIDES+=("$kwargs.model=$JUDGE_MODEL")
    [ -n "${JUDGE_MODE:-}" ] && LAUNCH_OVERRIDES+=("$kwargs.mode=$JUDGE_MODE")
    return 0
}

# shellcheck source=recipes/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/../_launch.sh"
