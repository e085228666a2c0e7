"""Config checks and path resolution shared by the entry points (``rlpr.main``, ``rm_r1.main``) and the config tests.

A YAML typo composes silently in Hydra (only command-line overrides of unknown keys are rejected), and verl reads most
sections only inside its GPU workers, so the entry points check the composed config BEFORE Ray starts or any data is
read:

1. every key exists in verl's own config composed with the same defaults-list choices, except a recipe's own sections
   (checked against their own schema, e.g. ``rlpr:``) and free-form fields (an empty dict or ``null`` in verl's
   default, e.g. ``engine_kwargs.vllm``, and ``FREE_FORM_KEYS``); an unknown key is named with the nearest valid key;
2. a value where verl's default is a float or a boolean has that type (``optim.lr=abc`` is named, not a crash);
3. no legacy reward key (verl 0.9.1 ignores them unless migrated);
4. verl's ``validate_config`` passes (PPO configs), and every ``_target_`` section builds with
   ``omega_conf_to_dataclass`` (sections holding a model config are skipped: they need the model's files).

Ray ships no code and workers run in other folders and on other nodes, so ``resolve_paths`` turns the config's paths
into absolute ones (``~`` and ``$VARIABLES`` expanded, relative paths taken from the folder the command runs in).
"""

from __future__ import annotations

import difflib
import importlib
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import yaml
from omegaconf import DictConfig, ListConfig, Node, OmegaConf

# Free-form although verl's default lists a few keys, or absent from verl's YAML and read with .get(...):
# ray_init is passed as ray.init(**ray_init) (verl/trainer/main_ppo.py: run_ppo); reward_kwargs is read by
# verl/trainer/ppo/reward.py: get_custom_reward_fn.
FREE_FORM_KEYS = frozenset({"ray_kwargs.ray_init", "reward.custom_reward_function.reward_kwargs"})
# Needs the model's files (and the network for a hub id); never built by the checks.
NEEDS_MODEL_FILES = frozenset({"verl.workers.config.HFModelConfig"})
# Files and folders: always made absolute. Model paths: made absolute only when they exist here (else a hub id).
PATH_KEYS = (
    "data.train_files",
    "data.val_files",
    "trainer.default_local_dir",
    "trainer.resume_from_path",
    "trainer.validation_data_dir",
    "trainer.rollout_data_dir",
)
MODEL_PATH_KEYS = ("actor_rollout_ref.model.path", "model.path")


class ConfigError(ValueError):
    """A config the entry point refuses before anything starts; the message lists every problem found."""


def _verl_config_dir() -> Path:
    import verl.trainer.config as verl_config

    return Path(verl_config.__file__).parent


def ppo_bases() -> set[str]:
    return {p.stem for p in _verl_config_dir().glob("ppo_*trainer.yaml")}


def sft_bases() -> set[str]:
    return {p.stem for p in _verl_config_dir().glob("sft_trainer*.yaml")}


def legacy_reward_sections() -> list[str]:
    """Top-level sections of verl's legacy reward config (read only after ``migrate_legacy_reward_impl``)."""
    return sorted(yaml.safe_load((_verl_config_dir() / "legacy_reward_impl.yaml").read_text()))


def defaults_names(raw: DictConfig) -> list[str]:
    """The config names of a raw YAML's defaults list (``_self_`` included)."""
    names = []
    for entry in raw.get("defaults", []) or []:
        if isinstance(entry, str):
            names.append(entry)
        elif isinstance(entry, DictConfig) and len(entry) == 1:
            names.append(str(next(iter(entry.values()))))
    return names


def verl_base(path: Path) -> str:
    """The verl config a recipe file builds on, from its defaults list (following sibling recipes it lists)."""
    raw = OmegaConf.load(path)
    for name in defaults_names(raw):
        if name in ppo_bases() | sft_bases():
            return name
        sibling = path.parent / f"{name}.yaml"
        if sibling.exists() and sibling != path:
            return verl_base(sibling)
    raise ConfigError(
        f"{path}: its defaults list {defaults_names(raw)} names none of verl's trainer configs "
        f"{sorted(ppo_bases() | sft_bases())} (nor a sibling recipe that does)"
    )


