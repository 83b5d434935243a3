"""Remote input: files read through a real XRootD server and an HTTP server with byte ranges, on loopback.

The histograms over ``root://`` and ``http://`` URLs must equal those over the same local files, bin for
bin; a stopped server is one line naming the URL (or a listed skip with ``--skip-bad-files``), before
the run or in the middle of it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from cms_anomaly.processors import runner
from cms_anomaly.processors.processor import AnomalyProcessor
from servers import range_http_server, world_readable_dir, xrootd_server

SAMPLES = ("dy", "ttbar2015", "pfnano")


@pytest.fixture(scope="module")
def served(real_nanoaod_files):
    """Copies of the real samples in a world-readable directory, served by XRootD and HTTP."""
    root = world_readable_dir("cms-anomaly-served-")
    for name in SAMPLES:
        target = root / f"{name}.root"
        shutil.copy(real_nanoaod_files[name], target)
        target.chmod(0o644)
    with xrootd_server(root) as xrd, range_http_server(root) as web:
        yield root, xrd, web
    shutil.rmtree(root, ignore_errors=True)


def _fileset(paths):
    return {
        name: {"files": {p: "Events"}, "metadata": {"is_data": name == "dy"}}
        for name, p in zip(SAMPLES, paths, strict=True)
    }


def _run(fileset, **kwargs):
    with runner.make_executor("iterative") as ex:
        return runner.run_processor(
            fileset, AnomalyProcessor(selection="inclusive"), executor=ex, chunksize=300, timeout=10, **kwargs
        )


def _assert_same_histograms(a, b):
    assert sorted(a) == sorted(b)
    for dataset in a:
        assert a[dataset]["cutflow"] == b[dataset]["cutflow"]
        assert sorted(a[dataset]["hists"]) == sorted(b[dataset]["hists"])
        for name, h in a[dataset]["hists"].items():
            other = b[dataset]["hists"][name]
            np.testing.assert_array_equal(h.values(flow=True), other.values(flow=True), err_msg=f"{dataset}/{name}")
            np.testing.assert_array_equal(
                h.variances(flow=True), other.variances(flow=True), err_msg=f"{dataset}/{name}"
            )


@pytest.mark.parametrize("protocol", ["root", "http"])
def test_remote_histograms_equal_local_bin_for_bin(served, protocol):
    root, xrd, web = served
    local = [str(root / f"{n}.root") for n in SAMPLES]
    server = xrd if protocol == "root" else web
    remote = [server.url(p) for p in local]
    assert all(u.startswith(f"{protocol}://") for u in remote)
    out_local, out_remote = _run(_fileset(local)), _run(_fileset(remote))
    assert out_local["ttbar2015"]["nevents"] > 0
    _assert_same_histograms(out_local, out_remote)


def test_missing_remote_file_is_one_line_naming_the_url(served):
    _, xrd, _ = served
    url = xrd.url(served[0] / "no-such-file.root")
    with pytest.raises(runner.InputFileError) as err:
        runner.check_files({"a": {"files": {url: "Events"}, "metadata": {}}}, timeout=5)
    message = str(err.value)
    assert url in message
    assert "no such file" in message
    assert "\n" not in message


@pytest.fixture
def private_server(real_nanoaod_files):
    """A server of our own, which a test may stop: (directory, server, local paths)."""
    root = world_readable_dir("cms-anomaly-stoppable-")
    paths = []
    for name in ("dy", "dimuon"):
        target = root / f"{name}.root"
        shutil.copy(real_nanoaod_files[name], target)
        target.chmod(0o644)
        paths.append(target)
    with xrootd_server(root) as xrd:
        yield root, xrd, paths
    shutil.rmtree(root, ignore_errors=True)


def test_stopped_server_is_one_line_or_a_listed_skip(private_server):
    _, xrd, paths = private_server
    urls = [xrd.url(p) for p in paths]
    fileset = {"a": {"files": dict.fromkeys(urls, "Events"), "metadata": {}}}
    assert runner.check_files(fileset, timeout=5)[0] == fileset
    xrd.stop()
    with pytest.raises(runner.InputFileError) as err:
        runner.check_files(fileset, timeout=5)
    assert urls[0] in str(err.value)
    assert "cannot read the remote file" in str(err.value)
    assert "\n" not in str(err.value)
    out = _run(fileset, skip_bad_files=True)
    assert sorted(s.split(": ")[0] for s in out["a"]["skipped_files"][:2]) == sorted(urls)
    assert "hists" not in out["a"]


#: servers a processor may stop, by id (the processor is pickled, a server is not)
_SERVERS = {}


class _StopServerAfterFirstChunk(AnomalyProcessor):
    """The processor, stopping the XRootD server once its first chunk is done (a server dying mid-run)."""

    def __init__(self, server, **kwargs):
        super().__init__(**kwargs)
        _SERVERS[id(server)] = server
        self.server_id = id(server)

    def process(self, events):
        out = super().process(events)
        _SERVERS[self.server_id].stop()
        return out


def test_server_stopped_mid_run_is_skipped_or_named(private_server):
    _, xrd, paths = private_server
    urls = [xrd.url(p) for p in paths]
    fileset = {"a": {"files": dict.fromkeys(urls, "Events"), "metadata": {}}}
    proc = _StopServerAfterFirstChunk(xrd, selection="inclusive")
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fileset, proc, executor=ex, chunksize=1000, timeout=5, skip_bad_files=True)
    # the first file was processed before the server stopped; the second could not be read
    assert out["a"]["nevents"] == 40
    assert out["a"]["cutflow"]["events"]["all"] == 40
    # ... and the run lists the file it could not read, with the events lost
    assert out["a"]["skipped_files"] == [f"{urls[1]}: 40 of 40 events not read (read failed during the run)"]


#: a process that reads two files over XRootD, its server stopping after the first chunk, then exits
_DIES_MID_RUN = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_remote import _StopServerAfterFirstChunk
from servers import xrootd_server
from cms_anomaly.processors import runner

root = Path({root!r})
with xrootd_server(root) as xrd:
    urls = [xrd.url(root / name) for name in ("dy.root", "dimuon.root")]
    fileset = {{"a": {{"files": dict.fromkeys(urls, "Events"), "metadata": {{}}}}}}
    proc = _StopServerAfterFirstChunk(xrd, selection="inclusive")
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fileset, proc, executor=ex, chunksize=1000, timeout=5, skip_bad_files=True)
print(out["a"]["nevents"])
"""


