"""Reference reproduction of "Resnet in Resnet: Generalizing Residual Architectures".

Targ, Almeida and Lyman, arXiv:1603.08029 (ICLR 2016 workshop track). The package holds every piece of the
reproduction: the generalized residual block and ResNet Init (`rir.layers`), the architectures of Tables 1-5
(`rir.models`), data, training, evaluation, the Figure 3 ablation, the report and the `rir` command line.
"""

__version__ = "0.1.0"
