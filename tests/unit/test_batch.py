from pathlib import Path

import pytest

from pixelpilot.agent.errors import ConfigError
from pixelpilot.tasks.batch import collect_tasks, parse_shard, select_shard


def test_shards_partition_the_sorted_tasks(tmp_path):
    for name in ["b.yaml", "a.yaml", "sub/c.yml", "sub/d.yaml", "e.yaml", "f.yaml", "g.yaml", "notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("steps: []\n")
    tasks = collect_tasks([tmp_path, tmp_path / "a.yaml"])  # a folder and a file in it: collected once
    assert [t.name for t in tasks] == ["a.yaml", "b.yaml", "e.yaml", "f.yaml", "g.yaml", "c.yml", "d.yaml"]
    for n in (1, 2, 3, 7, 10):
        shards = [select_shard(tasks, (i, n)) for i in range(1, n + 1)]
        flat = [t for s in shards for t in s]
        assert sorted(flat) == sorted(tasks) and len(flat) == len(
            set(flat)
        )  # the union is the whole set, no task twice
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert select_shard(tasks, (2, 3)) == select_shard(list(tasks), (2, 3))  # deterministic


@pytest.mark.parametrize("bad", ["0/3", "4/3", "2", "a/b", "1/0"])
def test_bad_shards(bad):
    with pytest.raises(ConfigError, match="--shard takes i/n"):
        parse_shard(bad)


def test_missing_path():
    with pytest.raises(ConfigError, match="no such task file or folder"):
        collect_tasks([Path("/nonexistent/tasks")])


def test_folders_skip_hidden_folders_and_node_modules(tmp_path):
    for rel in ("a.yaml", "sub/b.yml", ".venv/lib/x.yaml", "node_modules/pkg/y.yaml", "sub/.cache/z.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("steps: []\n")
    assert [p.relative_to(tmp_path).as_posix() for p in collect_tasks([tmp_path])] == ["a.yaml", "sub/b.yml"]


def test_shard_auto_reads_an_indexed_job_or_a_ci_matrix():
    # a Kubernetes Indexed Job counts from 0; GitLab's parallel: from 1
    assert parse_shard("auto", {"JOB_COMPLETION_INDEX": "0", "JOB_COMPLETION_COUNT": "3"}) == (1, 3)
    assert parse_shard("auto", {"JOB_COMPLETION_INDEX": "2", "JOB_COMPLETION_COUNT": "3"}) == (3, 3)
    assert parse_shard("auto", {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "4"}) == (2, 4)
    with pytest.raises(ConfigError, match="outside JOB_COMPLETION_COUNT=3"):
        parse_shard("auto", {"JOB_COMPLETION_INDEX": "3", "JOB_COMPLETION_COUNT": "3"})
    with pytest.raises(ConfigError, match="are not numbers"):
        parse_shard("auto", {"CI_NODE_INDEX": "x", "CI_NODE_TOTAL": "4"})
    with pytest.raises(ConfigError, match="needs JOB_COMPLETION_INDEX and JOB_COMPLETION_COUNT"):
        parse_shard("auto", {"JOB_COMPLETION_INDEX": "1"})  # the count is not in the pod by default
