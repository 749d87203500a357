"""The argument and method names segrade recognises in student constructors (class count,
input channels, pretrained switch, freeze flags and methods, backbone and variant arguments,
U-Net flags). Ordered: when a signature has several, the first one listed wins.
"""

from __future__ import annotations


# Ordered: when a signature has several, the first one listed wins.
# A constructor's input-size parameter: given the family's input size when required (filling.fill_common).
IMAGE_SIZE_NAMES = ("img_size", "image_size", "input_size", "in_size", "img_dim", "image_dim", "size",
                    "img_res", "resolution", "input_resolution")

# A constructor's device parameter: given the device segrade builds on (filling.fill_common).
DEVICE_NAMES = ("device", "dev", "torch_device", "device_name", "compute_device")

CLASS_COUNT_NAMES = (
    "num_classes", "n_classes", "nclass", "n_class", "num_class", "nclasses", "classes", "num_labels",
    "out_channels", "output_channels", "n_out_channels", "out_ch", "output_ch",
)


IN_CHANNEL_NAMES = ("in_channels", "n_channels", "input_channels", "in_ch", "in_chans", "input_ch",
                    "n_input_channels", "img_ch")


PRETRAINED_NAMES = ("pretrained", "pretrained_backbone", "use_pretrained", "pretrain", "use_pretrain",
                    "backbone_pretrained", "imagenet_pretrained", "use_imagenet", "load_pretrained",
                    "pretrained_vgg")


# torchvision-style weights arguments: None when not pretrained, else this string (which
# torchvision's `vgg16(weights=...)` accepts) unless the parameter already has a default.
WEIGHTS_NAMES = ("weights", "backbone_weights", "vgg_weights", "encoder_weights")


PRETRAINED_WEIGHTS_VALUE = "IMAGENET1K_V1"


FREEZE_FLAG_NAMES = ("freeze_backbone", "freeze", "frozen", "freeze_encoder", "freeze_features", "fixed_backbone",
                     "freeze_vgg", "freeze_base", "frozen_backbone", "backbone_frozen", "fix_backbone",
                     "freeze_pretrained", "freeze_weights",
                     # the PyTorch fine-tuning tutorial's name: True trains only the new layers
                     "feature_extract", "feature_extracting", "feature_extraction", "use_as_feature_extractor")


# True means fine-tuned: passed as `not frozen`.
INVERTED_FREEZE_FLAG_NAMES = ("update_weights", "train_backbone", "finetune", "fine_tune", "trainable_backbone",
                              "trainable", "finetune_backbone", "fine_tune_backbone", "train_encoder",
                              "update_backbone", "backbone_trainable", "train_features", "fine_tuning",
                              "finetuning", "requires_grad")


FREEZE_METHOD_NAMES = ("freeze_backbone", "freeze", "freeze_encoder", "freeze_features", "freeze_vgg",
                       "freeze_base", "freeze_pretrained", "freeze_weights")


UNFREEZE_METHOD_NAMES = ("unfreeze_backbone", "unfreeze", "unfreeze_encoder", "unfreeze_features",
                         "unfreeze_vgg", "unfreeze_base", "unfreeze_all")


# Parameters that choose the backbone (FCN family): given the assignment's, VGG16, in the
# style the class uses ("vgg16", "VGG16_BN", torchvision.models.vgg16...).
BACKBONE_ARG_NAMES = ("backbone", "backbone_name", "backbone_type", "backbone_arch", "encoder", "encoder_name",
                      "base_model", "base_net", "basenet", "base_network", "vgg", "vgg_type", "vgg_version",
                      "vgg_name", "vgg_variant", "feature_extractor", "features", "pretrained_model", "cnn")


ASSIGNMENT_BACKBONE = "vgg16"


# Parameters of a family class that choose the FCN variant (its output stride).
VARIANT_ARG_NAMES = ("variant", "fcn_variant", "mode", "arch", "architecture", "type", "fcn_type", "model_type",
                     "net_type", "kind", "version", "stride", "output_stride", "out_stride", "upsample",
                     "upsampling", "upsample_factor")


INT_STYLE_ARGS = {"stride", "output_stride", "out_stride", "upsample", "upsampling", "upsample_factor"}


# U-Net flags, as examples: the matching itself is by pattern (see heuristics.unet_flag).
UNET_FLAG_EXAMPLES = {
    "skip": ("skip", "skips", "use_skip", "use_skips", "skip_connections", "use_skip_connections",
             "with_skip", "no_skip (inverted)"),
    "residual": ("residual", "use_residual", "res", "use_res", "residual_block", "use_residual_block",
                 "res_block", "no_residual (inverted)"),
    "attention": ("attention", "use_attention", "gated_attention", "use_gated_attention", "attn", "use_attn",
                  "att", "attention_gates", "no_attention (inverted)"),
}


TRAIT_WORDS = {"skip": "skip-connection", "residual": "residual-block", "attention": "attention-gate",
                "stride": "output stride", "frozen": "frozen backbone"}
