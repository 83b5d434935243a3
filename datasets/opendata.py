"""Real CMS Open Data manifests (2012, 8 TeV; 2016, 13 TeV) as coffea filesets.

A manifest (``manifests/cms2012.toml``, ``manifests/cms2016.toml``) lists portal records: record id,
format, cross section or luminosity, and, per campaign, the era and the certified-luminosity JSON of
its data (``lumimasks/``, package data). ``NanoAODRun1`` (2012) and ``NanoAODv9`` (2016) records are
readable by this project; their file lists are resolved from the CERN Open Data portal (record API:
the ROOT files it lists, or those of the record's ``*_file_index.txt`` files) and cached as one text
file per record id (``<cache>/<recid>.txt``, one URL per line), so a fileset is built once with a
network and reused without one. ``AOD`` records are listed with the reason they cannot be used
directly (they need the CMSSW AOD -> NanoAOD step).

The fileset's metadata per dataset: ``era`` (the trigger table's era), ``lumimask`` (data: the
absolute path of the packaged JSON), ``primary_dataset`` (data), ``xsec_pb`` (simulation),
``lumi_pb`` (data), ``recid``, ``sqrt_s``, ``format``.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cms_anomaly.core.atomic import write_text_atomic

log = logging.getLogger(__name__)

MANIFESTS = {"2012": "cms2012.toml", "2016": "cms2016.toml"}
#: record formats this project reads (the others need CMSSW first)
READABLE_FORMATS = ("NanoAODRun1", "NanoAODv9")
FORMATS = (*READABLE_FORMATS, "AOD")


class OpenDataUnavailableError(RuntimeError):
    """The CERN Open Data portal cannot be reached (no network) and no cached file list exists."""


class ManifestError(ValueError):
    """A manifest is malformed; the message names the file and the record."""


@dataclass(frozen=True)
class Record:
    dataset: str
    process: str
    recid: int
    format: str
    is_data: bool
    directory: str = ""
    xsec_pb: float | None = None
    lumi_fb: float | None = None
    #: the primary dataset of a data record (``SingleMuon``): which trigger paths apply to it
    primary_dataset: str = ""
    note: str = ""

    @property
    def readable(self) -> bool:
        return self.format in READABLE_FORMATS


@dataclass(frozen=True)
class Manifest:
    campaign: str
    sqrt_s: float
    eos_prefix: str
    portal: str
    records: tuple[Record, ...]
    #: the era of the trigger table (``processors/dataquality.py``)
    era: str = ""
    #: file name of the data's certified-luminosity JSON in ``lumimasks/``
    lumimask: str = ""


def lumimask_path(name: str) -> Path:
    """Absolute path of a packaged certified-luminosity JSON (``lumimasks/<name>``)."""
    resource = resources.files("cms_anomaly.datasets") / "lumimasks" / name
    path = Path(str(resource))
    if not path.is_file():
        raise ManifestError(f"certified-luminosity JSON {name!r} is not in the package ({path})")
    return path


def load_manifest(campaign: str = "2012") -> Manifest:
    """Load the packaged manifest of a campaign (``"2012"``, ``"2016"``)."""
    if campaign not in MANIFESTS:
        raise ManifestError(f"unknown campaign {campaign!r}; known: {sorted(MANIFESTS)}")
    resource = resources.files("cms_anomaly.datasets") / "manifests" / MANIFESTS[campaign]
    data = tomllib.loads(resource.read_text())
    records = []
    for raw in data.get("record", []):
        try:
            records.append(Record(**raw))
        except TypeError as err:
            raise ManifestError(f"{resource}: record {raw.get('recid', '?')}: {err}") from err
        rec = records[-1]
        if rec.format not in FORMATS:
            raise ManifestError(f"{resource}: record {rec.recid}: unknown format {rec.format!r}")
        if not rec.is_data and rec.xsec_pb is None:
            raise ManifestError(f"{resource}: MC record {rec.recid} has no xsec_pb")
    return Manifest(
        campaign=data["campaign"],
        sqrt_s=float(data["sqrt_s"]),
        eos_prefix=data["eos_prefix"],
        portal=data["portal"],
        records=tuple(records),
        era=str(data.get("era", "")),
        lumimask=str(data.get("lumimask", "")),
    )


def _strings(payload: object) -> list[str]:
    """Every string anywhere in a portal record's JSON."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            found.append(node)

    walk(payload)
    return found


