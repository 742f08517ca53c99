"""What a user may choose when starting a profile, within bounds the site file sets.

A profile's ``choices`` section declares each choice with its default and its bounds (the
kinds below); the backend slice says which choices it offers and how a chosen value becomes
spawner settings. Every value a user sends is parsed here into a typed value inside those
bounds, or refused with a message that names the field and what it accepts: nothing a user
types reaches a spawner, a shell or a batch script as it was sent.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from .fields import ByteSize, Model, byte_count

DURATION = re.compile(r"^(?:(\d+)-)?(\d{1,2}):(\d{2})(?::(\d{2}))?$")


class ChoiceRefused(ValueError):
    """A user's value for a choice is not one the site allows; the message names the field."""


def minutes(duration: str | int) -> int:
    """``D-HH:MM[:SS]`` or ``HH:MM[:SS]`` (or a number of minutes) as whole minutes, rounded up."""
    if isinstance(duration, int) and not isinstance(duration, bool):
        return duration
    match = DURATION.match(str(duration).strip())
    if not match:
        raise ValueError(f"{duration!r} is not a time like 02:30:00 or 1-00:00:00")
    days, hours, mins, secs = (int(x or 0) for x in match.groups())
    return days * 1440 + hours * 60 + mins + math.ceil(secs / 60)


def clock(total: int) -> str:
    """Minutes as people write a time limit: ``1:30``, ``0:45``, ``26:00``."""
    return f"{total // 60}:{total % 60:02d}"


def duration_words(total: int) -> str:
    """Minutes in words: ``45 minutes``, ``2 hours``, ``1 hour 30 minutes``."""
    hours, mins = divmod(total, 60)
    parts = [f"{hours} hour" + ("" if hours == 1 else "s")] if hours else []
    if mins or not hours:
        parts.append(f"{mins} minute" + ("" if mins == 1 else "s"))
    return " ".join(parts)


def duration_text(total: int) -> str:
    """Minutes as Slurm writes a time limit: ``HH:MM:00`` or ``D-HH:MM:00``."""
    days, rest = divmod(total, 1440)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{text}" if days else text


