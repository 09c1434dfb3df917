"""Building a reward from its profile entry: a registry name, ``module:function``, or ``{name, weight, ...}``."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from rlhf.rewards.base import REWARDS, UNBOUNDED, BuiltinReward, RewardFn, as_text, as_values
from rlhf.rewards.shaping import SHAPINGS, Shaping

RESERVED_KEYS = ("name", "weight", "shaping")


@dataclass(frozen=True)
class Reward:
    """One reward term: a callable, its name, its weight in the sum and its shaping transforms.

    Calling it returns the shaped values, one float (or ``None``) per completion; the weight is applied by
    :class:`~rlhf.rewards.CompositeReward` (as TRL applies ``reward_weights``), not here. It is a valid TRL
    reward function (it has a ``__name__``).
    """

    name: str
    fn: RewardFn
    weight: float = 1.0
    shaping: tuple[Shaping, ...] = field(default=())

    @property
    def __name__(self) -> str:  # TRL logs reward functions by __name__
        return self.name

    @property
    def is_filter(self) -> bool:
        return bool(getattr(self.fn, "is_filter", False))

    @property
    def value_range(self) -> tuple[float, float]:
        low, high = getattr(self.fn, "value_range", UNBOUNDED)
        for transform in self.shaping:
            low, high = transform.map_range(low, high)
        return (low, high)

    @property
    def last_info(self) -> dict[str, float]:
        """Counters the reward reports about its last call (e.g. the judge's ``unparsed``)."""
        return dict(getattr(self.fn, "last_info", {}))

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        values = as_values(self.name, self.fn(prompts, completions, **kwargs), completions)
        if self.shaping:
            texts = [as_text(c) for c in completions]
            for transform in self.shaping:
                values = transform.apply(values, texts)
        return values


def shape(reward: RewardFn, *transforms: Shaping, name: str | None = None) -> Reward:
    """``reward`` with ``transforms`` applied in order (after any it already has).

    >>> from rlhf.rewards import Negate
    >>> shape(lambda prompts, completions, **kw: [1.0] * len(completions), Negate(), name="one")([""], ["x"])
    [-1.0]
    """
    if isinstance(reward, Reward):
        return Reward(name or reward.name, reward.fn, reward.weight, reward.shaping + tuple(transforms))
    return Reward(name or _callable_name(reward), reward, 1.0, tuple(transforms))


def load_reward(spec: str | Mapping[str, Any] | BaseModel | RewardFn) -> Reward:
    """Build one reward from its profile entry.

    ``spec`` is a registry name (``"sentiment"``), a ``"module:function"`` (or ``"path/file.py:function"``)
    string, a mapping ``{name, weight=1.0, shaping=[...], **options}`` (or the profile's ``RewardSpec``), or
    a callable. Options go to the registered reward's constructor, or are bound to a plain function with
    ``functools.partial``. Bad options raise ``ValueError`` naming the reward and the option.

    >>> reward = load_reward({"name": "length", "target": 4, "weight": 0.5})
    >>> reward.name, reward.weight, reward(["Q:"], ["one two three four"])
    ('length', 0.5, [1.0])
    """
    if isinstance(spec, Reward):
        return spec
    if isinstance(spec, BuiltinReward) or (callable(spec) and not isinstance(spec, (str, Mapping, BaseModel))):
        return Reward(_callable_name(spec), spec)
    entry = _entry_dict(spec)
    name = entry.pop("name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"reward entry {entry!r} has no 'name'; give a registry name ({', '.join(REWARDS.names())}) "
                         "or 'module:function'")
    weight = entry.pop("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise ValueError(f"reward {name!r}: option 'weight'={weight!r} must be a finite number")
    shaping = tuple(_load_shaping(name, item) for item in _as_list(name, entry.pop("shaping", [])))
    fn = _build(name, entry)
    reward = Reward(_display_name(name), fn, float(weight), shaping)
    if reward.is_filter and weight != 1.0:
        raise ValueError(f"reward {name!r}: option 'weight'={weight!r} has no effect on a filter (it replaces the "
                         "whole reward with its floor); remove 'weight'")
    return reward


def _entry_dict(spec: str | Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"name": spec}
    if isinstance(spec, BaseModel):
        return spec.model_dump()
    if isinstance(spec, Mapping):
        return dict(spec)
    raise ValueError(f"a reward entry is a name, 'module:function' or a mapping; got {type(spec).__name__}")


def _as_list(name: str, value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError(f"reward {name!r}: option 'shaping' must be a list of {{name: ..., **options}} entries, "
                     f"got {value!r}")


def _load_shaping(reward_name: str, item: Any) -> Shaping:
    options = {"name": item} if isinstance(item, str) else dict(item) if isinstance(item, Mapping) else None
    if options is None or "name" not in options:
        raise ValueError(f"reward {reward_name!r}: shaping entry {item!r} needs a 'name' "
                         f"({', '.join(SHAPINGS.names())})")
    shaping_name = options.pop("name")
    try:
        cls = SHAPINGS.get(str(shaping_name))
    except KeyError as exc:
        raise ValueError(f"reward {reward_name!r}: {exc.args[0]}") from None
    try:
        return cls(**options)
    except ValidationError as exc:
        raise ValueError(_options_message(f"reward {reward_name!r} shaping {shaping_name!r}", exc, cls)) from None


CALLABLE_PREFIX = "python:"  # a profile entry for a callable passed to rlhf.run() that cannot be imported


def callable_spec(fn: Any) -> dict[str, Any]:
    """The profile entry recording a reward callable: ``module:qualname`` when it can be imported again,
    else ``python:<name>`` (a lambda or a notebook's function), which a resume must be given again.

    >>> callable_spec(len)["name"], callable_spec(lambda p, c: [])["name"]
    ('builtins:len', 'python:<lambda>')
    """
    target = fn.func if isinstance(fn, functools.partial) else fn
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", "")
    importable = module not in (None, "__main__") and qualname and "<" not in qualname
    if importable:
        try:
            importable = import_callable(f"{module}:{qualname}") is target
        except ValueError:
            importable = False
    name = f"{module}:{qualname}" if importable else f"{CALLABLE_PREFIX}{_callable_name(fn)}"
    options = dict(fn.keywords) if isinstance(fn, functools.partial) and importable else {}
    return {"name": name, **options}


def _build(name: str, options: dict[str, Any]) -> RewardFn:
    if name.startswith(CALLABLE_PREFIX):
        raise ValueError(
            f"reward {name!r} was a Python callable given to rlhf.run() (a lambda or a function defined in a "
            f"notebook or script), so it cannot be loaded from the profile: pass it again, e.g. "
            f"rlhf.run(resume=RUN_DIR, rewards=[{name.removeprefix(CALLABLE_PREFIX)}]), or move it to a module "
            "and name it as 'module:function'")
    if name in REWARDS:
        cls = REWARDS.get(name)
        try:
            return cls(**options)
        except ValidationError as exc:
            raise ValueError(_options_message(f"reward {name!r}", exc, cls)) from None
    if ":" not in name:
        try:
            REWARDS.get(name)
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]} Or give an importable 'module:function'.") from None
    fn = import_callable(name)
    if options:
        _check_bindable(name, fn, options)
        fn = functools.partial(fn, **options)
    return fn


def import_callable(target: str) -> Callable[..., Any]:
    """The object named by ``"package.module:function"`` or ``"path/to/file.py:function"``.

    The current directory is searched too (a console script does not put it on ``sys.path``).
    """
    module_name, _, attr = target.rpartition(":")
    if not module_name or not attr:
        raise ValueError(f"reward {target!r}: expected 'module:function', e.g. 'my_pkg.rewards:politeness'")
    try:
        module = _import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"reward {target!r}: cannot import module {module_name!r}: {exc}. Check the spelling, "
                         "and that the module is installed or in the current directory") from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"reward {target!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"reward {target!r}: {attr!r} is a {type(obj).__name__}, not a callable")
    return obj