def verl_reference(base: str, choices: Mapping[str, str | None] = {}) -> DictConfig:  # noqa: B006 (read only)
    """verl's ``base`` config composed with the same top-level group choices (``model_engine=dp`` ...) as a recipe.

    ``choices`` is Hydra's ``hydra.runtime.choices`` of the recipe; only plain group names are passed on (nested
    choices such as ``actor@actor_rollout_ref.actor`` follow from them).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [
        f"{group}={choice}"
        for group, choice in choices.items()
        if choice is not None and "@" not in group and "/" not in group and group != "hydra"
    ]
    global_hydra = GlobalHydra.instance()
    saved = global_hydra.hydra  # inside @hydra.main: compose in a fresh context, then give the old one back
    global_hydra.clear()
    try:
        with initialize_config_dir(config_dir=str(_verl_config_dir()), version_base=None):
            return compose(config_name=base, overrides=overrides)
    finally:
        if saved is not None:
            global_hydra.clear()
            global_hydra.initialize(saved)


def _default(reference: DictConfig, key: object) -> Node:
    """``reference``'s node at ``key``, with an interpolation replaced by the node it resolves to in ``reference``.

    verl's config holds interpolations where the resolved config holds sections (e.g. ``rollout.mtp`` is
    ``${oc.select:actor_rollout_ref.model.mtp, null}``): the checks must give one answer whether the config they check
    was resolved (verl's task runner resolves it, main_ppo_v0.py:168) or not (the entry points, before Ray).
    """
    node = reference._get_node(key)
    if node._is_interpolation():
        try:
            resolved = node._dereference_node()
        except Exception:  # an interpolation verl's own default cannot resolve: compare with it unresolved
            return node
        if resolved is not None:
            return resolved
    return node


def _dataclass_fields(section: DictConfig) -> list[str]:
    """The field names of the dataclass a ``_target_`` section builds (verl's YAML omits some, e.g.
    ``rollout.enable_sleep_mode``, verl/workers/config/rollout.py:268, which ``omega_conf_to_dataclass`` accepts).
    A field typed as a free-form value (``dict``, ``Any``) takes any keys below it."""
    import dataclasses

    target = section.get("_target_") if "_target_" in section.keys() else None
    if not isinstance(target, str):
        return []
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return []
    return (
        [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")] if dataclasses.is_dataclass(cls) else []
    )


def _nearest(key: str, candidates: Sequence[str], prefix: str) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=1)
    return f"; did you mean {prefix}{close[0]}?" if close else ""


def unknown_keys(
    config: DictConfig, reference: DictConfig, prefix: str = "", own_sections: Mapping[str, DictConfig | None] = {}
) -> list[str]:  # noqa: B006 (read only)
    """Key paths of ``config`` that ``reference`` does not have, each with the nearest valid key.

    ``own_sections``: top-level sections that are not verl's, each with the schema its keys are checked against
    (``None``: free-form). An empty dict or ``null`` in the reference is a free-form field.
    """
    problems = []
    for key in config:
        path = f"{prefix}{key}"
        if path in FREE_FORM_KEYS or (not prefix and key in ("defaults", "hydra")):
            continue
        if not prefix and key in own_sections:
            schema = own_sections[key]
            child = config._get_node(key)
            if schema is not None and isinstance(child, DictConfig):
                problems += unknown_keys(child, schema, f"{key}.")
            continue
        if key not in reference.keys():  # `in` alone treats a mandatory (???) value as absent
            fields = _dataclass_fields(reference)
            if str(key) in fields:  # a field of the section's dataclass that verl's YAML leaves out
                continue
            candidates = [str(k) for k in reference] + list(fields)
            problems.append(f"{path} (unknown key{_nearest(str(key), candidates, prefix)})")
            continue
        value, default = config._get_node(key), _default(reference, key)
        if isinstance(value, DictConfig) and not value._is_none():
            if isinstance(default, DictConfig) and not default._is_none():
                if len(default) > 0:  # an empty dict in the default is a free-form field
                    problems += unknown_keys(value, default, f"{path}.")
            elif not default._is_none():  # null in the default: an optional free-form value
                problems.append(f"{path} (a section here, but a single value in verl's config: {default._value()!r})")
    return problems


def _kind(value: object) -> str | None:
    # Integer defaults are not checked: some take a word too (the SFT trainer's test_freq: after_each_epoch).
    if isinstance(value, bool):
        return "a boolean (true/false)"
    if isinstance(value, int | float):
        return "a number"
    return None


def _expected(default: object) -> str | None:
    return None if isinstance(default, int) and not isinstance(default, bool) else _kind(default)


def wrong_types(config: DictConfig, reference: DictConfig, prefix: str = "") -> list[str]:
    """Values that are not numbers (booleans) where ``reference`` holds a float (boolean), e.g. ``lr=abc``."""
    problems = []
    for key in config:
        if key not in reference.keys():
            continue
        node, default = config._get_node(key), _default(reference, key)
        if isinstance(node, DictConfig) and isinstance(default, DictConfig):
            if not node._is_none() and not default._is_none():
                problems += wrong_types(node, default, f"{prefix}{key}.")
            continue
        if isinstance(node, DictConfig | ListConfig) or node._is_none() or node._is_interpolation():
            continue
        if isinstance(default, DictConfig | ListConfig) or default._is_none() or default._is_interpolation():
            continue
        expected, value = _expected(default._value()), node._value()
        if (
            expected is not None
            and _kind(value) != expected
            and not (expected == "a number" and _kind(value) is None and _is_number_text(value))
        ):
            problems.append(f"{prefix}{key}={value!r} (expected {expected}, like verl's default {default._value()!r})")
    return problems


def _is_number_text(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def legacy_keys(config: DictConfig) -> list[str]:
    """Set leaves of verl's legacy reward sections (ignored by verl 0.9.1 unless migrated)."""

    def leaves(node: DictConfig, prefix: str) -> Iterator[str]:
        for key in node:
            child = node._get_node(key)
            if isinstance(child, DictConfig):
                yield from leaves(child, f"{prefix}{key}.")
            elif not child._is_none():
                yield f"{prefix}{key}"

    return [
        key
        for section in legacy_reward_sections()
        if section in config
        for key in leaves(config[section], f"{section}.")
    ]


def _target_nodes(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, DictConfig]]:
    if "_target_" in node:
        yield prefix.rstrip("."), node
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none():
            yield from _target_nodes(child, f"{prefix}{key}.")


