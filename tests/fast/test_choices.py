"""Parsing what users send for a profile's choices: typed values within bounds, or a refusal naming the field."""

import pytest

from campushub.sitefile.choices import (
    AssociationChoice,
    ChoiceRefused,
    CountChoice,
    DurationChoice,
    ListChoice,
    NumberChoice,
    SizeChoice,
    duration_text,
    minutes,
)

CPU = NumberChoice(min=0.5, max=4, default=1)
GPUS = CountChoice(max=2, default=0)
MEMORY = SizeChoice(max="8G", default="2G")
RUNTIME = DurationChoice(max="08:00:00", default="01:00:00")
PARTITION = ListChoice(options=["campus", "gpu"])

ACCEPTED = [
    (CPU, 2, 2.0),
    (CPU, "0.5", 0.5),
    (CPU, 4, 4.0),
    (GPUS, 2, 2),
    (GPUS, "0", 0),
    (GPUS, 1.0, 1),
    (MEMORY, "1536M", 1536 * 2**20),
    (MEMORY, "8G", 8 * 2**30),
    (MEMORY, 2**30, 2**30),
    (RUNTIME, "00:15:00", 15),
    (RUNTIME, "08:00", 480),
    (RUNTIME, 90, 90),
    (RUNTIME, "0-02:00:30", 121),
    (PARTITION, "gpu", "gpu"),
]
REFUSED = [
    (CPU, 8, "from 0.5 to 4"),
    (CPU, 0, "from 0.5 to 4"),
    (CPU, True, "must be a number"),
    (CPU, "nan", "must be a number"),
    (CPU, "inf", "must be a number"),
    (CPU, "2; rm -rf ~", "must be a number"),
    (CPU, [2], "must be a number"),
    (CPU, {"$gt": 1}, "must be a number"),
    (GPUS, 3, "whole number from 0 to 2"),
    (GPUS, 1.5, "whole number"),
    (GPUS, -1, "whole number"),
    (MEMORY, "3000G", "from 1G to 8G"),
    (MEMORY, "512M", "from 1G to 8G"),
    (MEMORY, "4 gigs", "size such as 4G"),
    (MEMORY, 4.5, "size such as 4G"),
    (RUNTIME, "2-00:00:00", "from 00:15:00 to 08:00:00"),
    (RUNTIME, "forever", "time such as 1:30 (hours:minutes) or 90 (minutes)"),
    (RUNTIME, "10", "must be from 00:15:00 to 08:00:00, not 00:10:00"),  # minutes, as the form sends them
    (RUNTIME, 5, "from 00:15:00"),
    (RUNTIME, False, "time such as"),
    (PARTITION, "other", "must be one of campus, gpu"),
    (PARTITION, "campus --uid=0", "must be one of"),
    (PARTITION, None, "must be one of"),
]


@pytest.mark.parametrize("spec, value, typed", ACCEPTED, ids=str)
def test_values_within_bounds_become_typed_values(spec, value, typed):
    assert spec.parse("x", value) == typed


@pytest.mark.parametrize("spec, value, reason", REFUSED, ids=str)
def test_everything_else_is_refused_naming_the_field(spec, value, reason):
    with pytest.raises(ChoiceRefused) as refused:
        spec.parse("field", value)
    assert str(refused.value).startswith("field: ") and reason in str(refused.value), refused.value


def test_a_users_own_options_bound_an_association_choice():
    account = AssociationChoice(options="user")
    assert account.parse("account", "crc-teach", ["crc-teach"]) == "crc-teach"
    with pytest.raises(ChoiceRefused, match="account: must be one of crc-teach"):
        account.parse("account", "crc-other", ["crc-teach"])
    with pytest.raises(ChoiceRefused, match=r"\(none for you\)"):
        account.parse("account", "crc-teach", [])


def test_times_as_slurm_writes_them():
    assert [minutes(t) for t in ("1-00:00:00", "03:00:00", "00:30")] == [1440, 180, 30]
    assert [duration_text(m) for m in (1440 + 90, 180, 15)] == ["1-01:30:00", "03:00:00", "00:15:00"]
