"""GAN training: discriminators, adversarial losses, warm-up, resume, generator-only loading."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from audiosr.models.discriminators import Discriminators, MultiBandSTFTDiscriminator, MultiPeriodDiscriminator
from audiosr.training.gan import discriminator_loss, feature_matching_loss, generator_adversarial_loss
from conftest import CONFIGS, run_audiosr


def small() -> list:
    return [MultiPeriodDiscriminator(channels=(4, 8, 8, 8, 8)),
            MultiBandSTFTDiscriminator(window_lengths=(512, 256), channels=4)]


@pytest.mark.parametrize("length", [1, 37, 1001, 4097, 22_051])
def test_discriminators_take_any_length(length):
    torch.manual_seed(0)
    discriminators = Discriminators(small())
    outputs = discriminators(torch.randn(3, 1, length))
    assert len(outputs) == 5 + 2  # one per period, one per STFT window
    for logits, features in outputs[:5]:
        assert logits.shape[0] == 3 and torch.isfinite(logits).all() and len(features) == 5
    for logits, features in outputs[5:]:
        assert logits.shape[:2] == (3, 1) and torch.isfinite(logits).all() and len(features) == 5 * 5
    # The period discriminator folds time by its period: rows = ceil(T / p), 3x fewer per stride.
    assert outputs[0][1][0].shape[-1] == 2 and outputs[4][1][0].shape[-1] == 11


def test_discriminators_judge_content_not_level():
    discriminators = Discriminators(small())
    x = torch.randn(2, 1, 4000)
    for (a, _), (b, _) in zip(discriminators(x), discriminators(0.01 * x + 0.3)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_adversarial_losses_match_hand_computations():
    real = [torch.tensor([0.5, 1.5]), torch.tensor([[2.0]])]
    fake = [torch.tensor([0.0, -1.0]), torch.tensor([[0.5]])]
    # lsgan: (1 - r)^2 + f^2, means, summed over discriminators.
    assert discriminator_loss(real, fake, "lsgan").item() == pytest.approx((0.25 + 0.25) / 2 + (0 + 1) / 2 + 1 + 0.25)
    assert generator_adversarial_loss(fake, "lsgan").item() == pytest.approx((1 + 4) / 2 + 0.25)
    # hinge: relu(1 - r) + relu(1 + f).
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx(0.5 / 2 + (1 + 0) / 2 + 0 + 1.5)
    assert generator_adversarial_loss(fake, "hinge").item() == pytest.approx((1 + 2) / 2 + 0.5)
    features_real = [[torch.ones(2, 3), torch.zeros(4)]]
    features_fake = [[torch.zeros(2, 3), torch.full((4,), 2.0)]]
    assert feature_matching_loss(features_real, features_fake).item() == pytest.approx(1.0 + 2.0)
    with pytest.raises(ValueError, match="unknown adversarial"):
        discriminator_loss(real, fake, "wasserstein")


def test_feature_matching_does_not_train_towards_the_generator():
    real = [[torch.ones(3, requires_grad=True)]]
    fake = [[torch.zeros(3, requires_grad=True)]]
    feature_matching_loss(real, fake).backward()
    assert real[0][0].grad is None and fake[0][0].grad is not None


@pytest.mark.slow
def test_warm_up_trains_the_generator_alone(tmp_path):
    import lightning as L

    from audiosr.data import AudioPairDataModule, SyntheticCorpus
    from audiosr.models import UNet
    from audiosr.training.gan import GANModule

    L.seed_everything(0)
    data = AudioPairDataModule(SyntheticCorpus(train_clips=2, val_clips=1, test_clips=1, clip_seconds=1.0),
                               segment_seconds=0.25, batch_size=2, num_workers=0, input_filter="soxr_vhq")
    module = GANModule(network=UNet([4, 8, 8]), discriminators=small(), warmup_steps=2,
                       input_filter="soxr_vhq")
    before = {k: v.clone() for k, v in module.discriminators.state_dict().items()}
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    assert int(module.batches_trained) == 2 and trainer.global_step == 2  # one optimizer step per batch
    assert all(torch.equal(v, module.discriminators.state_dict()[k]) for k, v in before.items())
    assert "train/d_loss" not in trainer.callback_metrics and "train/mel" in trainer.callback_metrics
    assert module.loss.weights == {"mrstft": 1.0, "mse": 100.0, "mel": 15.0}  # one loss: the recipe's terms and mel

    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)  # warm-up over: both networks train, two steps per batch
    assert int(module.batches_trained) == 3
    assert not all(torch.equal(v, module.discriminators.state_dict()[k]) for k, v in before.items())
    assert {"train/d_loss", "train/g_adv", "train/fm", "train/mel"} <= set(trainer.callback_metrics)


@pytest.mark.slow
def test_nan_gradients_in_the_discriminators_stop_the_fit_before_they_step(tmp_path):
    import lightning as L

    from audiosr.data import AudioPairDataModule, SyntheticCorpus
    from audiosr.models import UNet
    from audiosr.training.divergence import TrainingDiverged
    from audiosr.training.gan import GANModule
    from poison import Poison

    L.seed_everything(0)
    data = AudioPairDataModule(SyntheticCorpus(train_clips=2, val_clips=1, test_clips=1, clip_seconds=1.0),
                               segment_seconds=0.25, batch_size=2, num_workers=0, input_filter="soxr_vhq")
    module = GANModule(network=UNet([4, 8, 8]), discriminators=small(), input_filter="soxr_vhq")
    trainer = L.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path,
                        callbacks=[Poison(step=2, target="gradients", network="discriminators")])
    with pytest.raises(TrainingDiverged, match=r"at step 2: non-finite gradients in the discriminators;"):
        trainer.fit(module, datamodule=data)
    assert all(torch.isfinite(p).all() for p in module.parameters())  # the poisoned step was not applied


@pytest.mark.slow
def test_gan_fit_resume_and_generator_only_loading(tmp_path, cli_env):
    args = ["fit", "--config", str(CONFIGS / "unet.yaml"), "--config", str(CONFIGS / "overlays/gan.yaml"),
            "--config", str(CONFIGS / "overlays/gan-cpu.yaml"), "--config", str(CONFIGS / "overlays/debug.yaml"),
            "--trainer.logger", "false"]
    first = run_audiosr(args, tmp_path, cli_env)
    assert first.returncode == 0, first.stderr[-3000:]
    (last,) = (tmp_path / "runs").rglob("last.ckpt")
    state = torch.load(last, weights_only=False)
    assert state["global_step"] == 4 and len(state["optimizer_states"]) == 2 and len(state["lr_schedulers"]) == 2
    assert int(state["state_dict"]["batches_trained"]) == 2
    assert any(k.startswith("discriminators.") for k in state["state_dict"])

    second = run_audiosr([*args, "--trainer.max_steps", "8", "--ckpt_path", "last"], tmp_path, cli_env)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = torch.load(last, weights_only=False)
    assert resumed["global_step"] == 8 and int(resumed["state_dict"]["batches_trained"]) == 4
    for old, new in zip(state["optimizer_states"], resumed["optimizer_states"]):
        assert [s["step"] for s in new["state"].values()][0] > [s["step"] for s in old["state"].values()][0]
    assert resumed["lr_schedulers"][1]["last_epoch"] == 4  # the discriminators' schedule went on

    # `audiosr upsample` and the Python API read the generator alone, without the GAN module.
    code = ("import sys; from audiosr.models.checkpoint import load_generator, save_generator\n"
            f"g = load_generator({str(last)!r}); path = save_generator({str(tmp_path / 'g.pt')!r}, g)\n"
            "import torch; keys = torch.load(path, weights_only=False)['state_dict']\n"
            "assert not any('discriminator' in k for k in keys), keys\n"
            "print('audiosr.training.gan' in sys.modules, 'lightning' in sys.modules)")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert loaded.stdout.strip() == "False False", loaded.stderr
    assert (tmp_path / "g.pt").stat().st_size < last.stat().st_size / 5


@pytest.mark.slow
def test_gradients_are_clipped_after_the_fp16_grad_scaler_unscales_them(tmp_path):
    """Under 16-mixed the clip norm applies to the true (float32-scale) gradient norm."""
    import lightning as L
    from lightning.pytorch.plugins import MixedPrecision

    from audiosr.data import AudioPairDataModule, SyntheticCorpus
    from audiosr.models import UNet
    from audiosr.training.gan import GANModule

    clip = 1e-3  # far below these gradients' norms, so every step clips
    L.seed_everything(0)
    data = AudioPairDataModule(SyntheticCorpus(train_clips=2, val_clips=1, test_clips=1, clip_seconds=1.0),
                               segment_seconds=0.25, batch_size=2, num_workers=0, input_filter="soxr_vhq")
    module = GANModule(network=UNet([4, 8, 8]), discriminators=small(), input_filter="soxr_vhq",
                       generator_clip_norm=clip, discriminator_clip_norm=clip)
    # 128: the fp16 mel gradients of this tiny generator overflow from about 512 (the scaler then
    # skips the step and halves its scale), so both optimizers step from the start.
    scaler = torch.amp.GradScaler("cpu", init_scale=128.0, growth_interval=1000)
    pairs: list[tuple[int, float, float, float]] = []  # (optimizer, scale, norm handed over unscaled, norm stepped on)
    pending: dict[int, tuple[float, float]] = {}

    def norm(optimizer: torch.optim.Optimizer) -> float:
        grads = [p.grad.float() for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))

    class Watch(L.Callback):
        def on_train_start(self, trainer, pl_module):
            for optimizer in trainer.optimizers:
                optimizer.register_step_pre_hook(lambda opt, args, kwargs: pairs.append((id(opt), *pending.pop(id(opt)), norm(opt))))

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):  # callbacks run before the module's hook
            pending[id(optimizer)] = (scaler.get_scale(), norm(optimizer))

    trainer = L.Trainer(max_steps=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path,
                        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)], callbacks=[Watch()])
    trainer.fit(module, datamodule=data)
    # Both optimizers stepped (the scaler skips, and halves its scale on, inf/NaN gradients).
    assert {id(o) for o in trainer.optimizers} == {owner for owner, *_ in pairs}, pairs
    for _, scale, unscaled, stepped in pairs:
        assert scale >= 64 and unscaled > 10 * clip  # backward really scaled the gradients
        assert stepped == pytest.approx(clip, rel=1e-3)  # clipping the scaled norm would leave clip / scale


@pytest.mark.slow
def test_a_third_discriminator_is_one_class_and_one_yaml_line(tmp_path, cli_env):
    """tests/extra_discriminator.py is the class; the YAML below adds it to the DAC pair."""
    overlay = tmp_path / "three.yaml"
    overlay.write_text(
        "model:\n  init_args:\n    discriminators:\n"
        "      - {class_path: audiosr.models.discriminators.MultiPeriodDiscriminator, init_args: {channels: [4, 8, 8, 8, 8]}}\n"
        "      - {class_path: audiosr.models.discriminators.MultiBandSTFTDiscriminator, init_args: {window_lengths: [512], channels: 4}}\n"
        "      - extra_discriminator.WaveformDiscriminator\n"
    )
    env = {**cli_env, "PYTHONPATH": str(CONFIGS.parent / "tests")}
    result = run_audiosr(["fit", "--config", str(CONFIGS / "unet.yaml"), "--config", str(CONFIGS / "overlays/gan.yaml"),
                          "--config", str(overlay), "--config", str(CONFIGS / "overlays/debug.yaml"),
                          "--trainer.logger", "false"], tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    (last,) = (tmp_path / "runs").rglob("last.ckpt")
    checkpoint = torch.load(last, weights_only=False)
    keys = [k for k in checkpoint["state_dict"] if k.startswith("discriminators.members.")]
    assert {k.split(".")[2] for k in keys} == {"0", "1", "2"}
    # Every discriminator parameter, the third one's included, got gradients and Adam steps.
    adam = checkpoint["optimizer_states"][1]["state"]
    assert len(adam) == len(keys) and all(float(s["exp_avg"].abs().sum()) > 0 for s in adam.values())


def test_a_checkpoint_of_the_two_slot_discriminators_still_loads():
    torch.manual_seed(0)
    trained = Discriminators(small())
    old_keys = {k.replace("members.0.", "period.").replace("members.1.", "stft."): v
                for k, v in trained.state_dict().items()}  # how GAN checkpoints before the list named them
    assert any(k.startswith("period.") for k in old_keys)
    torch.manual_seed(1)
    fresh = Discriminators(small())
    fresh.load_state_dict(old_keys)
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in trained.state_dict().items())


def test_the_gan_logs_the_recipes_own_reconstruction_and_refuses_a_second_mel_term():
    from audiosr.models import UNet
    from audiosr.training.gan import GANModule
    from audiosr.training.losses import MultiScaleMel, ReconstructionLoss, WaveformMSE

    module = GANModule(network=UNet([4, 8, 8]), discriminators=small(), reconstruction_weight=0.5,
                       loss=ReconstructionLoss({"mse": WaveformMSE()}, {"mse": 100.0}))
    assert module.loss.weights == {"mse": 50.0, "mel": 15.0}  # the recipe's terms scaled, then mel
    assert module.recipe_terms == {"mse": (100.0, ("mse",))}  # train/reconstruction: the recipe's loss, unscaled
    with pytest.raises(ValueError, match="already has a multi-scale mel term"):
        GANModule(network=UNet([4, 8, 8]), discriminators=small(),
                  loss=ReconstructionLoss({"mel": MultiScaleMel()}))
