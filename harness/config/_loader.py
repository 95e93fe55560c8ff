"""The one settings loader: defaults < profile file < ``HARNESS_*`` environment < flags.

Nothing else in the harness reads the environment; the caller passes it in. Every problem in
every layer is collected and raised at once as one ConfigError, each naming file and line (or
the variable or flag) and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.config._overrides import Override, env_overrides, flag_overrides
from harness.config._settings import Settings
from harness.config._tree import TreeBuilder
from harness.util.errors import ConfigError
from harness.util.yamlsrc import YamlPath, YamlSource, load_yaml

PROFILE_DIR = "profiles"


def available_profiles(repo_root: Path) -> tuple[str, ...]:
    """Return the names of the profiles in ``repo_root/profiles``, sorted."""
    folder = repo_root / PROFILE_DIR
    return tuple(sorted(p.stem for p in folder.glob("*.yaml"))) if folder.is_dir() else ()


def resolve_profile(profile: str, *, repo_root: Path) -> Path:
    """Return the file of ``profile``: a name in ``profiles/`` or a path to a YAML file."""
    if _looks_like_path(profile):
        candidates = [Path(profile)]
        if not Path(profile).is_absolute():
            candidates.append(repo_root / profile)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise ConfigError(f"profile file {profile} does not exist; check the path.")
    path = repo_root / PROFILE_DIR / f"{profile}.yaml"
    if path.is_file():
        return path
    names = ", ".join(available_profiles(repo_root)) or "none"
    raise ConfigError(
        f"unknown profile '{profile}'; available profiles: {names} "
        f"(in {repo_root / PROFILE_DIR}); pass one of them or a path to a YAML file."
    )


def load_settings(
    profile: str, *, repo_root: Path, env: Mapping[str, str], overrides: Sequence[str]
) -> Settings:
    """Load the settings of one run, or raise ConfigError listing every problem found."""
    path = resolve_profile(profile, repo_root=repo_root)
    source = load_yaml(path, origin=_display(path, repo_root))
    raw, origins = _profile_layer(source, default_name=path.stem)
    from_env, env_problems = env_overrides(env)
    from_flags, flag_problems = flag_overrides(overrides)
    for override in [*from_env, *from_flags]:
        _apply(raw, origins, override)
    builder = TreeBuilder(origins=origins, root=repo_root)
    settings = builder.build(Settings, raw)
    problems = [*env_problems, *flag_problems, *builder.problems]
    if problems or settings is None:
        raise ConfigError(problems or [f"{source.origin}: the profile is not valid."])
    return settings


def _profile_layer(source: YamlSource, *, default_name: str) -> tuple[Any, dict[YamlPath, str]]:
    origins = {path: f"{source.origin}:{line}" for path, line in source.lines.items()}
    origins.setdefault((), f"{source.origin}:1")
    raw = {} if source.data is None else source.data
    if isinstance(raw, dict) and "name" not in raw:
        raw["name"] = default_name
    return raw, origins


def _apply(raw: Any, origins: dict[YamlPath, str], override: Override) -> None:
    """Set ``override`` into ``raw`` (a nested dict) and record where it came from."""
    if not isinstance(raw, dict):
        return  # the profile itself is not a mapping; the builder reports that
    node = raw
    for key in override.path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[override.path[-1]] = override.value
    for path in [p for p in origins if p[: len(override.path)] == override.path]:
        del origins[path]
    origins[override.path] = override.origin


def _looks_like_path(profile: str) -> bool:
    return "/" in profile or profile.endswith((".yaml", ".yml"))


def _display(path: Path, repo_root: Path) -> str:
    try:
        return str(path.resolve().relative_to(repo_root.resolve()))
    except ValueError:
        return str(path)
