"""Issue 19, reliability round 3: four classes of hostile input, each answered with exit status 2 (CLI) or a
one-line ``UserInputError`` (library), never a traceback, with nothing written outside the output folder, no
input file changed and no existing file replaced.

- Export output (``analysis.export.formats``, ``analysis.cli.export``): ``-o`` checked before any model is
  built; the file appears only by renaming a verified temporary file; a refused export changes nothing.
- COCO folders (``analysis.ablation.coco_data``, ``analysis.imaging.images``): every annotation field
  checked with its path; unusable persons skipped and counted; images bounded before decoding.
- Config inference (``hrnet_core.infer_config``): key names bounded in one pass, before any model is built.
- Messages (``hrnet_core.errors``): untrusted text shortened and escaped; no raw control character.

Every input is made here; no big file is checked in.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import socket
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from ablation_helpers import hand_made_coco
from PIL import ImageFile

import hrnet_core as hc
from analysis.ablation.coco_data import (
    Augment,
    DatasetError,
    KeypointDataset,
    PersonRecord,
    SkippedPersonsWarning,
    load_keypoint_data,
)
from analysis.ablation.keypoints import NUM_JOINTS
from analysis.cli import main
from analysis.export import formats
from analysis.imaging.images import ImageError, load_image, read_rgb
from hrnet_core.errors import UserInputError, quote

ic = importlib.import_module("hrnet_core.infer_config")  # the package exports the function of that name too
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

TINY = ("family: pose\ninput_size: [64, 64]\nwidth: 4\nmodules: [1, 1, 1]\nblocks: 1\n"
        "stage1: {blocks: 1, planes: 8}\nhead: {kind: v1, outputs: 3}\n")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
OLD = b"a previous export, kept byte for byte\n"


# ---- shared checks ------------------------------------------------------------------------------
def _inert(text: str) -> bool:
    """No character a terminal acts on: everything printable but the final newline."""
    return all(ch.isprintable() for ch in text.rstrip("\n"))


def _answered(argv, capsys, words: str) -> str:
    """Exit status 2, one short, inert line on stderr holding ``words``, no traceback."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2, (rc, err)
    assert err.count("\n") == 1 and err.startswith("hrnet-explorer ") and "Traceback" not in err, err
    assert words in err and len(err) < 600 and _inert(err), err
    return err


def _one_line(err: BaseException, words: str) -> str:
    text = str(err)
    assert isinstance(err, UserInputError) and "\n" not in text and _inert(text), text
    assert words in text and len(text) < 600, text
    return text


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture
def no_model_built(monkeypatch):
    """Fail the test if a model is built (the refusals below come before any)."""

    def built(*args, **kwargs):
        raise AssertionError("a model was built before the input was refused")

    monkeypatch.setattr(hc, "build_model", built)
    monkeypatch.setattr(ic, "build_on_meta", built)


