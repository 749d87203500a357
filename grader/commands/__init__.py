"""One module per `segrade` command: each adds its parser and runs it by calling the engine."""


def add_training_arguments(parser) -> None:
    """What every command that grades shares: the spec, the backbone weights, the device
    and the training profile."""
    parser.add_argument("--spec", metavar="TOML", help="assignment spec (default: the one shipped with segrade)")
    parser.add_argument("--vgg16-weights", metavar="FILE", help="ImageNet VGG16 weights (torchvision state dict)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument("--profile", default="auto", help="training profile from the spec: smoke, full, or auto "
                        "(default: full on CUDA, smoke otherwise)")


def add_bands_argument(parser) -> None:
    """Where `check` and `grade` read the expected mIoU bands and the reference's figures."""
    parser.add_argument("--bands", metavar="DIR", help="folder of the bands files, as written by `segrade bands "
                        "--out DIR` (default: reference/bands, the default assignment's)")
