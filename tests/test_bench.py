"""The benchmarks (bench/) take their families, trainers and rates from configs/ through the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import CONFIGS, REPO

if str(REPO) not in sys.path:  # bench/ is the repository's, not the installed package's
    sys.path.insert(0, str(REPO))

from bench import common  # noqa: E402


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture
def configs_copy(tmp_path, monkeypatch):
    """A copy of configs/ that bench discovers instead of the real one."""
    copy = tmp_path / "configs"
    shutil.copytree(CONFIGS, copy)
    monkeypatch.setattr(common, "CONFIGS", copy)
    common.recipes.cache_clear()
    yield copy
    common.recipes.cache_clear()


def test_discovery_finds_every_top_level_recipe_with_its_cpu_overlay():
    found = common.recipes()
    assert sorted(r.config for r in found) == sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert found[0].config == common.REFERENCE_RECIPE
    for recipe in found:
        assert recipe.cpu_overlay is not None, recipe
        assert (CONFIGS / recipe.cpu_overlay).is_file()
        assert recipe.cpu_overlay.startswith("overlays/") and recipe.cpu_overlay.endswith("-cpu.yaml")
        assert recipe.cpu_overlay not in common.GAN_CPU
    # The labels of the report's tables, one per family.
    assert [r.label for r in found] == ["U-Net", "magnitude", "magnitude + phase"]
    assert common.cpu_recipes() == {r.label: [r.config, r.cpu_overlay] for r in found}
    assert common.reference_recipes() == {r.label: [r.config] for r in found}


def test_each_cpu_composition_builds_the_recipes_own_network():
    from audiosr.models.spectral import SpectralNetwork
    from audiosr.models.unet import UNet

    for recipe in common.recipes():
        full, _ = common.build(recipe.reference)
        small, _ = common.build(recipe.cpu)
        assert type(small.network).__name__ == type(full.network).__name__ == recipe.network
        assert small.network.num_parameters() < full.network.num_parameters() / 10
        assert isinstance(small.network, UNet) != isinstance(small.network, SpectralNetwork)


def test_the_gan_size_overlay_sizes_no_recipe_alone():
    # overlays/gan-cpu.yaml sizes the discriminators of overlays/gan.yaml: the parser takes it only on top of it.
    recipe = common.recipes()[0]
    assert not common._accepts([recipe.config, "overlays/gan-cpu.yaml"])
    assert common._accepts([*recipe.cpu, *common.GAN_CPU])


def test_a_new_recipe_is_discovered_with_a_label_and_its_overlay(configs_copy):
    shutil.copy(configs_copy / "magphase.yaml", configs_copy / "magphase2.yaml")
    (configs_copy / "overlays" / "wide-cpu.yaml").write_text(
        "model:\n  init_args:\n    network:\n      init_args: {nonexistent_width: 3}\n")
    found = {r.config: r for r in common.recipes()}
    assert set(found) == {"unet.yaml", "magnitude.yaml", "magphase.yaml", "magphase2.yaml"}
    # Two recipes of one network are told apart by their file; the overlay no network takes fits none.
    assert found["magphase2.yaml"].label == "magnitude + phase (magphase2)"
    assert found["magphase.yaml"].label == "magnitude + phase (magphase)"
    assert found["magphase2.yaml"].cpu_overlay == "overlays/spectral-cpu.yaml"
    assert found["unet.yaml"].label == "U-Net" and found["unet.yaml"].cpu_overlay == "overlays/unet-cpu.yaml"
    assert "overlays/wide-cpu.yaml" not in {r.cpu_overlay for r in found.values()}


def test_a_recipe_without_a_cpu_overlay_is_reference_size_only(configs_copy):
    (configs_copy / "overlays" / "unet-cpu.yaml").unlink()
    found = {r.config: r for r in common.recipes()}
    assert found["unet.yaml"].cpu_overlay is None
    assert "U-Net" in common.reference_recipes() and "U-Net" not in common.cpu_recipes()


def test_rates_are_the_data_modules(tmp_path):
    _, data = common.build([common.REFERENCE_RECIPE])
    assert common.rates() == (data.source_rate, data.target_rate)
    # Another data preset changes what bench reads.
    other = common.rates([common.REFERENCE_RECIPE, "data/vctk_24_48.yaml"], "--data.corpus.root", str(tmp_path))
    assert other == (24000, 48000) != common.rates()
    assert common.rates([common.REFERENCE_RECIPE], "--data.source_rate", "16000") == (16000, data.target_rate)


def test_bench_sets_no_pythonpath(tmp_path, monkeypatch):
    for path in (REPO / "bench").rglob("*.py"):
        assert "PYTHONPATH" not in path.read_text(), path
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert "PYTHONPATH" not in common.subprocess_env(tmp_path)


@pytest.mark.slow
def test_the_training_commands_find_the_bench_callback_without_pythonpath(tmp_path, monkeypatch):
    """``python -m audiosr.cli`` from the repository root resolves ``bench.runs.Elapsed``, as bench runs it."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    cmd = [*common.audiosr_module_command(), "fit", *common.config_args(["magphase.yaml", "overlays/debug.yaml"]),
           "--trainer.callbacks+=bench.runs.Elapsed", "--print_config"]
    done = subprocess.run(cmd, cwd=REPO, env=common.subprocess_env(tmp_path), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bench.runs.Elapsed" in done.stdout


@pytest.mark.slow
def test_training_speed_uses_the_trainer_the_cli_builds(tmp_path):
    from bench import training

    import torch

    ctx = common.Context(SimpleNamespace(), tmp_path, None)
    # The debug overlay keeps the family and makes it tiny; the recipe's own trainer settings stay:
    # magphase.yaml trains in bf16-mixed, which the CLI turns into 32-true where there is no GPU.
    r = training.measure(ctx, ["magphase.yaml", "overlays/debug.yaml"], steps=1)
    assert r["spectral"] and r["batch"] == 2 and r["step_s"] > 0
    assert r["precision"] == ("bf16-mixed" if torch.cuda.is_available() else "32-true")
    assert sorted(p.name for p in (tmp_path / "train").rglob("*.ckpt")) == []  # nothing kept
    assert os.listdir(tmp_path / "train")  # the CLI's run folder, under the bench's temporary folder


def test_the_precision_section_says_it_needs_a_gpu_when_there_is_none(tmp_path, monkeypatch):
    from bench import precision

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ctx = common.Context(SimpleNamespace(precision_steps=2), tmp_path, None)
    text = precision.run(ctx)
    assert ctx.skipped == "skipped: no GPU" and not ctx.problems
    assert "No GPU in this run" in text and "|" not in text  # no table of numbers it did not measure


@pytest.mark.slow
def test_the_precision_comparison_trains_the_recipe_from_its_seed_and_scores_it_on_held_out_batches(tmp_path):
    from bench import precision

    import torch

    measured = precision.compare(["magphase.yaml", "overlays/debug.yaml"], 4, tmp_path)
    runs = measured["runs"]
    # magphase.yaml asks for bf16-mixed: where there is no GPU the CLI makes it fp32, one run.
    assert list(runs) == (["bf16-mixed", "32-true"] if torch.cuda.is_available() else ["32-true"])
    fp32 = runs["32-true"]
    assert fp32["used"] == "32-true" and fp32["step_s"] > 0
    assert np.isfinite([fp32["first_loss"], fp32["loss"], fp32["snr"], fp32["lsd"]]).all()
    # Band keeping: the trained generator keeps the input's band, so it scores near its rough input.
    assert abs(fp32["snr"] - measured["input_snr"]) < 3 and fp32["lsd"] < measured["input_lsd"] + 0.5
    # The same seed and batches: a second fp32 run starts from the same loss.
    again = precision.compare(["magphase.yaml", "overlays/debug.yaml"], 1, tmp_path / "again")["runs"]["32-true"]
    assert again["first_loss"] == pytest.approx(fp32["first_loss"], rel=1e-6)


@pytest.mark.slow
def test_the_shipped_models_precisions_are_compared_with_its_fp32_output():
    from bench import precision

    rows = precision.shipped_model_on_gpu(seconds=3.0, repeats=1, runs=[("cpu", "32", 1), ("cpu", "bf16", 2)])
    (device, name, batch, snr, agreement, rtr, vs_kb), bf16 = rows
    assert (device, name, batch, agreement) == ("cpu", "fp32", 1, "(reference)")
    assert float(snr) > 10 and float(rtr) > 0 and float(vs_kb) > 0
    # bf16 moves the output, but far less than the error against the target.
    assert bf16[1] == "bf16" and 25 < float(bf16[4]) < 200 and abs(float(bf16[3]) - float(snr)) < 0.5


def test_the_quality_bar_needs_every_part_it_can_tell():
    from bench.common import bar_verdict, meets_bar

    kb = {"snr": 25.0, "lsd": 2.0, "visqol": 2.6, "worse": 0.0}
    good = {"snr": 24.5, "lsd": 1.0, "visqol": 3.2, "worse": 1.5}
    assert meets_bar(good, kb)
    assert bar_verdict(good, kb) == "yes (SNR -0.50 dB, LSD x0.50, 1.5 % of files > 3 dB worse, ViSQOL +0.60)"
    for part, value in (("snr", 23.9), ("lsd", 1.2), ("worse", 2.2), ("visqol", 3.0)):
        missed = {**good, part: value}
        assert not meets_bar(missed, kb)
        assert bar_verdict(missed, kb).startswith("no (") and bar_verdict(missed, kb).count("✗") == 1
    # A run that measured no ViSQOL and no per-file shares is judged on SNR and LSD alone.
    assert meets_bar({"snr": 24.5, "lsd": 1.0}, {"snr": 25.0, "lsd": 2.0})


def test_the_calibration_keeps_the_gain_of_lowest_lsd_below_the_references_edges_among_those_that_meet_the_bar(
        monkeypatch, tmp_path):
    """Whole-band LSD would pick -9 dB (an encoder-cut reference is empty up there); below the references'
    own edges 0 dB is lowest but loses more than 3 dB on too many files; -3 and -6 tie, and the louder is
    kept. Where no gain meets the bar, the lowest LSD of all. Only the validation files are used."""
    from bench import default_model

    below_edge = {"0": 1.20, "-3": 1.25, "-6": 1.25, "-9": 1.40}
    whole_band = {"0": 1.60, "-3": 1.50, "-6": 1.45, "-9": 1.30}
    worse = {"0": 2.5, "-3": 1.0, "-6": 0.5, "-9": 0.0}
    asked = []

    def fake_test(label, name, checkpoint, lists, split, extra, tmp, cache):
        gain = f"{float(extra[extra.index('--model.init_args.output_stage.invented_gain_db') + 1]):g}"
        asked.append((split, float(gain)))
        return default_model.Tested(label, [], rows=[
            {"method": "audiosr MagPhase", "snr": 27.0, "lsd": whole_band[gain], "lsd_below_edge": below_edge[gain],
             "worse": worse[gain]},
            {"method": "kaiser_best", "snr": 27.0, "lsd": 2.9, "lsd_below_edge": 2.8, "worse": 0.0}])

    monkeypatch.setattr(default_model, "run_test", fake_test)
    chosen, tested = default_model.calibrate(tmp_path / "best.ckpt", {}, tmp_path, tmp_path, [0.0, -3.0, -6.0, -9.0])
    assert chosen == -3.0 and list(tested) == ["0", "-3", "-6", "-9"]
    assert asked == [("val", 0.0), ("val", -3.0), ("val", -6.0), ("val", -9.0)]  # the validation files only
    worse.update({"-3": 3.0, "-6": 3.0, "-9": 3.0})
    assert default_model.calibrate(tmp_path / "best.ckpt", {}, tmp_path, tmp_path, [0.0, -3.0, -6.0, -9.0])[0] == 0.0


def test_the_calibrations_spread_is_a_paired_interval_over_files():
    from bench import default_model

    def tested(values):
        return default_model.Tested("", [], rows=[], items={"audiosr MagPhase": [
            {"name": f"f{i}", "lsd_below_edge": v} for i, v in enumerate(values)]})

    rng = np.random.default_rng(0)
    base = rng.uniform(1.0, 2.0, 200)
    spread = default_model.calibration_spread({"0": tested(base), "-3": tested(base + 0.1 + 0.01 * rng.standard_normal(200)),
                                               "-6": tested(base - 0.05)}, 0.0)
    assert set(spread) == {"-3", "-6"}
    assert 0.09 < spread["-3"][0] < 0.1 < spread["-3"][1] < 0.11  # worse than the kept gain, tightly: paired
    assert spread["-6"] == pytest.approx((-0.05, -0.05), abs=1e-9)


def write_manifest(root: Path, rows: list[tuple[str, str, str, float, float, float]]) -> None:
    """A build.sh-like MANIFEST.tsv: (file, category, package, minutes, hf_above_11k_db, lowpass_edge_hz)."""
    lines = ["file\tcategory\tpackage\tversion\tlicense\tduration_s\thf_above_11k_db\tlowpass_edge_hz"]
    lines += [f"{f}\t{c}\t{p}\t1\tGPL\t{m * 60}\t{hf}\t{edge}" for f, c, p, m, hf, edge in rows]
    root.mkdir(parents=True, exist_ok=True)
    (root / "MANIFEST.tsv").write_text("\n".join(lines) + "\n")


def test_the_corpus_splits_by_package_tests_band_poor_files_but_never_trains_or_validates_on_them(tmp_path):
    from bench.corpus import corpus_split

    rows = []
    for package in ("voices-a", "voices-b", "voices-c", "game-d", "game-e", "game-f", "drums-g", "drums-h"):
        categories = ("speech",) if package.startswith("voices") else ("music", "sfx") if package.startswith("game") \
            else ("music",)
        for category in categories:
            for i in range(12):
                poor = i == 0
                rows.append((f"{category}/{package}__{i}.flac", category, package, 0.5 + (i % 3) / 10,
                             -70.0 if poor else -25.0, 10_000.0 if poor else 16_000.0 + i * 300))
    write_manifest(tmp_path / "corpus", rows)
    split = corpus_split(tmp_path / "corpus")
    sides = {name: set(split.packages(getattr(split, name))) for name in ("train", "val", "test")}
    assert not (sides["train"] & sides["val"] or sides["train"] & sides["test"] or sides["val"] & sides["test"])
    for name in ("val", "test"):  # every category is validated and tested, and still trains
        assert {split.category[p] for p in getattr(split, name)} >= {"speech", "music"}
    assert {split.category[p] for p in split.train} == {"speech", "music", "effects"}
    assert not any(p in split.poor for p in [*split.train, *split.val])
    assert any(p in split.poor for p in split.test)
    assert split.edge_hz[split.test[0]] in {10_000.0, *(16_000.0 + i * 300 for i in range(12))}
    again = corpus_split(tmp_path / "corpus")
    assert (again.train, again.val, again.test) == (split.train, split.val, split.test)
    write_manifest(tmp_path / "thin", [r for r in rows if not r[2].startswith("game-f")])  # sfx in two games only
    with pytest.raises(ValueError, match="no training package with sfx"):
        corpus_split(tmp_path / "thin")


def test_the_dev_split_shares_no_speaker_and_uses_nu_wave_2s_samples_nowhere(tmp_path):
    import soundfile as sf

    from audiosr.data.corpora import VCTK

    root = tmp_path / "dev"
    names = ["vctk/p232_001", "vctk/p257_002", "vctk/p238_003", "vctk/p360_004", "vctk/nuwave2_8k_sample_0",
             "freesound-ibm/rain", "freesound-ibm/piano"]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / f"{name}.flac", np.zeros(4410, dtype=np.float32), 44100)
    dev = common.dev_split(root)

    def speakers(files):
        return {p.stem.split("_")[0] for p in files if p.parent.name == "vctk"}

    assert speakers(dev.val) == {"p238"} and speakers(dev.test) == {"p360"} and speakers(dev.train) == {"p232", "p257"}
    assert not speakers(dev.val) & set(VCTK.PUBLISHED_TEST_SPEAKERS)
    assert not any("nuwave2" in p.name for p in [*dev.train, *dev.val, *dev.test])
    assert {p.name for p in dev.test} == {"p360_004.flac", "rain.flac"}


