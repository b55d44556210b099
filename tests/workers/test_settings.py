"""Settings that must be refused at start: file:// fetching without a root (guarantee 5)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workers.settings import Settings, SettingsError, load_settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean ``VITRINE_*`` environment: only what a test sets is seen by ``load_settings``."""
    for name in list(os.environ):
        if name.startswith("VITRINE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_allow_file_without_a_root_is_refused_in_one_line_naming_the_root(env: pytest.MonkeyPatch) -> None:
    env.setenv("VITRINE_FETCH_ALLOW_FILE", "true")
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert "\n" not in message, message
    assert message.startswith("VITRINE_FETCH_FILE_ROOT="), message
    assert "VITRINE_FETCH_ALLOW_FILE" in message, message


def test_allow_file_with_a_root_is_accepted(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("VITRINE_FETCH_ALLOW_FILE", "true")
    env.setenv("VITRINE_FETCH_FILE_ROOT", str(tmp_path))
    s = load_settings()
    assert s.fetch_allow_file and s.fetch_file_root == tmp_path


def test_no_root_is_needed_while_file_uris_are_disabled(env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert not s.fetch_allow_file and s.fetch_file_root is None


def test_settings_built_in_code_are_checked_too(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="VITRINE_FETCH_FILE_ROOT"):
        Settings(fetch_allow_file=True, fetch_file_root=None)


def test_partitions_dlq_partitions_and_replication_reach_every_topic_spec(env: pytest.MonkeyPatch) -> None:
    env.setenv("VITRINE_PARTITIONS", "12")
    env.setenv("VITRINE_DLQ_PARTITIONS", "3")
    env.setenv("VITRINE_REPLICATION_FACTOR", "2")
    topics = load_settings().topics.for_model("0123456789")
    specs = {s.name: (s.partitions, s.replication) for s in topics.specs()}
    assert specs.pop(topics.dlq) == (3, 2)
    assert set(specs.values()) == {(12, 2)}


def test_the_dlq_keeps_one_partition_unless_set(env: pytest.MonkeyPatch) -> None:
    env.setenv("VITRINE_PARTITIONS", "12")
    s = load_settings()
    assert s.dlq_partitions == 1 and s.topics.spec(s.topics.dlq).partitions == 1


def test_a_dlq_without_partitions_is_refused_naming_the_variable(env: pytest.MonkeyPatch) -> None:
    env.setenv("VITRINE_DLQ_PARTITIONS", "0")
    with pytest.raises(SettingsError, match="VITRINE_DLQ_PARTITIONS"):
        load_settings()


def test_faust_declares_topics_with_the_settings_replication(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Faust's own default replication is 1: a topic a worker declares must get the setting's."""
    from workers.runtime.app import worker_app

    env.setenv("VITRINE_REPLICATION_FACTOR", "3")
    env.setenv("VITRINE_PARTITIONS", "12")
    env.setenv("VITRINE_DATA_DIR", str(tmp_path))
    app = worker_app(load_settings(), "index")
    assert app.conf.topic_replication_factor == 3 and app.conf.topic_partitions == 12
