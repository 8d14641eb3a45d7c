import pytest
import torch

from mnistlab.models.cnn import CNN
from mnistlab.models.lstm import RowLSTM
from mnistlab.models.mlp import MLP
from mnistlab.models.softmax import SoftmaxRegression
from mnistlab.training.ema import EMA
from mnistlab.training.schedulers import exponential_decay

NETS = [
    SoftmaxRegression(),
    MLP(hidden=[500]),
    MLP(hidden=[64, 32], dropout=0.2),
    CNN(),
    CNN(channels=[8, 16, 16], kernel_size=3, fc_size=32, batch_norm=True),
    CNN(channels=[24, 32], kernel_size=[5, 3], fc_size=256, batch_norm=True, padding="valid", pool_first=True),
    RowLSTM(),
    RowLSTM(input_proj=64, forget_bias=1.0),
    RowLSTM(hidden_size=16, cell="gru", num_layers=2, bidirectional=True),
]


@pytest.mark.parametrize("net", NETS, ids=lambda n: type(n).__name__)
def test_networks_map_images_to_ten_logits(net):
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_tutorial_cnn_shape():
    cnn = CNN()
    convs = [m for m in cnn.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in cnn.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(1, 32, (5, 5)), (32, 64, (5, 5))]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(7 * 7 * 64, 1024), (1024, 10)]


def test_speedrun_cnn_shape():
    """'valid' 5x5 then 3x3: 28 -> 24 -> pool 12 -> 10 -> pool 5; each pool straight after its convolution."""
    cnn = CNN(channels=[24, 32], kernel_size=[5, 3], fc_size=256, batch_norm=True, padding="valid", pool_first=True)
    kinds = [type(m).__name__ for m in cnn.features]
    assert kinds == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"] * 2
    assert [c.kernel_size for c in cnn.features if isinstance(c, torch.nn.Conv2d)] == [(5, 5), (3, 3)]
    assert cnn.classifier[1].in_features == 32 * 5 * 5
    assert cnn.features(torch.rand(2, 1, 28, 28)).shape == (2, 32, 5, 5)


def test_dropout_only_while_training():
    cnn = CNN(dropout=0.5)
    x = torch.rand(4, 1, 28, 28)
    cnn.eval()
    assert torch.equal(cnn(x), cnn(x))
    cnn.train()
    assert not torch.equal(cnn(x), cnn(x))


def test_forget_bias_sums_to_value():
    lstm = RowLSTM(hidden_size=8, forget_bias=1.0)
    total = lstm.rnn.bias_ih_l0 + lstm.rnn.bias_hh_l0
    assert torch.allclose(total[8:16], torch.ones(8))
    assert lstm.proj.__class__.__name__ == "Identity"
    assert RowLSTM(input_proj=64).rnn.input_size == 64


def test_ema_follows_tf_warmup():
    net = torch.nn.Linear(2, 1)
    ema = EMA(net, decay=0.99)
    start = ema.net.weight.clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net, num_updates=0)  # decay = min(0.99, 1/10) = 0.1
    assert torch.allclose(ema.net.weight, 0.1 * start + 0.9 * net.weight)
    assert not ema.net.weight.requires_grad


def test_exponential_decay_staircase():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.8)
    sched = exponential_decay(opt, steps_per_epoch=550, total_steps=10_000, rate=0.99)
    lrs = []
    for _ in range(1101):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == lrs[549] == pytest.approx(0.8)
    assert lrs[550] == pytest.approx(0.8 * 0.99) and lrs[1100] == pytest.approx(0.8 * 0.99**2)
    smooth = exponential_decay(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 10, 100, rate=0.5, decay_steps=2, staircase=False
    )
    assert smooth.lr_lambdas[0](1) == pytest.approx(0.5**0.5)


@pytest.mark.parametrize(
    "net",
    [
        {"_target_": "mnistlab.models.mlp.MLP", "hidden": [500]},
        {"_target_": "mnistlab.models.cnn.CNN", "channels": [4, 8], "fc_size": 16},
    ],
    ids=["mlp", "cnn"],
)
def test_l2_gradient_added_in_place_is_autograds_of_the_penalty(net):
    """Classifier.on_before_optimizer_step adds l2 * w to the weights' gradients: after 20 SGD steps, the same
    weights, bit for bit, as a loss with the penalty l2 * 0.5 * sum(w**2) built into it."""
    from mnistlab.training.classifier import Classifier

    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.5}
    torch.manual_seed(0)
    images, labels = torch.rand(20, 32, 1, 28, 28), torch.randint(0, 10, (20, 32))
    nets = []
    for in_place in (True, False):
        torch.manual_seed(1)
        model = Classifier(net, sgd, l2=1e-3, init="trunc_normal")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for x, y in zip(images, labels):
            loss = torch.nn.functional.cross_entropy(model.net(x), y)
            if not in_place:
                loss = loss + 1e-3 * 0.5 * sum(w.square().sum() for w in model.weights)
            optimizer.zero_grad()
            loss.backward()
            if in_place:
                model.on_before_optimizer_step(optimizer)
            optimizer.step()
        nets.append(model.net.state_dict())
    assert nets[0].keys() == nets[1].keys()
    for name in nets[0]:
        assert torch.equal(nets[0][name], nets[1][name]), name
    assert not torch.equal(
        nets[0][name], Classifier(net, sgd, init="trunc_normal").net.state_dict()[name]
    )  # it trained
