"""CMS Open Data 2012 manifest: records, filesets from cached lists, and the no-network error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cms_anomaly.datasets import opendata

from cms_anomaly.cli import main


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


def test_2016_manifest_lists_the_nanoaod_records_with_their_sources():
    """The 2016 NanoAODv9 records: SingleMuon / SingleElectron Run2016G-H (16.39 fb^-1 together per primary
    dataset) and the W, Z/gamma*, ttbar, single-top and diboson simulation, each with a cross section."""
    manifest = opendata.load_manifest("2016")
    assert manifest.sqrt_s == 13000.0
    assert manifest.era == "2016postVFP_UL"
    assert manifest.lumimask == "Cert_271036-284044_13TeV_Legacy2016_Collisions16_JSON.txt"
    by_recid = {r.recid: r for r in manifest.records}
    data = {r.dataset: r for r in manifest.records if r.is_data}
    assert {n: r.recid for n, r in data.items()} == {
        "SingleMuon_Run2016G": 30530,
        "SingleMuon_Run2016H": 30563,
        "SingleElectron_Run2016G": 30529,
        "SingleElectron_Run2016H": 30562,
    }
    assert {r.primary_dataset for r in data.values()} == {"SingleMuon", "SingleElectron"}
    for pd in ("SingleMuon", "SingleElectron"):
        assert sum(r.lumi_fb for r in data.values() if r.primary_dataset == pd) == pytest.approx(16.39)
    assert by_recid[67993].dataset == "TTToSemiLeptonic"
    assert by_recid[67993].xsec_pb == pytest.approx(364.35)
    assert by_recid[69747].process == "wjets"
    assert by_recid[35671].process == "zjets"
    assert {r.process for r in manifest.records if not r.is_data} == {
        "ttbar",
        "wjets",
        "zjets",
        "single_top",
        "diboson",
    }
    assert all(r.readable and r.format == "NanoAODv9" for r in manifest.records)
    assert all(r.xsec_pb and r.xsec_pb > 0 for r in manifest.records if not r.is_data)


@pytest.mark.parametrize(("campaign", "era"), [("2012", "2012"), ("2016", "2016postVFP_UL")])
def test_fileset_sets_the_era_the_certified_json_and_the_primary_dataset(tmp_path, campaign, era):
    """Data get ``lumimask`` (the packaged CMS JSON of their era, an existing file) and ``primary_dataset``;
    simulation gets neither; every dataset gets ``era``."""
    import json

    manifest = opendata.load_manifest(campaign)
    for rec in manifest.records:
        (tmp_path / f"{rec.recid}.txt").write_text(f"{manifest.eos_prefix}/{rec.directory}A.root\n")
    fileset = opendata.build_fileset(campaign=campaign, cache=tmp_path)
    assert fileset
    for name, entry in fileset.items():
        meta = entry["metadata"]
        assert meta["era"] == era, name
        if meta["is_data"]:
            runs = json.loads(Path(meta["lumimask"]).read_text())
            assert meta["lumimask"].endswith(manifest.lumimask)
            assert len(runs) > 300
            assert meta["primary_dataset"] in ("SingleMu", "SingleMuon", "SingleElectron")
        else:
            assert "lumimask" not in meta, name
            assert "primary_dataset" not in meta, name


def test_files_are_read_from_the_record_file_indexes(tmp_path):
    """A record whose API JSON lists ``*_file_index.txt`` files instead of ROOT files (the 2016 records): the
    ROOT URLs are those of its index files under the record's directory, then cached per record id. The
    portal here is a local directory laid out as opendata.cern.ch (``file://``)."""
    import json

    portal = tmp_path / "portal"
    manifest = dataclasses.replace(opendata.load_manifest("2016"), portal=portal.as_uri())
    record = next(r for r in manifest.records if r.dataset == "SingleMuon_Run2016G")
    prefix = f"{manifest.eos_prefix}/{record.directory}"
    names = ["CMS_Run2016G_SingleMuon_NANOAOD_UL2016_MiniAODv2_NanoAODv9-v1_1_file_index.txt"]
    names.append(names[0].replace("_1_", "_2_"))
    payload = {"metadata": {"_files": [{"key": n, "uri": f"root://eospublic.cern.ch//eos/x/{n}"} for n in names]}}
    (portal / "api" / "records").mkdir(parents=True)
    (portal / "api" / "records" / str(record.recid)).write_text(json.dumps(payload))
    files = portal / "record" / str(record.recid) / "files"
    files.mkdir(parents=True)
    (files / names[0]).write_text(f"{prefix}120000/A.root\n{prefix}120000/B.root\n")
    (files / names[1]).write_text(f"{prefix}130000/C.root\nroot://elsewhere//other/D.root\n")
    cache = tmp_path / "cache"
    got = opendata.resolve_files(record, manifest, cache=cache)
    assert got == [f"{prefix}120000/A.root", f"{prefix}120000/B.root", f"{prefix}130000/C.root"]
    assert (cache / f"{record.recid}.txt").is_file()
    # the cached list is used from now on, without the portal
    (portal / "api" / "records" / str(record.recid)).unlink()
    assert opendata.resolve_files(record, manifest, cache=cache) == got


def test_opendata_list_2016_and_every_campaign_is_offered(capsys):
    assert main(["opendata", "list", "--campaign", "2016"]) == 0
    out = capsys.readouterr().out
    assert "era 2016" in out
    assert "Cert_271036-284044_13TeV_Legacy2016_Collisions16_JSON.txt" in out
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert " 30530 " in rows["SingleMuon_Run2016G"]
    assert " 364.35 " in rows["TTToSemiLeptonic"]
    for campaign in opendata.MANIFESTS:
        assert main(["opendata", "list", "--campaign", campaign]) == 0