def test_the_checkpoint_kept_is_best_or_last_by_lsd_below_the_references_edges_on_validation(monkeypatch, tmp_path):
    from bench import default_model

    best, last = tmp_path / "best-step=500.ckpt", tmp_path / "last.ckpt"
    scores = {"best-step=500": {"lsd": 1.2, "lsd_below_edge": 1.10}, "last": {"lsd": 1.1, "lsd_below_edge": 1.05}}
    asked = []

    def fake_test(label, name, checkpoint, lists, split, extra, tmp, cache):
        asked.append((split, checkpoint.stem, extra[-1]))
        return default_model.Tested(label, [], rows=[{"method": "audiosr MagPhase", **scores[checkpoint.stem]}])

    monkeypatch.setattr(default_model, "run_test", fake_test)
    monkeypatch.setattr(default_model, "checkpoint_step", lambda p: 500 if "best" in p.name else 900)
    chosen, said, known = default_model.choose_checkpoint([best, last], {}, tmp_path, tmp_path)
    assert chosen == last and list(known) == ["0"] and "`last.ckpt` (step 900) 1.050" in said
    assert asked == [("val", "best-step=500", "0"), ("val", "last", "0")]  # validation files, at 0 dB
    scores["last"]["lsd_below_edge"] = 1.10  # a tie keeps best
    assert default_model.choose_checkpoint([best, last], {}, tmp_path, tmp_path)[0] == best
    assert default_model.choose_checkpoint([best], {}, tmp_path, tmp_path) == (best, "", {})


