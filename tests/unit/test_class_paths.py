"""Files name classes; vtrep imports only its own (and a few library ones) and refuses the rest before importing."""

from __future__ import annotations

import json
import sys

import pytest

from vtrep.eval.feature_source import build_datamodule, read_source
from vtrep.io.class_paths import check_class_path, import_class
from vtrep.io.pretrained import build_from_config


def test_hostile_source_json_is_refused_before_any_import(tmp_path, monkeypatch):
    hostile = tmp_path / "evil_payload_module.py"
    marker = tmp_path / "ran"
    hostile.write_text(f"open({str(marker)!r}, 'w').write('x')\nclass Data:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "source.json").write_text(json.dumps({"data": {"class_path": "evil_payload_module.Data"}}))
    with pytest.raises(ValueError, match="refusing to import 'evil_payload_module.Data' named in a features folder"):
        build_datamodule(read_source(tmp_path)["data"])
    assert not marker.exists()
    assert "evil_payload_module" not in sys.modules


@pytest.mark.parametrize("bad", ["os.system", "vtrepx.Evil", "vtrep", "", None, "vtrep.tasks;import os"])
def test_names_outside_vtrep_or_not_dotted_are_refused(bad):
    with pytest.raises(ValueError):
        check_class_path(bad)


def test_own_classes_import_and_non_classes_are_refused():
    assert import_class("datamodules.SyntheticVideoDataModule").__name__ == "SyntheticVideoDataModule"
    with pytest.raises(ValueError, match="not a class"):
        import_class("vtrep.io.class_paths.import_class")


def test_artefact_config_naming_a_foreign_class_is_refused():
    with pytest.raises(ValueError, match="refusing to import 'subprocess.Popen'"):
        build_from_config({"class_path": "subprocess.Popen", "config": {"args": ["true"]}})