# ---- class 3: export output ----------------------------------------------------------------------
def _read_only_folder(tmp_path: Path, monkeypatch) -> Path:
    """A folder that takes no new file, for root too (as a read-only mount): mode 555, and creating a file
    in it fails with EROFS."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    real_open = os.open

    def refusing(path, flags, *args, **kwargs):
        if Path(path).parent == folder and flags & os.O_CREAT:
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    return folder


def _socket_file(tmp_path: Path, monkeypatch) -> Path:
    """A Unix socket at the output name: exists, not a regular file, and opening it fails at once."""
    monkeypatch.chdir(tmp_path)  # socket paths are limited to ~100 characters: bind a short relative one
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock.onnx")
    sock.close()
    return tmp_path / "sock.onnx"


@pytest.mark.parametrize("case, words", [
    ("existing_folder", "is a folder"),
    ("proc", "not writable"),
    ("read_only_folder", "not writable"),
    ("parent_is_a_file", "cannot create the folder"),
    ("socket", "not a regular file"),
])
def test_export_output_is_refused_before_any_model_is_built(tmp_path, capsys, monkeypatch, tiny_config, no_model_built,
                                                            case, words):
    out = {
        "existing_folder": lambda: (tmp_path / "exports").mkdir() or tmp_path / "exports",
        "proc": lambda: Path("/proc/hrnet-explorer-export-test.onnx"),
        "read_only_folder": lambda: _read_only_folder(tmp_path, monkeypatch) / "m.onnx",
        "parent_is_a_file": lambda: tiny_config / "sub" / "m.onnx",
        "socket": lambda: _socket_file(tmp_path, monkeypatch),
    }[case]()
    before = _listing(tmp_path)
    _answered(["export", tiny_config, "--format", "onnx", "-o", out], capsys, words)
    assert _listing(tmp_path) == before and tiny_config.read_text() == TINY
    if case == "proc":
        assert not out.exists()


@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_library_export_checks_the_output_before_building(tmp_path, no_model_built, fmt):
    cfg = hc.load_config_text(TINY)
    for out, words in ((tmp_path, "is a folder"), (Path("/proc/x" + SUFFIX[fmt]), "cannot create a file"),
                       (tmp_path / "gone" / "m", "does not exist")):
        with pytest.raises(formats.ExportError) as info:
            formats.export(cfg, fmt, out)
        _one_line(info.value, words)
    assert _listing(tmp_path) == []


def _tiny_checkpoint(tmp_path: Path, scale: float = 1.0) -> Path:
    torch.manual_seed(0)
    model = hc.build_model(hc.load_config_text(TINY), init="default")
    state = {k: (v * scale if v.ndim == 4 else v) for k, v in model.state_dict().items()}
    path = tmp_path / "w.pth"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_a_refused_export_keeps_the_existing_file_and_leaves_no_temp(tmp_path, capsys, monkeypatch, tiny_config, fmt):
    out = tmp_path / f"model{SUFFIX[fmt]}"
    out.write_bytes(OLD)
    written = []
    real_write = formats.write_and_reload

    def spy_write(model, cfg, fmt_, x, path, *rest):
        written.append(Path(path))
        return real_write(model, cfg, fmt_, x, path, *rest)

    def failing_verify(ref, got, fmt_):
        assert written and written[-1].stat().st_size > 0 and out.read_bytes() == OLD
        raise formats.ExportError("the check failed (made to fail by the test)")

    monkeypatch.setattr(formats, "write_and_reload", spy_write)
    monkeypatch.setattr(formats, "verify", failing_verify)
    _answered(["export", tiny_config, "--format", fmt, "-o", out], capsys, "nothing exported")
    assert out.read_bytes() == OLD
    assert _listing(tmp_path) == sorted([tiny_config.name, out.name])  # the temporary file is gone
    (tmp,) = written
    assert tmp.parent == out.parent and tmp.name != out.name and not tmp.exists()


@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_the_final_name_is_only_made_by_renaming_a_verified_file(tmp_path, monkeypatch, fmt):
    """What a SIGKILL at any point leaves: until the rename, nothing under the final name (a fresh
    export) or the old file (an existing one); the rename takes the file that was verified."""
    cfg = hc.load_config_text(TINY)
    events = []
    real_write, real_verify, real_replace = formats.write_and_reload, formats.verify, os.replace
    fresh, existing = tmp_path / f"fresh{SUFFIX[fmt]}", tmp_path / f"existing{SUFFIX[fmt]}"
    existing.write_bytes(OLD)

    def spy_write(model, cfg_, fmt_, x, path, *rest):
        events.append(("write", Path(path)))
        return real_write(model, cfg_, fmt_, x, path, *rest)

    def spy_verify(ref, got, fmt_):
        out = current[0]  # a kill now tears nothing: no file yet, or the old one
        assert (not out.exists()) if out == fresh else out.read_bytes() == OLD
        events.append(("verify",))
        return real_verify(ref, got, fmt_)

    def spy_replace(src, dst):
        events.append(("replace", Path(src), Path(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(formats, "write_and_reload", spy_write)
    monkeypatch.setattr(formats, "verify", spy_verify)
    monkeypatch.setattr(os, "replace", spy_replace)
    current = []
    for out in (fresh, existing):
        events.clear()
        current[:] = [out]
        report = formats.export(cfg, fmt, out)
        (_, tmp), verified, (_, src, dst) = events
        assert verified == ("verify",) and src == tmp and dst == out and tmp.parent == out.parent
        assert report.path == str(out) and out.stat().st_size > 0 and out.read_bytes() != OLD
    assert _listing(tmp_path) == sorted([fresh.name, existing.name])


def test_an_interrupted_export_cleans_up(tmp_path, monkeypatch):
    out = tmp_path / "m.pt"
    out.write_bytes(OLD)

    def interrupted(ref, got, fmt_):
        raise KeyboardInterrupt

    monkeypatch.setattr(formats, "verify", interrupted)
    with pytest.raises(KeyboardInterrupt):
        formats.export(hc.load_config_text(TINY), "torchscript", out)
    assert out.read_bytes() == OLD and _listing(tmp_path) == ["m.pt"]


def test_weights_that_overflow_to_nan_are_refused_and_replace_nothing(tmp_path, capsys, tiny_config):
    ck = _tiny_checkpoint(tmp_path, scale=1e30)  # finite weights whose products overflow to inf, then NaN
    ck_digest = _digest(ck)
    out = tmp_path / "m.onnx"
    out.write_bytes(OLD)
    _answered(["export", tiny_config, "--checkpoint", ck, "--format", "onnx", "-o", out], capsys, "NaN or infinite")
    assert out.read_bytes() == OLD and _digest(ck) == ck_digest
    assert _listing(tmp_path) == sorted([tiny_config.name, ck.name, out.name])


# ---- class 4: COCO folders --------------------------------------------------------------------------
VAL_ANN = Path("annotations") / "person_keypoints_val2017.json"


def _edit_val(root: Path, edit) -> Path:
    ann = root / VAL_ANN
    doc = json.loads(ann.read_text())
    edit(doc)
    ann.write_text(json.dumps(doc))  # NaN and Infinity are written as JSON's extensions, read back by json
    return ann


def _set(where: str, field: str, value):
    """An edit setting ``doc[where][field]`` (``where`` like ``annotations[0]``) to ``value``."""
    key, index = where.rstrip("]").split("[")

    def edit(doc):
        doc[key][int(index)][field] = value(doc[key][int(index)]) if callable(value) else value

    return edit


def _keypoints(change):
    def value(ann):
        kps = list(ann["keypoints"])
        return change(kps)

    return value


def _set_item(kps, i, v):
    kps[i] = v
    return kps


COCO_CASES = {
    "keypoints_strings": (_set("annotations[0]", "keypoints", _keypoints(lambda k: [str(v) for v in k])),
                          "annotations[0].keypoints[0] is str '40.0'"),
    "keypoints_mixed": (_set("annotations[0]", "keypoints", _keypoints(lambda k: _set_item(k, 4, None))),
                        "annotations[0].keypoints[4] is None"),
    "keypoints_nested": (_set("annotations[0]", "keypoints", _keypoints(lambda k: [k[i:i + 3] for i in range(0, 51, 3)])),
                         "annotations[0].keypoints is a list of 17"),
    "keypoints_nested_51": (_set("annotations[0]", "keypoints", _keypoints(lambda k: [[v] for v in k])),
                            "annotations[0].keypoints[0] is a list of 1"),
    "keypoints_nan": (_set("annotations[0]", "keypoints", _keypoints(lambda k: _set_item(k, 3, float("nan")))),
                      "annotations[0].keypoints[3] is nan"),
    "keypoints_huge": (_set("annotations[0]", "keypoints", _keypoints(lambda k: _set_item(k, 0, 1e300))),
                       "annotations[0].keypoints[0] is 1e+300"),
    "keypoints_bool": (_set("annotations[0]", "keypoints", _keypoints(lambda k: _set_item(k, 2, True))),
                       "annotations[0].keypoints[2] is True"),
    "crowd_keypoints_strings": (_set("annotations[1]", "keypoints", _keypoints(lambda k: [str(v) for v in k])),
                                "annotations[1].keypoints[0]"),
    "area_string": (_set("annotations[0]", "area", "2500"), "annotations[0].area is str '2500'"),
    "area_missing": (lambda doc: doc["annotations"][0].pop("area"), "annotations[0].area missing"),
    "bbox_nan": (_set("annotations[0]", "bbox", [float("nan"), 25, 60, 75]), "annotations[0].bbox[0] is nan"),
    "bbox_infinite": (_set("annotations[0]", "bbox", [35, 25, float("inf"), 75]), "annotations[0].bbox[2] is inf"),
    "bbox_short": (_set("annotations[0]", "bbox", [35, 25, 60]), "annotations[0].bbox is a list of 3"),
    "iscrowd_string": (_set("annotations[0]", "iscrowd", "no"), "annotations[0].iscrowd is str 'no'"),
    "num_keypoints_float": (_set("annotations[0]", "num_keypoints", 16.5), "annotations[0].num_keypoints is 16.5"),
    "id_string": (_set("annotations[0]", "id", "1"), "annotations[0].id is str '1'"),
    "image_id_list": (_set("annotations[0]", "image_id", [1]), "annotations[0].image_id is a list of 1"),
    "annotation_not_object": (lambda doc: doc["annotations"].__setitem__(0, [1, 2]),
                              "(an entry that is not an object) at annotations[0]"),
    "file_name_number": (_set("images[0]", "file_name", 5), "images[0].file_name is 5"),
    "file_name_outside": (_set("images[0]", "file_name", "../../../etc/passwd"), "images[0].file_name is str"),
    "file_name_absolute": (_set("images[0]", "file_name", "/etc/passwd"), "images[0].file_name is str"),
    "file_name_control": (_set("images[0]", "file_name", "a\x1b]0;pwned\x07\x1b[2J.jpg"), "images[0].file_name"),
    "width_nan": (_set("images[0]", "width", float("nan")), "images[0].width is nan"),
    "height_zero": (_set("images[1]", "height", 0), "images[1].height is 0"),
    "category_without_id": (lambda doc: doc["categories"][0].pop("id"), "(an entry without 'id') at categories[0]"),
}


@pytest.mark.parametrize("case", list(COCO_CASES))
def test_malformed_annotations_name_the_field(tmp_path, case):
    edit, words = COCO_CASES[case]
    root = hand_made_coco(tmp_path / "coco")
    ann = _edit_val(root, edit)
    digest, before = _digest(ann), _listing(root / "images" / "val2017")
    with pytest.raises(DatasetError) as info:
        load_keypoint_data(root, "coco", (256, 192))
    text = _one_line(info.value, words)
    assert str(ann) in text
    assert _digest(ann) == digest and _listing(root / "images" / "val2017") == before


def test_json_nested_100000_deep_is_refused(tmp_path):
    root = hand_made_coco(tmp_path / "coco")
    ann = root / VAL_ANN
    ann.write_text('{"images": [], "categories": [], "annotations": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(DatasetError) as info:
        load_keypoint_data(root, "coco", (256, 192))
    _one_line(info.value, "nested too deeply")


def _degenerate_persons(doc) -> None:
    person = doc["annotations"][0]
    for i, (bbox, area) in enumerate((([50, 50, 1, 1], 1.0),       # clipped to 0 x 0: a singular crop
                                      ([35, 25, 60, 75], 0.0),      # zero area
                                      ([500, 500, 10, 10], 100.0)   # outside the 160 x 120 image
                                      )):
        doc["annotations"].append({**person, "id": 100 + i, "bbox": bbox, "area": area})


def test_unusable_persons_are_skipped_and_counted(tmp_path):
    root = hand_made_coco(tmp_path / "coco")
    _edit_val(root, _degenerate_persons)
    with pytest.warns(SkippedPersonsWarning, match=r"skipped 3 person annotation\(s\).*\(2 usable\)"):
        data = load_keypoint_data(root, "coco", (256, 192))
    assert [r.ann_id for r in data.val_records] == [1, 5]
    ds = KeypointDataset(data.val_records, (256, 192))
    assert all(torch.isfinite(ds[i][1]).all() for i in range(len(ds)))


def test_coinciding_joints_do_not_make_a_singular_half_body_crop(tmp_path):
    root = hand_made_coco(tmp_path / "coco")
    joints = np.zeros((NUM_JOINTS, 3), np.float32)
    joints[:] = (60.0, 50.0, 2.0)  # every joint labelled at one point
    image = str(root / "images" / "val2017" / "000000000001.jpg")
    rec = PersonRecord(image, 1, 1, (35.0, 25.0, 60.0, 75.0), np.array([65.0, 62.5], np.float32),
                       np.array([0.47, 0.47], np.float32), joints, 2500.0)
    aug = Augment(flip=False, scale=0.0, rotation=0.0, rotation_prob=0.0, half_body_prob=1.0, half_body_joints=0)
    img, target, weight, _ = KeypointDataset([rec], (256, 192), train=True, augment=aug)[(0, 0)]
    assert img.shape == (3, 256, 192) and torch.isfinite(target).all()


def _png_header(width: int, height: int) -> bytes:
    """A valid PNG whose header declares ``width`` x ``height`` RGB pixels over a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