def test_the_any_input_evaluation_holds_each_kind_to_its_own_baseline():
    """bench.any_input: the model against soxr VHQ (8/16 kHz), the input as is (codecs), itself (full band)."""
    from bench.any_input import KINDS, compare, report, verdict
    from bench.default_model import Tested

    def items(snrs, lsds):
        return [{"name": f"f{i}.flac", "snr": s, "lsd": l, "lsd_below_edge": l} for i, (s, l) in enumerate(zip(snrs, lsds))]

    sixteen = next(k for k in KINDS if k.preset == "rate-16k")
    tested = Tested("16 kHz", [], [], {
        "audiosr MagnitudePhaseNetwork": items([20.0, 21.0, 15.0], [1.0, 1.0, 1.0]),
        "soxr_vhq (model input)": items([20.5, 21.5, 19.0], [2.0, 2.0, 2.0]),
        "kaiser_best": items([20.0, 21.0, 19.0], [2.0, 2.0, 2.0]),
    })
    c = compare(tested, sixteen, sixteen.baseline)
    assert c["files"] == 3 and c["snr"] == pytest.approx(56 / 3) and c["snr_base"] == pytest.approx(61 / 3)
    assert c["worse"] == pytest.approx(100 / 3)  # f2 lost 4 dB against soxr VHQ
    assert c["lsd"] / c["lsd_base"] == pytest.approx(0.5)
    text = verdict(sixteen, c, None)
    assert text.startswith("no") and "SNR -1.67 dB ✗" in text and "LSD x0.50," in text and "33.3 % > 3 dB worse ✗" in text

    full = next(k for k in KINDS if k.preset == "full-band")
    kept = Tested("full", [], [], {"audiosr MagnitudePhaseNetwork": items([71.0, 150.0], [0.1, 0.0]),
                                   "input as is": items([150.0, 150.0], [0.0, 1e-9])})
    assert verdict(full, compare(kept, full, full.baseline), None).startswith("yes (lowest SNR against the input 71.0 dB")
    markdown = report({"rate-16k": tested, "full-band": kept}, {}, "a heading")
    rows = {cells[1]: cells[2:] for cells in ([c.strip() for c in line.split("|")] for line in markdown.splitlines())
            if len(cells) > 10}
    assert rows["16 kHz files (16-bit, kaiser_best)"][0] == "soxr_vhq"
    assert rows["16 kHz files (16-bit, kaiser_best)"][4].startswith("0.50 [")
    assert rows["44.1 kHz files, nothing missing (16-bit)"][4] == "–"  # no ratio to an exact baseline

    # A file its own encoder cut at 16 kHz is filled (SNR against itself 40 dB): reported apart, not judged as one
    # that lacks nothing; without it the complete files alone meet the bar.
    cut = Tested("full", [], [], {
        "audiosr MagnitudePhaseNetwork": [{**i, "ref_edge_hz": e} for i, e in zip(items([150.0, 40.0], [0.0, 0.2]),
                                                                                  [21000.0, 16000.0])],
        "input as is": items([150.0, 150.0], [0.0, 0.0])})
    rows = {cells[1]: cells[2:] for cells in ([c.strip() for c in line.split("|")] for line in
                                              report({"full-band": cut}, {}, "h").splitlines()) if len(cells) > 10}
    assert rows["44.1 kHz files, nothing missing (16-bit)"][1] == "1"
    assert rows["44.1 kHz files, nothing missing (16-bit)"][-2].startswith("yes (lowest SNR against the input 150.0 dB")
    assert rows["44.1 kHz files cut by their own encoder (16-bit)"][1] == "1"
    assert rows["44.1 kHz files cut by their own encoder (16-bit)"][2].startswith("40.00 / ")
    assert rows["44.1 kHz files cut by their own encoder (16-bit)"][-2].startswith("no bar set")


