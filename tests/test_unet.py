import pytest
import torch

from audiosr.models import UNet
from audiosr.models.unet import REFERENCE_CHANNELS


def test_reference_plan_has_the_published_size():
    network = UNet(REFERENCE_CHANNELS)
    assert network.num_parameters() == 17_850_593  # 17.85 M, the reference study's size
    # The decoder's (in -> out) widths after concatenation follow the published plan.
    widths = [(block[0].in_channels, block[0].out_channels) for block in network.up]
    assert widths == [(2048, 512), (1024, 256), (512, 128), (256, 64), (128, 32), (64, 16), (32, 16)]


@pytest.mark.parametrize("length", [1, 7, 127, 128, 1001, 4410])
def test_any_length_round_trips(length):
    network = UNet([4, 8, 8, 8]).eval()
    with torch.no_grad():
        assert network(torch.randn(2, 1, length)).shape == (2, 1, length)


def test_output_is_input_plus_residual():
    network = UNet([4, 8]).eval()
    torch.nn.init.zeros_(network.head.weight)
    torch.nn.init.zeros_(network.head.bias)
    x = torch.randn(1, 1, 300)
    with torch.no_grad():
        assert torch.equal(network(x), x)


def test_rejects_a_plan_without_levels():
    with pytest.raises(ValueError, match="channels"):
        UNet([16])
