"""Networks: pure ``nn.Module``s with no knowledge of Lightning."""

from audiosr.models.base import SuperResolutionNetwork
from audiosr.models.unet import UNet

__all__ = ["SuperResolutionNetwork", "UNet"]