def _build_error(node: DictConfig | None) -> str | None:
    from verl.utils.config import omega_conf_to_dataclass

    if node is None:
        return "absent"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            omega_conf_to_dataclass(node)
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return None


def section_problems(config: DictConfig, reference: DictConfig | None, prefix: str = "") -> list[str]:
    """Build the outermost ``_target_`` sections of ``config`` (building one builds its sub-sections).

    A section that does not build is a problem unless verl's own default fails the same way (e.g. a mandatory ``???``
    the recipe does not use); then its sub-sections are tried instead. Sections holding a model config are skipped.
    """
    if "_target_" in config and not any(n._target_ in NEEDS_MODEL_FILES for _, n in _target_nodes(config)):
        error = _build_error(config)
        if error is None:
            return []
        if error != _build_error(reference):
            return [f"section {prefix.rstrip('.')} ({config._target_}) does not build: {error}"]
    problems = []
    for key in config:
        child = config._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none():
            ref_child = reference._get_node(key) if reference is not None and key in reference.keys() else None
            problems += section_problems(
                child, ref_child if isinstance(ref_child, DictConfig) else None, f"{prefix}{key}."
            )
    return problems


def config_problems(
    config: DictConfig,
    base: str,
    choices: Mapping[str, str | None] = {},  # noqa: B006 (read only)
    own_sections: Mapping[str, DictConfig | None] = {},  # noqa: B006 (read only)
) -> list[str]:
    """Every problem of checks 1-4 (module doc) in a composed ``config`` built on verl's ``base`` config."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    reference = verl_reference(base, choices)
    problems = unknown_keys(config, reference, own_sections=own_sections)
    problems += wrong_types(config, reference)
    legacy = legacy_keys(config)
    if legacy:
        problems.append(f"legacy reward keys {legacy} are ignored by verl 0.9.1; set the reward.* keys instead")
    if problems:  # the checks below would only fail again, less readably, on the same mistakes
        return problems
    if base in ppo_bases():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # need_critic warns that GRPO runs without a critic
            try:
                validate_config(
                    config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
                )
            except Exception as err:  # verl raises assertions, ValueErrors and Hydra's InstantiationException
                return [f"verl's validate_config: {err}"]
    return section_problems(config, reference)


def check(
    config: DictConfig,
    base: str,
    choices: Mapping[str, str | None] = {},  # noqa: B006 (read only)
    own_sections: Mapping[str, DictConfig | None] = {},  # noqa: B006 (read only)
    source: str = "the config",
) -> None:
    """Raise ``ConfigError`` listing every problem ``config_problems`` finds."""
    problems = config_problems(config, base, choices, own_sections)
    if problems:
        raise ConfigError(f"{source} has {len(problems)} problem(s):\n  " + "\n  ".join(problems))


def _absolute(value: str) -> str:
    return os.path.abspath(os.path.expanduser(os.path.expandvars(value)))


def resolve_paths(config: DictConfig) -> list[str]:
    """Make the config's file and folder paths absolute, in place (``~``, ``$VARIABLES``, the current folder).

    Ray ships no code or files (``working_dir`` is never set by verl's ``run_ppo``, verl/trainer/main_ppo.py), and the
    task runner and reward workers may run in another folder or on another node, so a relative path would name
    different files there. Model paths are changed only when they exist here (otherwise they are hub ids). Returns the
    keys that changed.
    """
    changed = []
    for key in (*PATH_KEYS, *MODEL_PATH_KEYS):
        value = OmegaConf.select(config, key, default=None)
        if value is None:
            continue
        if isinstance(value, ListConfig):
            new = [_absolute(str(v)) for v in value]
        else:
            new = _absolute(str(value))
            if key in MODEL_PATH_KEYS and not os.path.exists(new):
                continue
        if new != (list(value) if isinstance(value, ListConfig) else value):
            OmegaConf.update(config, key, new, merge=False)
            changed.append(key)
    return changed


def nearest_recipe(name: str, names: Sequence[str]) -> str:
    """An error message for an unknown recipe name, with the nearest known one."""
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.4)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown recipe {name!r}{hint} The recipes: {', '.join(names)}."


def config_path_given(argv: Sequence[str]) -> bool:
    """Whether a command line gives Hydra's ``--config-path`` / ``-cp`` (then a ``--config-name`` is the user's own
    file, not one of the shipped recipes)."""
    return any(a in ("--config-path", "-cp") or a.startswith("--config-path=") for a in argv)


def config_name_argument(argv: Sequence[str]) -> str | None:
    """The value of Hydra's ``--config-name`` / ``-cn`` in a command line, if given."""
    for i, arg in enumerate(argv):
        if arg in ("--config-name", "-cn") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config-name="):
            return arg.split("=", 1)[1]
    return None