def size_text(size: int) -> str:
    """Bytes in the largest unit that keeps them whole: 1536M, 4G."""
    for unit, factor in (("T", 2**40), ("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ChoiceRefused(f"{name}: must be a number")
    try:
        number = float(value)
    except ValueError:
        raise ChoiceRefused(f"{name}: must be a number, not {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise ChoiceRefused(f"{name}: must be a number")
    return number


Duration = Annotated[str, Field(pattern=DURATION.pattern)]
#: a partition, account, QOS or image name: nothing a batch script or a command line reads specially
TOKEN = re.compile(r"^[A-Za-z0-9._:/@+-]{1,200}$")
Token = Annotated[str, Field(pattern=TOKEN.pattern)]


class Ranged(Model):
    """A value from ``min`` to ``max``: subclasses say how a value is read (``read``) and shown (``show``)."""

    #: what the refusal calls an acceptable value
    what: ClassVar[str] = ""
    if TYPE_CHECKING:  # each kind declares them, with its own type
        min: Any
        max: Any
        default: Any
        step: Any

    def read(self, name: str, value):
        raise NotImplementedError

    def show(self, value) -> str:
        return str(value)

    def api_text(self, value):
        """A typed value as the API takes it (and ``user_options`` keeps it)."""
        return value

    def from_form(self, text: str):
        """A form field's text in the API's units."""
        return text

    def form_field(self, name: str, value) -> dict:
        """A form field's bounds, step, value and help, in the form's units."""
        low, high, step = (self.read(name, x) for x in (self.min, self.max, self.step))
        return {
            "min": f"{low:g}",
            "max": f"{high:g}",
            "step": f"{step:g}",
            "value": f"{value:g}",
            "help": f"from {low:g} to {high:g}",
        }

    def parse(self, name: str, value):
        typed = self.read(name, value)
        low, high = self.read(name, self.min), self.read(name, self.max)
        if not low <= typed <= high:
            raise ChoiceRefused(f"{name}: must be {self.what}from {self.bounds()}, not {self.show(typed)}")
        return typed

    def bounds(self) -> str:
        return f"{self.show(self.read('min', self.min))} to {self.show(self.read('max', self.max))}"

    def step_problems(self, where: str) -> list[str]:
        """A step that does not divide the range from ``min`` to ``max``, or a default that is not on a step."""
        low, high, default, step = (self.read(where, v) for v in (self.min, self.max, self.default, self.step))
        shown = self.show(step)
        if not _on_step(high - low, step):
            return [
                f"{where}.step: {shown} does not divide the range {self.bounds()}: the form could not offer"
                f" {self.show(high)} (choose a step that does, or bounds a whole number of steps apart)"
            ]
        if not _on_step(default - low, step):
            return [
                f"{where}.default: {self.show(default)} is not {self.show(low)} plus a whole number of steps of"
                f" {shown}: the form could not offer it"
            ]
        return []


def _on_step(span: float, step: float) -> bool:
    """Whether ``span`` is a whole number of ``step``s."""
    count = span / step
    return abs(count - round(count)) < 1e-9


class NumberChoice(Ranged):
    """A number from ``min`` to ``max`` (CPUs)."""

    min: Annotated[float, Field(gt=0)] = Field(1, description="the least a user may ask for")
    max: Annotated[float, Field(gt=0)] = Field(description="the most a user may ask for")
    default: Annotated[float, Field(gt=0)] = Field(
        description="what the form offers first, and a request without it gets"
    )
    step: Annotated[float, Field(gt=0)] = Field(1, description="the form's step")

    def read(self, name: str, value) -> float:
        return _number(name, value)

    def show(self, value) -> str:
        return f"{value:g}"


class CountChoice(NumberChoice):
    """A whole number from ``min`` to ``max`` (CPUs of a job, GPUs; 0 allowed)."""

    what: ClassVar[str] = "a whole number "
    min: Annotated[int, Field(ge=0)] = Field(0, description="the least a user may ask for")
    max: Annotated[int, Field(ge=0)] = Field(description="the most a user may ask for")
    default: Annotated[int, Field(ge=0)] = Field(
        description="what the form offers first, and a request without it gets"
    )
    step: ClassVar[int] = 1  # type: ignore[misc]  # a whole number's step is always 1: not a field

    def read(self, name: str, value) -> int:
        number = _number(name, value)
        if number != int(number):
            raise ChoiceRefused(f"{name}: must be a whole number from {self.min} to {self.max}, not {number:g}")
        return int(number)


class SizeChoice(Ranged):
    """A memory size from ``min`` to ``max``; the form asks in GiB, the API takes ``4G`` or bytes."""

    min: ByteSize = Field("1G", description="the least a user may ask for")
    max: ByteSize = Field(description="the most a user may ask for")
    default: ByteSize = Field(description="what the form offers first, and a request without it gets")
    step: ByteSize = Field("1G", description="the form's step")

    def read(self, name: str, value) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ChoiceRefused(f"{name}: must be a size such as 4G")
        try:
            return byte_count(value)
        except Exception:  # noqa: BLE001 (a TraitError or a ValueError, from the user's text)
            raise ChoiceRefused(f"{name}: must be a size such as 4G or 512M, not {str(value)[:40]!r}") from None

    def show(self, value) -> str:
        return size_text(value)

    def api_text(self, value: int) -> str:
        return size_text(value)

    def from_form(self, text: str) -> str:
        """GiB, as the form asks, to ``NM``; anything else as typed (and refused by :meth:`parse`)."""
        try:
            number = float(text)
        except ValueError:
            return text
        return f"{round(number * 1024)}M" if math.isfinite(number) else text

    def form_field(self, name: str, value: int) -> dict:
        low, high, step = (byte_count(x) / 2**30 for x in (self.min, self.max, self.step))
        return {
            "min": f"{low:g}",
            "max": f"{high:g}",
            "step": f"{step:g}",
            "value": f"{value / 2**30:g}",
            "help": f"from {size_words(byte_count(self.min))} to {size_words(byte_count(self.max))}",
        }


class DurationChoice(Ranged):
    """A time limit from ``min`` to ``max``; the form asks in hours, the API takes ``HH:MM:SS`` or minutes."""

    min: Duration = Field("00:15:00", description="the shortest a user may ask for")
    max: Duration = Field(description="the longest a user may ask for")
    default: Duration = Field(description="what the form offers first, and a request without it gets")
    step: Duration = Field("00:15:00", description="the form's step")

    def read(self, name: str, value) -> int:
        try:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError
            if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
                return int(value)  # minutes, as the form and the API take them
            return minutes(value)
        except ValueError:
            raise ChoiceRefused(f"{name}: must be a time such as 1:30 (hours:minutes) or 90 (minutes)") from None

    def show(self, value) -> str:
        return duration_text(value)

    def api_text(self, value: int) -> str:
        return duration_text(value)

    def form_field(self, name: str, value: int) -> dict:
        """Hours:minutes, or minutes, as people write a time."""
        low, high = self.read(name, self.min), self.read(name, self.max)
        return {
            "text": clock(value),
            "help": f"from {clock(low)} to {clock(high)} (hours:minutes, such as 1:30, or minutes, such as 90)",
        }


class ListChoice(Model):
    """One of the listed ``options`` (a partition, an image)."""

    options: Annotated[list[Token], Field(min_length=1)] = Field(description="what a user may pick")
    default: Token | None = Field(None, description="what the form offers first; default: the first option")

    @model_validator(mode="after")
    def _default_listed(self):
        if self.default is not None and self.default not in self.options:
            raise ValueError(f"default {self.default!r} is not one of the options")
        return self

    def parse(self, name: str, value, options: list[str] | None = None) -> str:
        options = self.options if options is None else options
        if not isinstance(value, str) or value not in options:
            shown = str(value)[:40] if isinstance(value, str | int | float) else type(value).__name__
            raise ChoiceRefused(f"{name}: must be one of {', '.join(options) or '(none for you)'}, not {shown!r}")
        return value

    def first(self, options: list[str] | None = None) -> str | None:
        options = self.options if options is None else options
        return self.default if self.default in options else (options[0] if options else None)

    def bounds(self) -> str:
        return ", ".join(self.options)

    def api_text(self, value: str) -> str:
        return value

    def from_form(self, text: str) -> str:
        return text


class AssociationChoice(ListChoice):
    """A Slurm account or QOS: from ``options``, or ``options: user`` for the user's own associations."""

    options: Annotated[list[Token], Field(min_length=1)] | Literal["user"] = Field(  # type: ignore[assignment]
        description="what a user may pick, or `user`: the accounts (or QOS) Slurm associates with the user,"
        " read with sacctmgr when the form is built and again at submission"
    )

    @model_validator(mode="after")
    def _default_listed(self):
        if self.options != "user" and self.default is not None and self.default not in self.options:
            raise ValueError(f"default {self.default!r} is not one of the options")
        return self

    def bounds(self) -> str:
        return "your Slurm associations" if self.options == "user" else super().bounds()


#: what people call each choice (the form's labels; the home page's card)
LABELS = {
    "cpu": "CPUs",
    "memory": "Memory",
    "runtime": "Time limit",
    "gpus": "GPUs",
    "partition": "Partition",
    "account": "Slurm account",
    "qos": "Quality of service (QOS)",
    "image": "Image",
}


def form_label(name: str) -> str:
    """How the start form names a choice, with the unit its field takes."""
    return "Memory (GiB)" if name == "memory" else LABELS.get(name, name)


#: each choice as a sentence names it
INLINE = {"memory": "memory", "runtime": "time limit", "partition": "partition", "qos": "QOS", "image": "image"}


def named(names) -> str:
    """Choices as a sentence lists them: ``CPUs, time limit and partition``."""
    said = [INLINE.get(n, LABELS.get(n, n)) for n in names]
    return ", ".join(said[:-1]) + " and " + said[-1] if len(said) > 1 else "".join(said)


def words(name: str, value) -> str:
    """A chosen (typed) value in words: ``2 CPUs``, ``4 GiB of memory``, ``up to 1 hour 30 minutes``."""
    if name == "cpu":
        return f"{value:g} CPU" + ("" if value == 1 else "s")
    if name == "memory":
        return f"{size_words(value)} of memory"
    if name == "runtime":
        return f"up to {duration_words(value)}"
    if name == "gpus":
        return {0: "no GPU", 1: "1 GPU"}.get(value, f"{value} GPUs")
    return f"{LABELS.get(name, name).lower()} {value}"


def size_words(size: int) -> str:
    """Bytes as people read them: ``4 GiB``, ``512 MiB``, ``1.5 GiB``."""
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes"


#: one choice of a profile, of any kind
Choice = Ranged | ListChoice


class Choices(Model):
    """A profile's choices: each backend's model lists the ones it offers."""

    def declared(self) -> dict[str, Choice]:
        return {name: spec for name in type(self).model_fields if (spec := getattr(self, name)) is not None}

    def problems(self, where: str) -> list[str]:
        """What the form could not offer, as ``profiles.N.choices.NAME.FIELD: reason``: a default outside the
        bounds or off the form's steps, a step that does not divide the range (the form then cannot offer the
        maximum, and a browser refuses any value off a step)."""
        found = []
        for name, spec in self.declared().items():
            if isinstance(spec, ListChoice):
                continue
            try:
                spec.parse(name, spec.default)
                spec.parse(name, spec.min)
                spec.parse(name, spec.max)
            except ChoiceRefused as e:
                found.append(f"{where}.{name}.default: {str(e).split(': ', 1)[1]}")
                continue
            found += spec.step_problems(f"{where}.{name}")
        return found
