"""Every dataset the service serves, by name."""

from .cdx import CDX

DATASETS = {dataset.name: dataset for dataset in (CDX,)}
