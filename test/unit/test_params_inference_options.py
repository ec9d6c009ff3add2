"""Node parameters for the inference options reach OpenVLAPolicy.from_pretrained unchanged."""

import inspect
from types import SimpleNamespace

import pytest

pytest.importorskip('rcl_interfaces', reason='ROS message packages are not installed')

from openvla_ros.policy import OpenVLAPolicy  # noqa: E402
from openvla_ros.ros.params import PARAMETERS, read_settings  # noqa: E402


class _Node:
    def __init__(self, **overrides):
        self._values = {name: spec[0] for name, spec in PARAMETERS.items()}
        self._values.update(checkpoint='/ckpt', **overrides)

    def get_parameter(self, name):
        return SimpleNamespace(value=self._values[name])


def test_defaults_keep_plain_eager_bf16_loading():
    kwargs = read_settings(_Node()).policy_kwargs()
    assert kwargs['quantization'] == 'none' and kwargs['cuda_graphs'] is False
    defaults = inspect.signature(OpenVLAPolicy.from_pretrained).parameters
    for name, value in kwargs.items():  # every parameter is a from_pretrained argument
        assert name in defaults, name
    assert defaults['quantization'].default == 'none'
    assert defaults['cuda_graphs'].default is False


def test_inference_options_are_passed_through():
    kwargs = read_settings(_Node(quantization='int4', cuda_graphs=True)).policy_kwargs()
    assert kwargs['quantization'] == 'int4' and kwargs['cuda_graphs'] is True
