"""The client's files that travel to the workers with the processor (:mod:`cms_anomaly.processors.attached`)."""

from __future__ import annotations

from pathlib import Path

from cms_anomaly.processors import attached, runner
from cms_anomaly.processors.processor import AnomalyProcessor


def test_a_carried_file_is_read_from_its_copy_not_from_the_path(tmp_path, monkeypatch):
    monkeypatch.setattr(attached, "_CARRIED", {})
    monkeypatch.setenv("TMPDIR", str(tmp_path / "worker-tmp"))
    (tmp_path / "worker-tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    cert = tmp_path / "client" / "cert.json"
    cert.parent.mkdir()
    cert.write_text('{"1": [[1, 5]]}')
    carried = attached.collect([str(cert), "root://host//x.json", str(tmp_path / "missing.json")])
    assert carried == {str(cert): b'{"1": [[1, 5]]}'}
    assert attached.local_path(str(cert)) == str(cert)  # nothing carried yet: the path itself
    attached.carry(carried)
    cert.write_text('{"1": [[7, 9]]}')  # the worker's file of that name differs: the client's content wins
    copy = Path(attached.local_path(str(cert)))
    assert copy.parent.parent == tmp_path / "worker-tmp"
    assert copy.read_text() == '{"1": [[1, 5]]}'
    assert copy.name.endswith("-cert.json")


def test_the_runner_gives_the_processor_the_data_certification_and_the_corrections(tmp_path):
    cert = tmp_path / "cert.json"
    cert.write_text("{}")
    fileset = {
        "data": {"files": {"a.root": "Events"}, "metadata": {"is_data": True, "lumimask": str(cert)}},
        "mc": {"files": {"b.root": "Events"}, "metadata": {"is_data": False, "lumimask": str(tmp_path / "no")}},
    }
    proc = AnomalyProcessor(selection="inclusive")
    runner._carry_client_files(fileset, proc)
    assert proc.carried_files == {str(cert): b"{}"}