BOMBS = {"72_megapixels": (9000, 8000), "100_megapixels": (10_000, 10_000), "900_megapixels": (30_000, 30_000)}


@pytest.fixture
def no_decoding(monkeypatch):
    def decoded(self, *args, **kwargs):
        raise AssertionError("pixels were decoded before the size was checked")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decoded)


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_decompression_bombs_are_refused_from_the_header(tmp_path, no_decoding, bomb):
    data = _png_header(*BOMBS[bomb])
    root = hand_made_coco(tmp_path / "coco")
    data_root = load_keypoint_data(root, "coco", (256, 192))  # reads annotations only
    image = Path(data_root.val_records[0].image)
    image.write_bytes(data)
    with pytest.raises(DatasetError) as info:
        KeypointDataset(data_root.val_records, (256, 192))[0]
    _one_line(info.value, "too large")
    for source in (image, data):  # a file and an upload's bytes (the app's path: capture -> load_image)
        with pytest.raises(ImageError) as info:
            load_image(source)
        _one_line(info.value, "too large")
    with pytest.raises(ImageError) as info:
        read_rgb(image)
    _one_line(info.value, "too large")
    assert image.read_bytes() == data


# ---- class 6: config inference from a checkpoint ----------------------------------------------------
class _TooManyKeys(RuntimeError):
    pass


