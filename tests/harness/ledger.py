"""Sessions for the ledger, made up (for the admin page's test and the ledger's benchmark): a center's year."""

from __future__ import annotations

import random

from sqlalchemy import create_engine, insert

from campushub.ledger.tables import SESSION_GROUPS, SESSIONS

PROFILES = [
    ("small", "local", 1, 2),
    ("medium", "container", 2, 4),
    ("gpu", "container", 4, 16),
    ("batch", "slurm", 4, 8),
]
OUTCOMES = ["user"] * 5 + ["culled"] * 3 + ["time-limit", "admin", "failed", "out-of-memory"]


def fill(url: str, count: int, first: float, days: int, users: int = 1000, groups: int = 40, seed: int = 7) -> None:
    """``count`` ended sessions asked for over ``days`` days from ``first`` (epoch seconds), in the database at
    ``url`` (whose ledger tables exist), by ``users`` users in ``groups`` groups (one or two each)."""
    rng = random.Random(seed)
    member = {u: rng.sample(range(groups), rng.choice((1, 1, 2))) for u in range(users)}
    engine = create_engine(url)
    with engine.begin() as connection:
        for start in range(0, count, 5000):
            rows, pairs = [], []
            for i in range(start, min(count, start + 5000)):
                user = rng.randrange(users)
                profile, backend, cpus, gib = PROFILES[rng.randrange(len(PROFILES))]
                asked = first + rng.random() * days * 86400
                outcome = rng.choice(OUTCOMES)
                wait = rng.uniform(0.3, 4) if backend != "slurm" else rng.expovariate(1 / 60)
                ready = None if outcome == "failed" else asked + wait
                rows.append(
                    {
                        "id": i + 1,
                        "user": f"user{user:04d}",
                        "server": "",
                        "profile": profile,
                        "backend": backend,
                        "cpus": cpus,
                        "memory_bytes": gib * 2**30,
                        "gpus": 1 if profile == "gpu" else 0,
                        "choices": "{}",
                        "host": "hub" if backend == "local" else "node1",
                        "container": "",
                        "job_id": str(1000 + i) if backend == "slurm" else "",
                        "cluster": "",
                        "account": f"acct{user % 25}" if backend == "slurm" else "",
                        "partition": "campus" if backend == "slurm" else "",
                        "asked": asked,
                        "started": ready,
                        "ready": ready,
                        "ended": (ready or asked + wait) + rng.expovariate(1 / 5400),
                        "outcome": outcome,
                        "words": "",
                        "notes": "",
                    }
                )
                pairs += [{"session_id": i + 1, "name": f"dept{g:02d}"} for g in member[user]]
            connection.execute(insert(SESSIONS), rows)
            connection.execute(insert(SESSION_GROUPS), pairs)
    engine.dispose()
