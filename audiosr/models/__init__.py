"""Networks: pure ``nn.Module``s with no knowledge of Lightning, and the generator around them."""

from audiosr.models.base import SuperResolutionNetwork, build_network
from audiosr.models.generator import Generator, ModelSpec
from audiosr.models.spectral import MagnitudeNetwork, MagnitudePhaseNetwork
from audiosr.models.unet import UNet

__all__ = ["Generator", "MagnitudeNetwork", "MagnitudePhaseNetwork", "ModelSpec", "SuperResolutionNetwork", "UNet",
           "build_network"]
