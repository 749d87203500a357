from .fcn import VGG16_FCN8s, VGG16_FCN16s, VGG16_FCN32s
from .unet import U_Net, U_Net_NoSkip
from .res_unet import ResU_Net
from .att_unet import AttU_Net
