import pytest

from robust_edit import data

SHARED = data.shared_data_dir()
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not beside this checkout")


@needs_shared
@pytest.mark.parametrize("ref", sorted(data.REAL_DATASETS))
def test_every_real_csv_reads_in_its_format(ref):
    fmt, path = data.locate(ref)
    assert path.is_relative_to(SHARED)
    records = data.load(ref)
    assert records
    if fmt == "road":
        assert {r.type for r in records} <= {"Role", "Appearance"}
        assert all(len(r.positives) == 5 and len(r.negatives) == 5 for r in records)
    elif fmt in ("professions", "i2p", "coco"):
        assert all(isinstance(r.evaluation_seed, int) for r in records)
        # I2P has one row (case 2260) with an empty prompt; the loader keeps it as it is.
        assert sum(not r.prompt for r in records) <= (1 if ref == "i2p" else 0)


@needs_shared
def test_real_counts_match_the_readme():
    assert len(data.load("road:test")) == 90
    assert sum(r.type == "Appearance" for r in data.load("road:test")) == 49
    assert len(data.load("i2p")) == 4703
    assert len(data.load("timed:gender")) == 35
    assert len({r.group for r in data.load("uce:professions")}) == 225


@pytest.mark.parametrize("ref", ["world:road", "world:professions", "world:unsafe", "world:coco"])
def test_world_csvs_read_through_the_same_loaders(ref):
    records = data.load(ref)
    assert records


def test_world_road_edits_are_well_formed():
    from robust_edit.world import vocab as V

    edits = data.load("world:road")
    assert {e.type for e in edits} == {"Appearance", "Role"}
    for e in edits:
        for prompt, old, new in e.positives:
            assert old != new
        if e.type == "Role":
            assert V.ROLES[e.prompt] == e.old and e.new in V.IDENTITIES


def test_unknown_dataset_and_missing_columns(tmp_path):
    with pytest.raises(ValueError, match="unknown"):
        data.locate("road:nope")
    bad = tmp_path / "bad.csv"
    bad.write_text("Type,Prompt\nRole,x\n")
    with pytest.raises(ValueError, match="missing column"):
        data.read_road(bad)


def test_real_datasets_are_pinned_to_a_commit():
    assert len(data.REAL_DATASETS) == 12
    for ref, real in data.REAL_DATASETS.items():
        assert len(real.commit) == 40 and real.commit in real.url and len(real.sha256) == 64, ref


def _pinned_copy(tmp_path, monkeypatch, content: bytes):
    """road:validation pinned to the sha256 of b"pinned", its origin serving `content`; no
    local copy. Returns where the fetched file is kept."""
    import hashlib
    import shutil
    from dataclasses import replace

    real = data.REAL_DATASETS["road:validation"]
    monkeypatch.setitem(data.REAL_DATASETS, "road:validation",
                        replace(real, sha256=hashlib.sha256(b"pinned").hexdigest()))
    origin = tmp_path / "origin.csv"
    origin.write_bytes(content)

    def fetch(url, to):  # the network: only the pinned commit's file is asked for
        assert url == f"https://raw.githubusercontent.com/technion-cs-nlp/ReFACT/{real.commit}/road/RoAD_validation.csv"
        shutil.copyfile(origin, to)

    monkeypatch.setattr(data.urllib.request, "urlretrieve", fetch)
    monkeypatch.setenv("ROBUST_EDIT_DATA", str(tmp_path / "no-shared-copy"))
    monkeypatch.setenv("ROBUST_EDIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "data" / real.path


def test_a_fetched_file_is_kept_only_with_the_pinned_checksum(tmp_path, monkeypatch):
    cached = _pinned_copy(tmp_path, monkeypatch, b"changed upstream")
    with pytest.raises(ValueError, match="sha256"):
        data.locate("road:validation")
    assert not cached.exists() and not list(cached.parent.glob(".*"))
    _pinned_copy(tmp_path, monkeypatch, b"pinned")
    assert data.locate("road:validation")[1] == cached and cached.read_bytes() == b"pinned"


def test_a_modified_local_copy_is_refused(tmp_path, monkeypatch):
    cached = _pinned_copy(tmp_path, monkeypatch, b"pinned")
    data.locate("road:validation")
    cached.write_bytes(b"edited by hand")
    with pytest.raises(ValueError, match="restore the original"):
        data.locate("road:validation")
