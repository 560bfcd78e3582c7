"""analysis.ablation.files.atomic_target: a failed write leaves the old file and no temporary file."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from analysis.ablation.files import atomic_target, write_json_atomic


def test_a_failed_write_cleans_up_and_keeps_the_old_file(tmp_path: Path, monkeypatch):
    target = tmp_path / "status.json"
    write_json_atomic(target, {"state": "done"})
    before = target.read_text()

    def disk_full(self, *args, **kwargs):
        with Path.open(self, "w") as fh:  # a partial write happened, then the disk filled up
            fh.write('{"sta')
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_json_atomic(target, {"state": "running"})
    monkeypatch.undo()
    assert target.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]

    with pytest.raises(KeyboardInterrupt):
        with atomic_target(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]