class _CountingState(Mapping):
    """A state_dict that counts the keys iterated and stops the test once more than ``budget`` are: one pass
    over the names is allowed, the quadratic counting of old is not."""

    def __init__(self, state: dict, budget: int | None = None):
        self.state, self.seen = state, 0
        self.budget = len(state) if budget is None else budget

    def __getitem__(self, key):
        return self.state[key]

    def __len__(self) -> int:
        return len(self.state)

    def __iter__(self):
        for key in self.state:
            self.seen += 1
            if self.seen > self.budget:
                raise _TooManyKeys(f"examined more than {self.budget} keys")
            yield key


def _head_and_stem() -> dict:
    return {"conv1.weight": torch.zeros(4, 3, 3, 3), "layer1.0.conv1.weight": torch.zeros(8, 4, 1, 1),
            "final_layer.weight": torch.zeros(3, 4, 1, 1)}


def _modules(n: int) -> dict:
    return {f"stage2.{m}.branches.0.0.conv1.weight": torch.zeros(1) for m in range(n)}


KEY_CASES = {
    "20000_modules": (lambda: _head_and_stem() | _modules(20_000), "at most 12,000"),
    "5000_modules": (lambda: _head_and_stem() | _modules(5_000), "more than 32 modules in stage2"),
    "stage_9": (lambda: _head_and_stem() | {"stage9.0.branches.0.0.conv1.weight": torch.zeros(1)}, "stages 2 to 4"),
    "branch_7": (lambda: _head_and_stem() | {"stage2.0.branches.7.0.conv1.weight": torch.zeros(1)}, "4 branches"),
    "units_500": (lambda: _head_and_stem() | {"layer1.500.conv1.weight": torch.zeros(1)}, "64 residual units"),
    "index_1e6": (lambda: _head_and_stem() | {"final_layers.1000000.weight": torch.zeros(1)}, "entries in one sequence"),
    "key_3000_chars": (lambda: _head_and_stem() | {"stage2.0." + "x" * 3000 + ".weight": torch.zeros(1)},
                       "3,016 characters"),
    "key_not_a_string": (lambda: _head_and_stem() | {7: torch.zeros(1)}, "not a string"),
}


