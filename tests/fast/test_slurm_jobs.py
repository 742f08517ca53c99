"""squeue's and sacct's words for people (campushub.backends.slurm.jobs), on the lines Slurm 22.05 prints."""

import datetime

import pytest

from campushub.backends.slurm.jobs import JobInfo, ahead_of, ended, minutes_left

NOW = datetime.datetime(2026, 11, 26, 20, 0)


def test_a_pending_line_reads_with_a_reason_that_has_spaces():
    info = JobInfo.parse("PENDING campus 4294901 2026-11-26T20:12:30 30:00 ReqNodeNotAvail, UnavailableNodes:n1 n/a")
    assert (info.state, info.partition, info.priority, info.left, info.host) == (
        "PENDING",
        "campus",
        4294901,
        30,
        "n/a",
    )
    assert info.reason == "ReqNodeNotAvail, UnavailableNodes:n1"
    assert info.pending_words(2, NOW) == (
        "Waiting in the Slurm queue: the nodes it needs are not available now (maintenance, or down)."
        " Slurm expects it to start around 20:12 (in 12 min). 2 jobs ahead of it in partition campus."
    )


@pytest.mark.parametrize(
    "reason, words",
    [
        ("Resources", "waiting for a free node with the CPUs, memory and GPUs it asks for"),
        ("Priority", "other jobs are ahead of yours"),
        ("QOSMaxJobsPerUserLimit", "you already run the most jobs your QOS allows"),
        ("AssocGrpGRES", "Slurm says: AssocGrpGRES"),
        ("QOSGrpNodeLimit", "a limit of your account or QOS holds it for now (Slurm: QOSGrpNodeLimit)"),
        # ReqNodeNotAvail, as squeue writes it once the scheduler has looked again
        (
            "Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority partitions",
            "the nodes it needs are not available now (maintenance, or down)",
        ),
    ],
)
def test_pending_reasons_in_words_without_an_estimate(reason, words):
    info = JobInfo.parse(f"PENDING campus 100 N/A 1:00:00 {reason} n/a")
    assert info.start is None
    assert info.pending_words(None, NOW) == f"Waiting in the Slurm queue: {words}."


@pytest.mark.parametrize(
    "text, minutes",
    [("1-02:03:04", 1564), ("29:59", 30), ("00:00:00", 0), ("0:05", 1), ("UNLIMITED", None), ("", None)],
)
def test_time_left_in_whole_minutes_rounded_up(text, minutes):
    assert minutes_left(text) == minutes


def test_lines_that_are_not_squeues_are_no_job():
    assert JobInfo.parse("") is None
    assert JobInfo.parse("slurm_load_jobs error: Invalid job id specified") is None


def test_jobs_ahead_are_those_of_higher_priority():
    assert ahead_of(100, "300\n100\n99\n150\n") == 2


@pytest.mark.parametrize(
    "sacct, uid, words, advice",
    [
        ("7|OUT_OF_MEMORY|0:125|None\n7.batch|OUT_OF_MEMORY|0:125|", 1001, "Job 7 ran out of memory.", "Choose a"),
        # the server's srun step was killed for memory: the job itself only says FAILED
        (
            "7|FAILED|1:0|None\n7.batch|FAILED|1:0|\n7.0|OUT_OF_MEMORY|0:125|",
            1001,
            "Job 7 ran out of memory.",
            "Choose",
        ),
        ("7|TIMEOUT|0:0|None\n7.batch|CANCELLED|0:15|", 1001, "Job 7 reached its time limit.", "Save your work"),
        ("7|CANCELLED by 0|0:0|None", 1001, "Job 7 was cancelled by an administrator.", "Start it again"),
        ("7|CANCELLED by 1001|0:0|None", 1001, "Job 7 was cancelled by you.", "Start it again"),
        ("7|FAILED|3:0|NonZeroExitCode", 1001, "Job 7 failed.", "The last lines of its log"),
        ("", 1001, "Job 7 ended (UNKNOWN).", "The last lines of its log"),
        # its node failed: the node named (sacct's NodeList), the job not requeued (--no-requeue)
        (
            "7|NODE_FAIL|0:0|None|node1\n7.batch|CANCELLED|0:15||node1",
            1001,
            "Job 7 ended because its node, node1, failed (or the cluster lost touch with it).",
            "Start it again",
        ),
        ("7|NODE_FAIL|0:0|None|None assigned", 1001, "Job 7 ended because its node failed.", "Start it again"),
    ],
)
def test_how_a_job_ended_in_words_with_advice(sacct, uid, words, advice):
    end = ended(sacct, "7", uid)
    assert end["words"] == words and end["advice"].startswith(advice), end


def test_outside_a_slurm_job_jupyterlab_is_told_nothing():
    import asyncio

    from campushub.server import lab_session

    assert asyncio.run(lab_session.session({})) == {}
    assert asyncio.run(lab_session.session({"SLURM_JOB_ID": "1; rm -rf ~"})) == {}  # never reaches squeue
    assert lab_session._numbers("10, 2,x,2,30") == [30, 10, 2]
