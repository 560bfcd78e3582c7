"""The bounded YAML loader (hrnet_core.safe_yaml): limits, YAML 1.2 scalars, field-named errors."""

from __future__ import annotations

import time

import pytest
import yaml
from conftest import SHARED

import hrnet_core as hc
from hrnet_core import safe_yaml as sy
from hrnet_core.errors import QUOTE_LIMIT, quote

OFFICIAL = sorted((SHARED / "official").rglob("*.yaml"))


def _refused(text: str, field: str, words: str) -> hc.ConfigError:
    start = time.process_time()
    with pytest.raises(hc.ConfigError) as info:
        sy.load_yaml(text, "t.yaml")
    assert time.process_time() - start < 5  # CPU seconds: a loaded machine does not inflate them
    assert info.value.field == field and words in info.value.message, str(info.value)
    assert "\n" not in str(info.value)
    return info.value


def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\nname: *a{levels - 1}\n"


@pytest.mark.parametrize("text, field, words", [
    (_bomb(), "a0", "anchors and aliases"),
    ("width: 32\nwidth: 48\n", "width", "duplicate key"),
    ("width: 32\n1: 2\n", "'1'", "keys must be strings"),
    ("width: 32\nnull: 2\n", "'null'", "keys must be strings"),
    ("? [a, b]\n: 1\n", "a sequence", "keys must be strings"),
    ("head: " + "[" * 3000 + "]" * 3000, "head" + "[0]" * 24 + "[...", "deeper than"),
    ("width: " + "9" * 5000, "width", "5000 digits"),
    ('name: "a\\0b"', "name", "NUL"),
    ('name: "\\ud800"', "name", "surrogate"),
    ("x: !!binary aGVsbG8=", "x", "tag"),
    ("x: !!python/object:os.system [ls]", "x", "tag"),
    ("x: !!int abc", "x", "not an integer"),
    ("m: [" + ",".join(["1"] * 30000) + "]", "m[19997]", "more than"),
])
def test_hostile_documents_are_refused_naming_the_field(text, field, words):
    _refused(text, field, words)


def test_document_size_and_empty_files(tmp_path):
    _refused("x: 1\n" * (sy.MAX_DOCUMENT_BYTES // 4), "t.yaml", "at most")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(hc.ConfigError, match="is empty"):
        sy.read_yaml_file(empty, "recipe")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(hc.ConfigError, match="not UTF-8"):
        sy.read_yaml_file(binary)
    with pytest.raises(hc.ConfigError, match="is a folder"):
        sy.read_yaml_file(tmp_path)
    with pytest.raises(hc.ConfigError, match="not a regular file"):
        sy.read_yaml_file("/dev/zero")


def test_yaml_12_scalars():
    data = sy.load_yaml("a: 1:30\nb: 010\nc: yes\nd: 1_000\ne: 1e-3\nf: 0x1F\ng: 0o17\nh: .inf\ni: ~\nj: True\nk: 2024-01-01")
    assert data == {"a": "1:30", "b": 10, "c": "yes", "d": "1_000", "e": 1e-3, "f": 31, "g": 15, "h": float("inf"),
                    "i": None, "j": True, "k": "2024-01-01"}
    # what PyYAML's YAML 1.1 makes of the same text
    assert yaml.safe_load("a: 1:30\nb: 010")["a"] == 90


@pytest.mark.parametrize("path", OFFICIAL, ids=lambda p: p.stem)
def test_official_files_keep_their_meaning(path):
    text = path.read_text(encoding="utf-8")
    assert sy.load_yaml(text) == yaml.safe_load(text)


def test_dict_configs_get_the_same_limits():
    deep: dict = {}
    node = deep
    for _ in range(100):
        node["x"] = {}
        node = node["x"]
    cyclic: list = []
    cyclic.append(cyclic)
    for raw, field in [({"width": 32, 3: 4}, "config"), ({"width": 32, "head": deep}, "head" + ".x" * 32),
                       ({"width": 32, "name": cyclic}, "name" + "[0]" * 32), ({"width": 10**5000}, "width"),
                       ({"width": 32, "modules": [1] * 10**6}, "modules")]:
        with pytest.raises(hc.ConfigError) as info:
            hc.load_config(raw)
        assert info.value.field == field, str(info.value)


def test_quote_is_bounded():
    assert len(quote("x" * 10**7)) <= QUOTE_LIMIT
    assert "digits" in quote(10**5000)
    assert len(quote([list(range(10**5))] * 100)) <= QUOTE_LIMIT
