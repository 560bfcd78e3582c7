"""Every hostile case of issue 11, through the CLI: each answered with exit status 2 and one line on stderr
within 5 s of CPU time (the cases are generated here, no big files are checked in)."""

from __future__ import annotations

import os
import pickle
import time
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import ROOT

import hrnet_core as hc
from analysis.cli import main

W32 = str(ROOT / "configs" / "pose_hrnet_w32_256x192.yaml")
TINY = ("family: pose\ninput_size: [64, 64]\nwidth: 4\nmodules: [1, 1, 1]\nblocks: 1\n"
        "stage1: {blocks: 1, planes: 8}\nhead: {kind: v1, outputs: 3}\n")
OFFICIAL = ("MODEL:\n  NAME: pose_hrnet\n  EXTRA:\n" + "".join(
    f"    STAGE{k}: {{NUM_MODULES: 1, NUM_BRANCHES: {k}, BLOCK: BASIC, NUM_BLOCKS: {[1] * k}, "
    f"NUM_CHANNELS: {[4 * 2**i for i in range(k)]}}}\n" for k in (2, 3, 4)))


def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


CONFIGS = {
    "alias_bomb_name": TINY + _bomb() + "name: *a8\n",
    "alias_bomb_field": _bomb() + TINY.replace("width: 4", "width: *a8"),
    "block_list": TINY.replace("blocks: 1\n", "blocks: 1\nblock: [BASIC]\n"),
    "model_name_list": OFFICIAL.replace("NAME: pose_hrnet", "NAME: [pose_hrnet]"),
    "stage_block_dict": OFFICIAL.replace("BLOCK: BASIC", "BLOCK: {a: 1}", 1),
    "mixed_key_types": TINY + "1: 2\n",
    "kernel_float": TINY.replace("outputs: 3}", "outputs: 3, final_conv_kernel: 1.0}"),
    "kernel_true": TINY.replace("outputs: 3}", "outputs: 3, final_conv_kernel: true}"),
    "deep_nesting": TINY + "description: " + "[" * 3000 + "]" * 3000 + "\n",
    "digits_5000": TINY.replace("width: 4", "width: " + "9" * 5000),
    "surrogate_name": TINY + 'name: "hr\\ud800net"\n',
    "nul_name": TINY + 'name: "hr\\0net"\n',
    "duplicate_keys": TINY + "width: 8\n",
    "sexagesimal": TINY.replace("width: 4", "width: 1:30"),
    "hundreds_of_stages": "family: pose\nwidth: 4\nmodules: [" + ", ".join(["1"] * 300) + "]\n",
    "modules96_blocks64": "family: pose\nwidth: 32\nmodules: [32, 32, 32]\nblocks: 64\n",
    "max_depth_w256": "family: pose\nwidth: 256\nmodules: [32, 32, 32]\nblocks: 64\n",
    "width_190": "family: pose\nwidth: 190\n",
    "list_1e6": TINY.replace("modules: [1, 1, 1]", "modules: [" + ",".join(["1"] * 10**5) + "]"),
    "huge_input": "family: pose\nwidth: 64\ninput_size: [8192, 8192]\n",
    "huge_string": TINY + "description: " + "x" * 200_000 + "\n",
    "binary_tag": TINY + "description: !!binary aGVsbG8=\n",
}
EXPECT = {
    "alias_bomb_name": "anchors and aliases", "alias_bomb_field": "anchors and aliases", "block_list": "block",
    "model_name_list": "MODEL.NAME", "stage_block_dict": "STAGE2.BLOCK", "mixed_key_types": "keys must be strings",
    "kernel_float": "final_conv_kernel", "kernel_true": "final_conv_kernel", "deep_nesting": "deeper than",
    "digits_5000": "digits", "surrogate_name": "surrogate", "nul_name": "NUL", "duplicate_keys": "duplicate key",
    "sexagesimal": "width", "hundreds_of_stages": "stages", "modules96_blocks64": "convolution layers",
    "max_depth_w256": "convolution layers", "width_190": "parameters exceed", "list_1e6": "more than",
    "huge_input": "activations", "huge_string": "characters", "binary_tag": "tag",
}
COMMANDS = {
    "inspect": lambda cfg, tmp: ["inspect", cfg],
    "analyze": lambda cfg, tmp: ["analyze", cfg],
    "diagram": lambda cfg, tmp: ["diagram", cfg, "-o", str(tmp / "d.dot")],
    "features": lambda cfg, tmp: ["features", cfg, "-o", str(tmp / "maps")],
}


def _run(argv, capsys) -> tuple[int, str, str, float]:
    """Exit status, stdout, stderr and the CPU seconds the command took (this process, all threads): the
    cost of the answer, which a machine loaded by others does not inflate as it does wall time."""
    start, wall = time.process_time(), time.perf_counter()
    rc = main([str(a) for a in argv])
    took = time.process_time() - start
    assert time.perf_counter() - wall < 120  # no hang, even on a loaded machine
    cap = capsys.readouterr()
    return rc, cap.out, cap.err, took


def _answered(argv, capsys, words: str) -> str:
    rc, _out, err, took = _run(argv, capsys)
    assert rc == 2, (rc, err)
    assert err.count("\n") == 1 and err.startswith("hrnet-explorer "), err
    assert words in err, err
    assert len(err) < 600 and took < 5, (len(err), took)
    return err