def _import_module(module_name: str):
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser()
        if not path.is_file():
            raise ImportError(f"no file {str(path)!r}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        if exc.name != module_name.split(".")[0] or cwd in sys.path:
            raise
        sys.path.append(cwd)
        return importlib.import_module(module_name)


def _check_bindable(name: str, fn: Callable[..., Any], options: dict[str, Any]) -> None:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"reward {name!r}: unknown option {unknown[0]!r}; the function accepts "
                         f"{', '.join(sorted(accepted)) or 'no keyword options'}")


def _options_message(owner: str, exc: ValidationError, cls: type[BaseModel]) -> str:
    problems = []
    for error in exc.errors():
        option = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown option {option!r}; valid options: {', '.join(cls.model_fields)}")
        elif option:
            problems.append(f"option {option!r}={error['input']!r}: {message}")
        else:
            problems.append(message)
    return f"{owner}: " + "; ".join(problems)


def _display_name(name: str) -> str:
    """``my_pkg.rewards:politeness`` -> ``politeness``: the key under ``rewards/`` in the logs."""
    if name in REWARDS:
        return name.lower()
    return name.rpartition(":")[2].rpartition(".")[2] or name


def _callable_name(fn: Any) -> str:
    """A reward's name for logs: its registry name, or the function's ``__name__``."""
    registered = [name for name in REWARDS.names() if type(fn) is REWARDS.get(name)]
    if registered:
        return registered[0]
    fn = fn.func if isinstance(fn, functools.partial) else fn
    return getattr(fn, "__name__", None) or type(fn).__name__.lower()