@pytest.mark.parametrize("case", list(KEY_CASES))
def test_key_names_are_bounded_in_one_pass_before_any_model(no_model_built, case):
    make, words = KEY_CASES[case]
    state = _CountingState(make())
    with pytest.raises(hc.NotAnHRNetError) as info:
        hc.infer_config(state)
    _one_line(info.value, words)
    assert state.seen <= len(state)


def _counting_mapping(monkeypatch) -> list[_CountingState]:
    """Route ``config_from_checkpoint``'s mapped state_dict through ``_CountingState``."""
    made = []
    real = ic.detect_mapping

    class Counting:
        def __init__(self, mapping):
            self.mapping = mapping

        def apply(self, raw):
            made.append(_CountingState(self.mapping.apply(raw)))
            return made[-1]

    monkeypatch.setattr(ic, "detect_mapping", lambda raw: Counting(real(raw)))
    return made


@pytest.mark.parametrize("modules, words", [(20_000, "at most 12,000"), (2_000, "more than 32 modules")])
def test_cli_refuses_a_checkpoint_declaring_thousands_of_modules(tmp_path, capsys, monkeypatch, no_model_built,
                                                                  modules, words):
    from safetensors.torch import save_file

    path = tmp_path / "modules.safetensors"
    save_file(_head_and_stem() | _modules(modules), str(path))
    digest = _digest(path)
    made = _counting_mapping(monkeypatch)
    _answered(["inspect", "--checkpoint", path], capsys, words)
    out = tmp_path / "m.onnx"
    _answered(["export", "--checkpoint", path, "--format", "onnx", "-o", out], capsys, words)
    assert all(s.seen <= len(s) for s in made) and len(made) == 2
    assert _digest(path) == digest and not out.exists()