# The config reader is shared: every case goes through inspect, the bombs, names and budgets through all.
IN_EVERY_COMMAND = ("alias_bomb_name", "alias_bomb_field", "surrogate_name", "modules96_blocks64", "huge_input",
                    "deep_nesting")
CASES = [(case, "inspect") for case in CONFIGS] + [(case, cmd) for case in IN_EVERY_COMMAND for cmd in COMMANDS
                                                   if cmd != "inspect"]


@pytest.mark.parametrize("case, command", CASES)
def test_hostile_configs_in_every_command(tmp_path, capsys, case, command):
    path = tmp_path / f"{case}.yaml"
    path.write_text(CONFIGS[case], encoding="utf-8")
    words = EXPECT[case] if not (case == "huge_input" and command in ("inspect", "analyze", "diagram")) else None
    if words is None:  # counting a huge input is arithmetic, no memory: a documented success
        rc, _out, err, took = _run(COMMANDS[command](path, tmp_path), capsys)
        assert rc == 0 and took < 30, err
        return
    _answered(COMMANDS[command](path, tmp_path), capsys, words)


def _write_bad_checkpoints(tmp: Path) -> dict[str, tuple[Path, str]]:
    model = hc.build_model(hc.load_config_text(TINY))
    out = {}
    p = tmp / "random.pth"
    p.write_bytes(os.urandom(2048))
    out["random_bytes"] = (p, "not a checkpoint")
    p = tmp / "text.pth"
    p.write_text("not weights\n")
    out["text"] = (p, "not a checkpoint")
    p = tmp / "bomb.pth"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({}))
        zf.writestr("archive/data/0", bytes(256 * 2**20))
    out["zip_bomb"] = (p, "zip bomb")
    state = model.state_dict()
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("inf"))
    p = tmp / "inf.pth"
    torch.save(state, p)
    out["inf_weights"] = (p, "NaN or infinite")

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    p = tmp / "evil.pth"
    torch.save({"w": Evil()}, p)
    out["unsafe_pickle"] = (p, "unsafe pickle")
    out["directory"] = (tmp, "is a directory")
    out["dev_zero"] = (Path("/dev/zero"), "not a regular file")
    out["missing"] = (tmp / "absent.pth", "no such checkpoint file")
    return out


def test_hostile_checkpoints(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    for name, (path, words) in _write_bad_checkpoints(tmp_path).items():
        err = _answered(["inspect", cfg, "--checkpoint", path], capsys, words)
        assert name != "random_bytes" or "unsafe" not in err


def test_hostile_arguments(tmp_path, capsys):
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    binary = tmp_path / "variants.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    cases = [
        (["analyze", W32, "--batch", "1e23"], "--batch"),
        (["analyze", W32, "--batch", str(10**23)], "--batch"),
        (["analyze", W32, "--backend", "fvcore", "--batch", "1000000"], "--batch"),
        (["analyze", W32, "--backend", "fvcore", "--batch", "60000"], "reduce the batch"),
        (["analyze", W32, "--profile", "--device", "cpu", "--batch", "60000"], "reduce the batch"),
        (["features", W32, "--seed", str(2**70), "-o", tmp_path / "m"], "--seed"),
        (["features", W32, "-o", "/proc/x"], "/proc/x"),
        (["features", W32, "-o", afile], "not a folder"),
        (["features", W32, "-o", tmp_path / "m", "--box", "nan", "nan", "nan", "nan"], "finite"),
        (["features", W32, "-o", tmp_path / "m", "--box", "0", "0", "inf", "inf"], "finite"),
        (["features", W32, "-o", tmp_path / "m", "--box", "0", "0", "9000", "9000"], "not inside"),
        (["ablate", "--smoke", "--out", "/proc/x"], "/proc/x"),
        (["ablate", "--smoke", "--out", afile], "not a folder"),
        (["ablate", "--smoke", "--variants", binary, "--out", tmp_path / "r1"], "not UTF-8"),
        (["ablate", "--recipe", empty, "--out", tmp_path / "r2"], "is empty"),
        (["ablate", "--seeds", str(2**70), "--out", tmp_path / "r3"], "--seeds"),
        (["inspect", tmp_path], "is a folder"),
        (["inspect", "/dev/zero"], "not a regular file"),
    ]
    for argv, words in cases:
        _answered(argv, capsys, words)
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_surrogate_file_name_never_breaks_printing(tmp_path, capsys):
    path = Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff.yaml"))
    path.write_text(TINY)
    rc, out, err, _ = _run(["inspect", path], capsys)
    assert rc == 0 and "bad\\udcff" in out
    rc, _out, err, _ = _run(["inspect", Path(os.fsdecode(bytes(tmp_path) + b"/gone\xff.yaml"))], capsys)
    assert rc == 2 and err.count("\n") == 1


def test_unexpected_errors_are_one_line_internal_errors(tmp_path, capsys, monkeypatch):
    import analysis.cli.inspect as ci

    def boom(cfg):
        raise RuntimeError("a bug\nwith two lines")

    monkeypatch.setattr(ci, "model_summary", boom)
    rc, _out, err, _ = _run(["inspect", W32], capsys)
    assert rc == 1 and err.count("\n") == 1
    assert "internal error: RuntimeError" in err and "HRNET_EXPLORER_DEBUG=1" in err
    monkeypatch.setenv("HRNET_EXPLORER_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["inspect", W32])
