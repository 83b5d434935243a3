"""CMS Open Data 2012 manifest: records, filesets from cached lists, and the no-network error."""

from __future__ import annotations

import dataclasses

import pytest
from cms_anomaly.analyses.cli import main
from cms_anomaly.datasets import opendata


def test_manifest_has_the_top_rediscovery_records():
    manifest = opendata.load_manifest("2012")
    by_recid = {r.recid: r for r in manifest.records}
    assert by_recid[31127].dataset == "SingleMu_Run2012B"
    assert by_recid[31127].readable
    assert by_recid[31133].dataset == "SingleMu_Run2012C"
    assert by_recid[31133].is_data
    assert by_recid[31102].readable
    assert by_recid[31102].xsec_pb == pytest.approx(252.9)
    aod = {r.recid for r in manifest.records if not r.readable}
    assert {9863, 9864, 9865, 7719, 7721, 7722, 7723, 9587} <= aod
    assert manifest.sqrt_s == 8000.0


def test_fileset_from_cached_file_lists(tmp_path):
    manifest = opendata.load_manifest()
    for rec in manifest.records:
        if rec.readable:
            (tmp_path / f"{rec.recid}.txt").write_text(
                f"# record {rec.recid}\n{manifest.eos_prefix}/{rec.directory}/A.root\n{manifest.eos_prefix}/{rec.directory}/B.root\n"
            )
    fileset = opendata.build_fileset(cache=tmp_path)
    assert set(fileset) == {"SingleMu_Run2012B", "SingleMu_Run2012C", "TTbar_aMCatNLO"}
    data = fileset["SingleMu_Run2012B"]
    assert list(data["files"].values()) == ["Events", "Events"]
    assert data["metadata"]["is_data"]
    assert data["metadata"]["lumi_pb"] == pytest.approx(4429.0)
    assert fileset["TTbar_aMCatNLO"]["metadata"]["xsec_pb"] == pytest.approx(252.9)
    with pytest.raises(opendata.ManifestError, match="exist only as AOD"):
        opendata.build_fileset(cache=tmp_path, datasets=["W1JetsToLNu"])
    with pytest.raises(opendata.ManifestError, match="unknown dataset"):
        opendata.build_fileset(cache=tmp_path, datasets=["WJets"])


def test_no_network_gives_one_clear_error(tmp_path):
    manifest = dataclasses.replace(opendata.load_manifest(), portal="https://cms-anomaly-test.invalid")
    record = manifest.records[0]
    with pytest.raises(opendata.OpenDataUnavailableError) as err:
        opendata.resolve_files(record, manifest, cache=tmp_path, timeout=5)
    message = str(err.value)
    assert "record 31127" in message
    assert f"{record.recid}.txt" in message


def test_cli_reports_project_errors_without_traceback(tmp_path, capsys, monkeypatch):
    def offline(*args, **kwargs):
        raise opendata.OpenDataUnavailableError("cannot reach the CERN Open Data portal for record 31127")

    monkeypatch.setattr(opendata, "resolve_files", offline)
    assert main(["opendata", "fileset", "--out", str(tmp_path / "fs.json")]) == 2
    err = capsys.readouterr().err
    assert "error: cannot reach the CERN Open Data portal" in err
    assert "Traceback" not in err
    assert not (tmp_path / "fs.json").exists()


def test_generate_list_and_help(capsys):
    assert main(["generate", "--list"]) == 0
    out = capsys.readouterr().out
    for name in (
        "wjets",
        "zjets",
        "ttbar",
        "qcd",
        "ato4l",
        "lq_btau",
        "h0_tautau",
        "hplus_taunu",
        "zprime_xy",
        "hplus_t",
    ):
        assert name in out
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--help"])
    assert exc.value.code == 0
    assert "--scheduler" in capsys.readouterr().out


def test_opendata_list_shows_the_readable_records_and_the_luminosity(capsys):
    """``opendata list``: the NanoAODRun1 records are usable, the AOD ones say what they need; the two
    SingleMu 2012 runs carry the CMS luminosities of the portal (4.429 and 7.152 fb^-1)."""
    assert main(["opendata", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    usable = {name for name, line in rows.items() if line.rstrip().endswith("yes")}
    assert usable == {"SingleMu_Run2012B", "SingleMu_Run2012C", "TTbar_aMCatNLO"}
    assert all("needs AOD -> NanoAOD" in rows[name] for name in set(rows) - usable)
    assert " 4.429 " in rows["SingleMu_Run2012B"]
    assert " 7.152 " in rows["SingleMu_Run2012C"]
    assert "252.9" in rows["TTbar_aMCatNLO"]