def test_a_server_gone_mid_run_prints_no_traceback_at_exit(private_server):
    """fsspec-xrootd closes its cached file handles as the interpreter exits and, the server gone, prints
    a traceback; the runner closes them itself after the run."""
    from pathlib import Path

    root, xrd, _ = private_server
    xrd.stop()  # the script starts its own server on the same directory
    script = _DIES_MID_RUN.format(tests=str(Path(__file__).parent), root=str(root))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "40"
    assert "Traceback" not in done.stderr, done.stderr


def test_cli_run_over_root_urls_and_a_stopped_server(private_server, tmp_path):
    _, xrd, paths = private_server
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps({"dy": {"files": [xrd.url(paths[0])], "metadata": {"is_data": True}}}))
    command = [sys.executable, "-m", "cms_anomaly.cli", "run", str(fileset), "--selection", "inclusive"]
    command += ["--executor", "iterative", "--timeout", "5"]
    done = subprocess.run([*command, "--out", str(tmp_path / "out")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "histograms.coffea").is_file()
    xrd.stop()
    done = subprocess.run([*command, "--out", str(tmp_path / "out2")], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert xrd.url(paths[0]) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_bench_processor_over_xrootd_prints_the_ratio_to_local(served, capsys):
    import re

    from cms_anomaly.cli import main

    root, xrd, _ = served
    path = str(root / "ttbar2015.root")
    argv = ["bench", "processor", path, "--workers", "0", "--chunksize", "100", "--selection", "inclusive"]
    assert main([*argv, "--xrootd", f"root://127.0.0.1:{xrd.port}/"]) == 0
    out = capsys.readouterr().out
    rates = dict(re.findall(r"^processor in-process, (.+?)\s+(\d+)\s+[\d.]+$", out, re.MULTILINE))
    assert set(rates) == {"local files", "over XRootD"}, out
    assert all(int(r) > 0 for r in rates.values())
    assert re.search(r"^target XRootD / local >= 0.9 .*: (PASS|MISS)$", out, re.MULTILINE), out