def _root_urls(payload: object) -> list[str]:
    """Every ``root://...root`` URI anywhere in a portal record's JSON."""
    return sorted({s for s in _strings(payload) if s.startswith("root://") and s.endswith(".root")})


def _index_names(payload: object) -> list[str]:
    """The file names of the ``*_file_index.txt`` files a record's JSON lists (large records list
    their ROOT files there, one ``root://`` URL per line)."""
    return sorted({s.rsplit("/", 1)[-1] for s in _strings(payload) if s.endswith("_file_index.txt")})


def _read_url(url: str, *, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def resolve_files(record: Record, manifest: Manifest, *, cache: str | os.PathLike, timeout: float = 20.0) -> list[str]:
    """File URLs of a NanoAODRun1 record: from ``<cache>/<recid>.txt`` or from the portal."""
    cache = Path(cache)
    cached = cache / f"{record.recid}.txt"
    if cached.is_file():
        return [line.strip() for line in cached.read_text().splitlines() if line.strip() and not line.startswith("#")]
    url = f"{manifest.portal}/api/records/{record.recid}"
    try:
        payload = json.loads(_read_url(url, timeout=timeout))
        files = [u for u in _root_urls(payload) if record.directory in u]
        if not files:
            for name in _index_names(payload):
                text = _read_url(f"{manifest.portal}/record/{record.recid}/files/{name}", timeout=timeout).decode()
                files += [u for u in text.split() if u.startswith("root://") and record.directory in u]
            files = sorted(set(files))
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise OpenDataUnavailableError(
            f"cannot reach the CERN Open Data portal for record {record.recid} ({record.dataset}): {url}: {err}. "
            f"Without a network, put the record's file URLs (one per line, under {manifest.eos_prefix}/{record.directory}/) "
            f"into {cached} and run again."
        ) from err
    if not files:
        raise OpenDataUnavailableError(
            f"record {record.recid} ({record.dataset}): the portal listed no ROOT files under {record.directory}"
        )
    write_text_atomic(cached, f"# CERN Open Data record {record.recid}: {record.dataset}\n" + "\n".join(files) + "\n")
    return files


def build_fileset(*, campaign: str = "2012", cache: str | os.PathLike, datasets: list[str] | None = None) -> dict:
    """A coffea fileset of the readable (NanoAOD) records, with cross sections, luminosities, the era and,
    for data, the certified-luminosity JSON and the primary dataset (see the module docstring)."""
    manifest = load_manifest(campaign)
    wanted = [r for r in manifest.records if r.readable and (datasets is None or r.dataset in datasets)]
    if datasets is not None:
        unknown = sorted(set(datasets) - {r.dataset for r in manifest.records})
        unusable = sorted({r.dataset for r in manifest.records if r.dataset in datasets and not r.readable})
        if unknown:
            raise ManifestError(f"unknown dataset(s) {unknown}; known: {[r.dataset for r in manifest.records]}")
        if unusable:
            raise ManifestError(f"dataset(s) {unusable} exist only as AOD and need CMSSW's AOD -> NanoAOD step first")
    fileset = {}
    for rec in wanted:
        files = resolve_files(rec, manifest, cache=cache)
        meta = {
            "process": rec.process,
            "recid": rec.recid,
            "is_data": rec.is_data,
            "is_signal": False,
            "sqrt_s": manifest.sqrt_s,
            "format": rec.format,
        }
        if manifest.era:
            meta["era"] = manifest.era
        if rec.is_data and manifest.lumimask:
            meta["lumimask"] = str(lumimask_path(manifest.lumimask))
        if rec.is_data and rec.primary_dataset:
            meta["primary_dataset"] = rec.primary_dataset
        if rec.xsec_pb is not None:
            meta["xsec_pb"] = rec.xsec_pb
        if rec.lumi_fb is not None:
            meta["lumi_pb"] = rec.lumi_fb * 1000.0
        if rec.note:
            meta["note"] = rec.note
        fileset[rec.dataset] = {"files": dict.fromkeys(files, "Events"), "metadata": meta}
    return fileset
