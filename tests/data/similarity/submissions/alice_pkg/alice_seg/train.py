from alice_seg.model import UNet
from alice_seg.utils import CarlaDataset, train_model
from torch.utils.data import DataLoader

if __name__ == "__main__":
    train = DataLoader(CarlaDataset("/content/data", "train"), batch_size=8, shuffle=True)
    val = DataLoader(CarlaDataset("/content/data", "val"), batch_size=8)
    for name, kwargs in {"vanilla": {}, "noskip": {"use_skip_connections": False},
                         "attention": {"use_gated_attention": True}}.items():
        history = train_model(UNet(**kwargs), train, val, epochs=50)
