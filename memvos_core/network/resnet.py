"""ResNet-50 / ResNet-18 trunks up to layer3, named as the XMem checkpoints name them."""
import torch.nn as nn


def _bn(ch):
    return nn.BatchNorm2d(ch)


def _downsample(in_ch, out_ch, stride):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), _bn(out_ch))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch, planes, stride=1):
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, out_ch, 1, bias=False)
        self.bn3 = _bn(out_ch)
        self.relu = nn.ReLU(inplace=True)
        need = stride != 1 or in_ch != out_ch
        self.downsample = _downsample(in_ch, out_ch, stride) if need else None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU(inplace=True)
        need = stride != 1 or in_ch != planes
        self.downsample = _downsample(in_ch, planes, stride) if need else None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


def make_stage(block, in_ch, planes, blocks, stride):
    layers = [block(in_ch, planes, stride)]
    layers += [block(planes * block.expansion, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNetTrunk(nn.Module):
    """A ResNet stem and its first three stages (strides 4, 8, 16), named as the checkpoints name
    them: the first stage is ``res2`` in image encoders and ``layer1`` in mask encoders.
    ``forward`` returns ``(f16, f8, f4)``.

    Some references apply max-pooling before the stem's ReLU; the two orders give identical
    results (ReLU is monotone, so it commutes with a max), so one order serves both."""

    def __init__(self, block, layers, in_ch=3, first_stage="res2"):
        super().__init__()
        self.first_stage = first_stage
        self.conv1 = nn.Conv2d(in_ch, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = _bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        setattr(self, first_stage, make_stage(block, 64, 64, layers[0], 1))
        self.layer2 = make_stage(block, 64 * block.expansion, 128, layers[1], 2)
        self.layer3 = make_stage(block, 128 * block.expansion, 256, layers[2], 2)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f4 = getattr(self, self.first_stage)(x)
        f8 = self.layer2(f4)
        return self.layer3(f8), f8, f4


RESNET_LAYOUTS = {"resnet50": (Bottleneck, (3, 4, 6)), "resnet18": (BasicBlock, (2, 2, 2))}
