# HW3 - semantic segmentation on CARLA
# Alice's models package. Import from here: `from segmodels import FCN, UNet`
from .fcn import FCN
from .unet import UNet

__all__ = ["FCN", "UNet"]