def test_the_any_input_evaluation_scores_the_middle_of_each_file(tmp_path):
    """bench.any_input --excerpt: each listed file's middle seconds, written once as they are, mapped to its source."""
    import soundfile as sf

    from bench.any_input import write_excerpts

    rate = 8000
    ramp = (np.arange(10 * rate) % 30000 - 15000).astype(np.int16)  # every sample says where it came from
    long, short = tmp_path / "long.flac", tmp_path / "short.wav"
    sf.write(str(long), ramp, rate, subtype="PCM_16")
    sf.write(str(short), np.zeros((rate, 2), dtype=np.float32), rate, subtype="FLOAT")
    listed = tmp_path / "val.txt"
    listed.write_text(f"{long}\n{short}\n")
    excerpts, sources = write_excerpts(listed, tmp_path / "excerpts", 2.0)
    paths = excerpts.read_text().split()
    assert [sources[p] for p in paths] == [str(long), str(short)]
    middle, got_rate = sf.read(paths[0], dtype="int16")
    assert got_rate == rate and np.array_equal(middle, ramp[4 * rate: 6 * rate])
    assert sf.info(paths[0]).subtype == "PCM_16"
    whole = sf.read(paths[1])[0]
    assert whole.shape == (rate, 2)  # shorter than the excerpt: all of it, both channels
    before = Path(paths[0]).stat().st_mtime_ns
    write_excerpts(listed, tmp_path / "excerpts", 2.0)
    assert Path(paths[0]).stat().st_mtime_ns == before  # written once