# ---- class 7: messages never echo raw input -----------------------------------------------------------
class _HostileRepr:
    def __repr__(self) -> str:
        return "\x1b]0;pwned\x07\x1b[2J\x1b[H\u202e" + "x" * 10_000


class _HostileStr(str):
    def __repr__(self) -> str:
        return "'\x1b[2J\r\x9b31m'"


HOSTILE_TEXT = {
    "osc_title": "\x1b]0;pwned\x07", "clear_screen": "\x1b[2J\x1b[H", "carriage_return": "ok\roverwritten",
    "c1_csi": "\x9b31mred", "bidi_override": "abc\u202etxt.exe", "bidi_isolate": "\u2066x\u2069",
    "nul_del": "a\x00b\x7f", "line_separator": "a\u2028b", "surrogate": "a\ud800b", "zero_width": "a\u200bb",
    "long_escape": "\x1b[2J" + "k" * 3000 + "\x1b[0m", "bytes": b"\x1b[2J\r", "hostile_repr": _HostileRepr(),
    "hostile_str_repr": _HostileStr("x"), "nested": ["\x1b[2J", {"\u202e": "\r"}],
}


@pytest.mark.parametrize("case", list(HOSTILE_TEXT))
def test_quote_escapes_every_control_character(case):
    value = HOSTILE_TEXT[case]
    for bare in (False, True):
        text = quote(value, bare=bare)
        assert _inert(text) and len(text) <= 80, (case, text)


def test_quote_bare_drops_only_the_quote_marks():
    assert quote("conv1.weight", bare=True) == "conv1.weight" and quote("conv1.weight") == "'conv1.weight'"
    cut = quote("k" * 3000, 60, bare=True)
    assert len(cut) == 60 and cut.startswith("kkk") and cut.endswith("...") and "'" not in cut
    assert quote(5, bare=True) == "5" and quote(b"x", bare=True) == "b'x'"


def test_user_input_errors_carry_no_raw_control_characters():
    text = str(UserInputError("/tmp/a\x1b]0;pwned\x07\x1b[2J\r\u202e.pth: no such file\n(second line)"))
    assert _inert(text.replace("\n", " ")) and "\\x1b" in text and "\\u202e" in text


def _hostile_checkpoint(tmp_path: Path, key: str) -> Path:
    state = dict(hc.build_model(hc.load_config_text(TINY)).state_dict())
    state[key] = torch.zeros(1)
    path = tmp_path / "hostile.pth"
    torch.save(state, path)
    return path


LONG_KEY = "\x1b]0;pwned\x07\x1b[2J" + "k" * 3000 + "\u202e\r.weight"
SHORT_KEY = "\x1b[2J\x9b31m\u202ebad.weight"


@pytest.mark.parametrize("key", [LONG_KEY, SHORT_KEY], ids=["3000_chars", "short"])
def test_checkpoint_keys_in_messages_are_short_and_inert(tmp_path, capsys, tiny_config, key):
    ck = _hostile_checkpoint(tmp_path, key)
    digest = _digest(ck)
    _answered(["inspect", tiny_config, "--checkpoint", ck], capsys, "does not fit the model: 1 unexpected")
    _answered(["inspect", "--checkpoint", ck], capsys, "not a known HRNet checkpoint")
    with pytest.raises(hc.CheckpointError) as info:
        hc.load_checkpoint(hc.build_model(hc.load_config_text(TINY)), ck)
    _one_line(info.value, "1 unexpected (\\x1b")
    assert _digest(ck) == digest


def test_file_paths_in_messages_carry_no_raw_control_characters(tmp_path, capsys):
    hostile = "gone\x1b]0;pwned\x07\x1b[2J\u202e"
    _answered(["inspect", tmp_path / f"{hostile}.yaml"], capsys, "no such")
    _answered(["inspect", "--checkpoint", tmp_path / f"{hostile}.pth"], capsys, "no such checkpoint file")
    with pytest.raises(ImageError) as info:
        load_image(tmp_path / f"{hostile}.png")
    _one_line(info.value, "no such image file")
