"""Every dataset the service serves, by name."""

from .cdx import CDX
from .roundware import ROUNDWARE

DATASETS = {dataset.name: dataset for dataset in (CDX, ROUNDWARE)}