def test_two_evaluations_of_the_same_items_are_compared_item_by_item(tmp_path, capsys):
    """bench.any_input paired: runs in different folders, the same excerpts, matched by their own names."""
    import json

    from bench.any_input import main

    def evaluation(run: str, model_snrs: list[float], model_lsds: list[float]) -> Path:
        folder = tmp_path / run / "evaluation-val-8s-step500"
        report = folder / "tests" / "rate-8k" / "rate-8k" / "version_0" / "test" / "comparison.json"
        report.parent.mkdir(parents=True)
        names = [f"{tmp_path}/{run}/excerpts-val-8s/{i:04d}-f.flac" for i in range(3)]
        items = {"audiosr MagnitudePhaseNetwork": [{"name": n, "snr": s, "lsd": l, "lsd_below_edge": l}
                                                   for n, s, l in zip(names, model_snrs, model_lsds)],
                 "soxr_vhq (model input)": [{"name": n, "snr": 20.0, "lsd": 2.0, "lsd_below_edge": 2.0} for n in names]}
        report.write_text(json.dumps({"rows": [], "items": items}))
        return folder

    variant = evaluation("G", [20.0, 19.0, 18.0], [1.0, 1.0, 1.0])
    against = evaluation("D", [19.0, 18.0, 15.0], [0.8, 0.8, 0.8])
    assert main(["paired", str(variant), str(against)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| rate-8k"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1] == "3" and cells[2].startswith("+1.67 [")  # (57 - 52) / 3
    assert cells[3].startswith("1.250 [")
    assert cells[5] == "0.0 / 33.3"  # D's third item lost 5 dB against soxr VHQ
    with pytest.raises(SystemExit, match="no kind"):
        main(["paired", str(variant), str(tmp_path / "nothing")])


def test_band_levels_put_a_band_of_noise_in_its_band_and_follow_its_level():
    """bench.any_input levels: per-band mean power, in dB, of noise confined to 17-18 kHz."""
    from bench.any_input import LEVEL_BANDS_HZ, band_levels

    rate = 44100
    spectrum = np.fft.rfft(np.random.default_rng(0).standard_normal(rate * 2))
    freqs = np.fft.rfftfreq(rate * 2, 1 / rate)
    band = np.fft.irfft(spectrum * ((freqs >= 17100) & (freqs < 17900)), rate * 2)
    levels = band_levels(band, rate)
    inside = LEVEL_BANDS_HZ.index(17000)
    assert len(levels) == len(LEVEL_BANDS_HZ) - 1
    assert all(levels[inside] > v + 40 for i, v in enumerate(levels) if i != inside)
    assert band_levels(0.1 * band, rate)[inside] == pytest.approx(levels[inside] - 20, abs=1e-6)


def test_a_checkpoint_is_evaluated_with_the_network_it_was_trained_with(tmp_path):
    """bench.any_input evaluate: the network's description comes from the checkpoint, not the recipe."""
    import json

    import torch

    from audiosr.models.checkpoint import CHECKPOINT_KEY
    from bench.any_input import network_args

    network = {"class_path": "audiosr.models.spectral.MagnitudePhaseNetwork",
               "init_args": {"hop_length": 512, "any_band": True, "relative_magnitude": True, "level_from_edge": True}}
    path = tmp_path / "best-step=5.ckpt"
    torch.save({"global_step": 5, CHECKPOINT_KEY: {"network": network}}, path)
    flag, value = network_args(path)
    assert flag == "--model.init_args.network" and json.loads(value) == network
    torch.save({"global_step": 5}, path)  # no description stored: the recipe's configs decide
    assert network_args(path) == []


def test_a_finished_test_is_read_back_and_kept_only_runs_nothing(tmp_path, monkeypatch):
    """bench.default_model.run_test: the same command finished in its folder is read back, not run again;
    with kept_only a kind never run is None (an evaluation of some kinds still reports the others it has)."""
    import json

    from bench import default_model

    ran = []
    monkeypatch.setattr(default_model, "run_measured", lambda cmd, *a, **k: ran.append(cmd) or SimpleNamespace(returncode=0))
    ckpt = tmp_path / "best.ckpt"
    lists = {n: tmp_path / f"{n}.txt" for n in ["val", "test", "train-dev"] + [f"train-{c}" for c in default_model.SHARES]}
    assert default_model.run_test("8 kHz", "rate-8k", ckpt, lists, "val", [], tmp_path, tmp_path, kept_only=True) is None
    assert ran == []
    command = default_model.run_test("8 kHz", "rate-8k", ckpt, lists, "val", [], tmp_path, tmp_path).command
    assert len(ran) == 1  # run (it wrote nothing, so nothing is read back)
    work = tmp_path / "tests" / "rate-8k"
    (work / "v0").mkdir(parents=True)
    (work / "v0" / "comparison.json").write_text(json.dumps({"rows": [{"method": "audiosr M", "snr": 1.0}], "items": {}}))
    (work / "command.json").write_text(json.dumps(command))
    kept = default_model.run_test("8 kHz", "rate-8k", ckpt, lists, "val", [], tmp_path, tmp_path, kept_only=True)
    assert kept.rows == [{"method": "audiosr M", "snr": 1.0}] and len(ran) == 1
    other = default_model.run_test("8 kHz", "rate-8k", ckpt, lists, "val", ["--x", "1"], tmp_path, tmp_path, kept_only=True)
    assert other is None  # a different command is not the same test
