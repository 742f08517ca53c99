"""The keys a section of the site file takes, to suggest the one an unknown key was meant to be."""

from __future__ import annotations

import difflib
import types
import typing

from pydantic import BaseModel


def did_you_mean(root: type[BaseModel], loc: tuple, tags: dict[str, tuple]) -> str | None:
    """The closest key to ``loc[-1]`` among those its section takes; ``loc`` is pydantic's, union tags included
    (``tags``: each tag field and its values)."""
    keys = set()
    for model in _walk(root, loc[:-1], tags):
        keys |= {name for name in model.model_fields if name not in tags}
    close = difflib.get_close_matches(str(loc[-1]), sorted(keys), n=1)
    return close[0] if close else None


def _walk(root, loc, tags) -> list[type[BaseModel]]:
    current = [root]
    for part in loc:
        following = []
        for kind in (leaf for t in current for leaf in _leaves(t)):
            origin, args = typing.get_origin(kind), typing.get_args(kind)
            if isinstance(part, int) and origin in (list, tuple):
                following.append(args[0])
            elif origin is dict:
                following.append(args[1])
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                if part in kind.model_fields:
                    following.append(kind.model_fields[part].annotation)
                elif any(part in typing.get_args(_tag(kind, tag)) for tag in tags):
                    following.append(kind)  # the union's tag: pydantic's location has it, the file does not
        current = following
    return [kind for t in current for kind in _leaves(t) if isinstance(kind, type) and issubclass(kind, BaseModel)]


def _tag(model: type[BaseModel], field: str):
    return model.model_fields[field].annotation if field in model.model_fields else None


def _leaves(kind) -> list:
    """A type without Annotated, Optional and unions: the kinds of value it takes."""
    origin = typing.get_origin(kind)
    if origin is typing.Annotated:
        return _leaves(typing.get_args(kind)[0])
    if origin in (typing.Union, types.UnionType):
        return [leaf for arg in typing.get_args(kind) for leaf in _leaves(arg)]
    return [kind]
