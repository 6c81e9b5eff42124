"""One record of a component's constructor arguments: what an artefact's ``config.json`` stores.

A class that inherits :class:`RecordsInitArgs` gets ``self.config``: the arguments of the
most-derived class's ``__init__`` as it was called, defaults applied, as plain JSON (tuples become
lists; a nested recorded component, such as an attention pattern, becomes its own
``{"class_path", "init_args"}`` record). ``type(obj)(**obj.config)`` rebuilds the component, which is
what :func:`vtrep.io.pretrained.build_from_config` does.

- A constructor that resolves a default (``aux_k=None`` → ``d_in // 2``) stores the resolved value
  with :meth:`RecordsInitArgs.resolve_init_args`; names the most-derived signature lacks are skipped,
  so a base class may resolve for every subclass.
- A component that changes its configuration later (``VideoViT.resize``) assigns ``self.config``.
- A value that is not JSON is kept as it is, so the constructor's own check reports it; saving such a
  component fails in :func:`~vtrep.io.pretrained.save_pretrained` before anything is written.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from typing import Any


def to_json(value: Any) -> Any:
    """``value`` as plain JSON where it has a JSON form (recorded components as their record), else as it is."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, RecordsInitArgs):
        return value.init_record()
    return value


def class_path(cls: type) -> str:
    """``module.QualName`` of a class, as artefacts name it."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _recording(init):
    """Wrap ``init`` so that, when it is the instance's own ``__init__``, it records its bound arguments first."""
    signature = inspect.signature(init)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values()):
        raise TypeError(f"{init.__qualname__} takes *args, which a keyword record cannot rebuild")

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if type(self).__init__ is __init__:  # the outermost constructor: a subclass's super() call is not
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            record: dict[str, Any] = {}
            for name, value in list(bound.arguments.items())[1:]:
                if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                    record.update({k: to_json(v) for k, v in value.items()})
                else:
                    record[name] = to_json(value)
            object.__setattr__(self, "config", record)
        init(self, *args, **kwargs)

    __init__._records_init_args = True  # type: ignore[attr-defined]
    return __init__


class RecordsInitArgs:
    """Mixin: ``self.config`` holds the constructor arguments (see the module docstring).

    Put it first among the bases (``class VideoViT(RecordsInitArgs, nn.Module)``).
    """

    config: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_records_init_args", False):
            cls.__init__ = _recording(init)  # type: ignore[method-assign]

    def resolve_init_args(self, **values: Any) -> None:
        """Record the values a constructor resolved, for those ``values`` the record has."""
        for name, value in values.items():
            if name in self.config:
                self.config[name] = to_json(value)

    def init_record(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}``: this component as a nested record (e.g. inside a backbone's config)."""
        return {"class_path": class_path(type(self)), "init_args": to_json(self.config)}
