"""The LightningModule owns its validation: metrics and val/score under any Trainer; typed step outputs."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from audiosr.data import AudioPairDataModule, SyntheticCorpus
from audiosr.evaluation.metrics import SNR_ALLOWANCE_DB, SNR_PENALTY_PER_DB, lsd_bands, snr
from audiosr.models import UNet
from audiosr.training.module import SuperResolutionModule, UpsampledRecording


def small(tmp_path):
    torch.manual_seed(0)
    module = SuperResolutionModule(network=UNet(channels=[4, 8, 8]), input_filter="soxr_vhq",
                                   optimizer=lambda params: torch.optim.Adam(params, lr=1e-2))
    data = AudioPairDataModule(SyntheticCorpus(train_clips=2, val_clips=2, test_clips=1, clip_seconds=1.0),
                               segment_seconds=0.5, batch_size=2, num_workers=0, train_items_per_epoch=8,
                               input_filter="soxr_vhq", cache_dir=str(tmp_path / "cache"))
    return module, data


def plain_trainer(tmp_path, **kwargs):
    return L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                     default_root_dir=tmp_path, **kwargs)


@pytest.mark.slow
def test_a_plain_trainer_gets_the_validation_metrics_and_score_from_the_module(tmp_path):
    module, data = small(tmp_path)
    [metrics] = plain_trainer(tmp_path).validate(module, datamodule=data, verbose=False)
    # By hand, on the same crops: the score is the LSD below each target's own edge plus 0.5 per dB of SNR
    # lost against the input beyond 3 dB.
    module.eval()
    items = []
    with torch.no_grad():
        for batch in data.val_dataloader():
            output = module(batch["input"])
            bands = lsd_bands(output, batch["target"], 44100, 11025.0, edge_hz=batch["edge_hz"].reshape(-1, 1))
            out_snr, in_snr = snr(output, batch["target"]), snr(batch["input"], batch["target"])
            items += (bands["lsd_below_edge"]
                      + SNR_PENALTY_PER_DB * (in_snr - out_snr - SNR_ALLOWANCE_DB).clamp_min(0)).flatten().tolist()
    assert {"val/snr", "val/lsd", "val/lsd_hf", "val/lsd_lf", "val/lsd_below_edge", "val/input_snr", "val/input_lsd",
            "val/rtr"} <= set(metrics)
    assert metrics["val/score"] == pytest.approx(sum(items) / len(items), rel=1e-4)


@pytest.mark.slow
def test_a_plain_trainer_chooses_best_by_the_modules_score(tmp_path):
    module, data = small(tmp_path)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val/score", mode="min", save_top_k=1)
    trainer = plain_trainer(tmp_path, max_steps=6, val_check_interval=2, check_val_every_n_epoch=None,
                            num_sanity_val_steps=0, callbacks=[checkpoint])
    trainer.fit(module, datamodule=data)
    assert checkpoint.best_model_path
    [again] = plain_trainer(tmp_path).validate(module, datamodule=data, ckpt_path=checkpoint.best_model_path,
                                               verbose=False)
    assert again["val/score"] == pytest.approx(float(checkpoint.best_model_score), rel=1e-5)


@pytest.mark.slow
def test_test_step_returns_a_typed_output_for_each_recording(tmp_path):
    module, data = small(tmp_path)
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    module.on_test_start()
    result = module.test_step(batch, 0)
    assert isinstance(result, UpsampledRecording)
    assert result.method == "audiosr UNet" and result.precision == "fp32" and result.batch_size == 1
    assert result.output.shape == batch["target"][0].shape and result.seconds > 0
